package smime

// A small BER reader (X.690 §8) for Decrypt. CMS producers may use BER,
// not only DER (RFC 5652 §1.2 and §2: "the CMS... BER"): OpenSSL's `cms
// -encrypt -stream` writes indefinite lengths (X.690 §8.1.3.6) and cuts
// the encrypted content into a constructed OCTET STRING (X.690 §8.7.3).
// encoding/asn1 reads DER only, so the envelope is walked here and only
// small, definite leaves (object identifiers, integers) go to encoding/asn1.

import (
	"encoding/asn1"
	"fmt"
	"math/big"
)

// Tag classes (X.690 §8.1.2.2).
const (
	classUniversal = 0
	classContext   = 2
)

// Universal tag numbers used by Decrypt.
const (
	numInteger     = 2
	numBitString   = 3
	numOctetString = 4
	numNull        = 5
	numOID         = 6
	numSequence    = 16
	numSet         = 17
)

// maxBERDepth bounds the nesting of indefinite-length and constructed
// elements, so that hostile input cannot exhaust the stack.
const maxBERDepth = 64

// berElem is one parsed element.
type berElem struct {
	class    int
	num      int    // tag number
	compound bool   // constructed
	content  []byte // content octets; for the indefinite form, without the end-of-contents octets
	full     []byte // the whole encoding, identifier to end
}

func (e berElem) is(class, num int, compound bool) bool {
	return e.class == class && e.num == num && e.compound == compound
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
}

// parseBER reads one element from the start of b and returns it and the
// octets after it.
func parseBER(b []byte, depth int) (berElem, []byte, error) {
	var e berElem
	if depth > maxBERDepth {
		return e, nil, malformed("nesting deeper than %d", maxBERDepth)
	}
	if len(b) < 2 {
		return e, nil, malformed("truncated element")
	}
	id := b[0]
	e.class = int(id >> 6)
	e.compound = id&0x20 != 0
	e.num = int(id & 0x1f)
	i := 1
	if e.num == 0x1f { // X.690 §8.1.2.4: high tag number form
		e.num = 0
		for {
			if i >= len(b) || i > 4 {
				return e, nil, malformed("bad tag")
			}
			c := b[i]
			i++
			e.num = e.num<<7 | int(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return e, nil, malformed("truncated length")
	}
	l := int(b[i])
	i++
	switch {
	case l < 0x80: // X.690 §8.1.3.4 short form
	case l == 0x80: // X.690 §8.1.3.6 indefinite form: constructed only
		if !e.compound {
			return e, nil, malformed("indefinite length on a primitive element")
		}
		start := i
		rest := b[i:]
		for {
			if len(rest) >= 2 && rest[0] == 0 && rest[1] == 0 { // end-of-contents, X.690 §8.1.5
				e.content = b[start : len(b)-len(rest)]
				e.full = b[:len(b)-len(rest)+2]
				return e, rest[2:], nil
			}
			var err error
			if _, rest, err = parseBER(rest, depth+1); err != nil {
				return e, nil, err
			}
		}
	case l == 0xff:
		return e, nil, malformed("reserved length octet")
	default: // X.690 §8.1.3.5 long form
		n := l & 0x7f
		if n > 8 || i+n > len(b) {
			return e, nil, malformed("bad length")
		}
		l = 0
		for _, c := range b[i : i+n] {
			if l > (1<<(63-8))-1 {
				return e, nil, malformed("length overflow")
			}
			l = l<<8 | int(c)
		}
		i += n
	}
	if l > len(b)-i {
		return e, nil, malformed("length %d beyond the %d octets left", l, len(b)-i)
	}
	e.content = b[i : i+l]
	e.full = b[:i+l]
	return e, b[i+l:], nil
}

// children parses the content of a constructed element into its elements.
func (e berElem) children() ([]berElem, error) {
	if !e.compound {
		return nil, malformed("primitive element where a constructed one belongs")
	}
	var out []berElem
	for rest := e.content; len(rest) > 0; {
		c, r, err := parseBER(rest, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		rest = r
	}
	return out, nil
}

// octets returns the value of an OCTET STRING, whatever its tag: the
// content of the primitive form, or the concatenated segments of the
// constructed form (X.690 §8.7.3), which may nest.
func (e berElem) octets() ([]byte, error) {
	var out []byte
	var walk func(berElem, int) error
	walk = func(e berElem, depth int) error {
		if !e.compound {
			out = append(out, e.content...)
			return nil
		}
		if depth > maxBERDepth {
			return malformed("OCTET STRING nested too deep")
		}
		kids, err := e.children()
		if err != nil {
			return err
		}
		for _, k := range kids {
			if !k.is(classUniversal, numOctetString, k.compound) { // X.690 §8.7.3.2
				return malformed("segment of a constructed OCTET STRING is not an OCTET STRING")
			}
			if err := walk(k, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(e, 0); err != nil {
		return nil, err
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// der re-encodes a primitive element in DER form, for encoding/asn1.
func (e berElem) der(tag byte) []byte {
	return append(appendHeader(nil, tag, int64(len(e.content))), e.content...)
}

// oid decodes an OBJECT IDENTIFIER.
func (e berElem) oid() (asn1.ObjectIdentifier, error) {
	if !e.is(classUniversal, numOID, false) {
		return nil, malformed("OBJECT IDENTIFIER expected")
	}
	var o asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(e.der(0x06), &o); err != nil {
		return nil, malformed("OBJECT IDENTIFIER: %v", err)
	}
	return o, nil
}

// bigInt decodes an INTEGER.
func (e berElem) bigInt() (*big.Int, error) {
	if !e.is(classUniversal, numInteger, false) {
		return nil, malformed("INTEGER expected")
	}
	var n *big.Int
	if _, err := asn1.Unmarshal(e.der(0x02), &n); err != nil {
		return nil, malformed("INTEGER: %v", err)
	}
	return n, nil
}

// smallInt decodes an INTEGER that must lie in [0, 1<<16).
func (e berElem) smallInt() (int, error) {
	n, err := e.bigInt()
	if err != nil {
		return 0, err
	}
	if n.Sign() < 0 || n.BitLen() > 16 {
		return 0, malformed("INTEGER %v out of range", n)
	}
	return int(n.Int64()), nil
}

// algorithm reads an AlgorithmIdentifier (RFC 5280 §4.1.1.2): the OID and
// the parameters element, if any (nil when absent).
func (e berElem) algorithm() (asn1.ObjectIdentifier, *berElem, error) {
	if !e.is(classUniversal, numSequence, true) {
		return nil, nil, malformed("AlgorithmIdentifier expected")
	}
	kids, err := e.children()
	if err != nil {
		return nil, nil, err
	}
	if len(kids) < 1 || len(kids) > 2 {
		return nil, nil, malformed("AlgorithmIdentifier with %d elements", len(kids))
	}
	o, err := kids[0].oid()
	if err != nil {
		return nil, nil, err
	}
	if len(kids) == 1 {
		return o, nil, nil
	}
	return o, &kids[1], nil
}

// absentOrNull reports whether algorithm parameters are absent or NULL.
func absentOrNull(p *berElem) bool {
	return p == nil || (p.is(classUniversal, numNull, false) && len(p.content) == 0)
}
