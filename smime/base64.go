package smime

import (
	"encoding/base64"
	"encoding/binary"
	"io"
)

// lineIn and lineOut: 57 input octets make exactly one 76-character line,
// the longest RFC 2045 §6.8 allows; lineCRLF is the line with its CRLF.
const (
	lineIn   = 57
	lineOut  = 76
	lineCRLF = lineOut + 2
)

// pairs maps 12 bits of input to the two base64 characters (RFC 4648 §4,
// the standard alphabet) that encode them, the first in the low byte. It
// is a read-only table computed once, like encoding/base64's alphabets:
// not state. Encoding through it takes two lookups per 3 input octets
// instead of four, and a full line is written with 8-byte stores: about
// three times the speed of base64.StdEncoding.Encode line by line, which
// made base64 half the cost of an encrypted message.
var pairs = func() *[4096]uint16 {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var t [4096]uint16
	for i := range t {
		t[i] = uint16(alphabet[i>>6]) | uint16(alphabet[i&0x3f])<<8
	}
	return &t
}()

// encodeLine writes the 76 characters of one full line of src and CRLF
// (RFC 2045 §6.8) to dst.
func encodeLine(dst *[lineCRLF]byte, src *[lineIn]byte) {
	t := pairs
	// Six input octets make eight characters; each 8-octet load uses its
	// first six. The last load, at 48, ends at 56, inside the line.
	for i := 0; i < 9; i++ {
		v := binary.BigEndian.Uint64(src[6*i:])
		binary.LittleEndian.PutUint64(dst[8*i:],
			uint64(t[v>>52&0xfff])|uint64(t[v>>40&0xfff])<<16|uint64(t[v>>28&0xfff])<<32|uint64(t[v>>16&0xfff])<<48)
	}
	// Octets 54..56: the last four characters, then CRLF.
	v := uint32(src[54])<<16 | uint32(src[55])<<8 | uint32(src[56])
	binary.LittleEndian.PutUint32(dst[72:], uint32(t[v>>12])|uint32(t[v&0xfff])<<16)
	dst[76], dst[77] = '\r', '\n'
}

// base64Writer encodes what it is given in base64 (RFC 4648 §4), in lines
// of 76 characters each followed by CRLF (RFC 2045 §6.8), buffering its
// output: each Write encodes all its full lines into one buffer and writes
// that buffer with one Write. Close writes the last, shorter line, also
// CRLF-terminated.
type base64Writer struct {
	w    io.Writer
	part [lineIn]byte // input that does not fill a line yet
	np   int
	out  []byte // encoded lines not yet written to w
	err  error
}

// outLines is how many lines the output buffer holds at most: one encrypt
// chunk's worth plus the header, so that the encryption's Writes go out
// whole.
const outLines = (chunkSize+8<<10)/lineIn + 2

// newBase64Writer returns a writer to w for about size octets of input (a
// hint: a small message gets a small buffer; more input is flushed in more
// Writes).
func newBase64Writer(w io.Writer, size int64) *base64Writer {
	lines := min(outLines, (min(size, chunkSize)+8<<10)/lineIn+2)
	return &base64Writer{w: w, out: make([]byte, 0, lines*lineCRLF)}
}

// line appends one full line of src and CRLF; out has room for it.
func (b *base64Writer) line(src *[lineIn]byte) {
	n := len(b.out)
	b.out = b.out[:n+lineCRLF]
	encodeLine((*[lineCRLF]byte)(b.out[n:]), src)
}

func (b *base64Writer) flush() error {
	if b.err != nil {
		return b.err
	}
	if len(b.out) > 0 {
		_, b.err = b.w.Write(b.out)
		b.out = b.out[:0]
	}
	return b.err
}

func (b *base64Writer) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	total := len(p)
	if b.np > 0 {
		n := copy(b.part[b.np:], p)
		b.np += n
		p = p[n:]
		if b.np < lineIn {
			return total, nil
		}
		b.line(&b.part)
		b.np = 0
	}
	for len(p) >= lineIn {
		if cap(b.out)-len(b.out) < lineCRLF {
			if err := b.flush(); err != nil {
				return total - len(p), err
			}
		}
		b.line((*[lineIn]byte)(p))
		p = p[lineIn:]
	}
	b.np = copy(b.part[:], p)
	if err := b.flush(); err != nil {
		return total - len(p), err
	}
	return total, nil
}

// Close encodes the remaining input as the last line, with padding, and
// writes everything out. It does not close the underlying writer.
func (b *base64Writer) Close() error {
	if b.err != nil {
		return b.err
	}
	if b.np > 0 {
		b.out = base64.StdEncoding.AppendEncode(b.out, b.part[:b.np])
		b.out = append(b.out, '\r', '\n')
		b.np = 0
	}
	return b.flush()
}
