package mimeentity

import (
	"encoding/base64"
	"encoding/binary"
	"io"
)

// MaxLineLen is the longest base64 line RFC 2045 §6.8 allows, without its
// CRLF; 57 input octets fill it.
const MaxLineLen = 76

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

// encodeLine76 writes the 76 characters of one full line of src and CRLF
// (RFC 2045 §6.8) to dst: the fixed sizes let the compiler drop every
// bounds check of the MIME line, the one that carries the bulk of a
// message.
func encodeLine76(dst *[MaxLineLen + 2]byte, src *[MaxLineLen / 4 * 3]byte) {
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

// encodeLine writes a full line of any length, len(src)/3*4 characters and
// CRLF, to dst: the same table, 8-octet loads while they stay inside src,
// then 3 octets at a time.
func encodeLine(dst, src []byte) {
	t := pairs
	i, j := 0, 0
	for ; i+8 <= len(src); i, j = i+6, j+8 {
		v := binary.BigEndian.Uint64(src[i:])
		binary.LittleEndian.PutUint64(dst[j:],
			uint64(t[v>>52&0xfff])|uint64(t[v>>40&0xfff])<<16|uint64(t[v>>28&0xfff])<<32|uint64(t[v>>16&0xfff])<<48)
	}
	for ; i+3 <= len(src); i, j = i+3, j+4 {
		v := uint32(src[i])<<16 | uint32(src[i+1])<<8 | uint32(src[i+2])
		binary.LittleEndian.PutUint32(dst[j:], uint32(t[v>>12])|uint32(t[v&0xfff])<<16)
	}
	dst[j], dst[j+1] = '\r', '\n'
}

// Base64Writer encodes what it is given in base64 (RFC 4648 §4), in lines
// of a fixed length each followed by CRLF (RFC 2045 §6.8), buffering its
// output: each Write encodes all its full lines into one buffer and writes
// that buffer with one Write. Close writes the last, shorter line, also
// CRLF-terminated, and nothing for empty input.
type Base64Writer struct {
	w        io.Writer
	in       int    // input octets per line
	lineCRLF int    // output octets per line
	part     []byte // input that does not fill a line yet, len in, cap in
	np       int
	out      []byte // encoded lines not yet written to w
	err      error
}

// NewBase64Writer returns a writer to w that writes lines of lineLen
// characters and CRLF, for about size octets of input (a hint: a small
// body gets a small buffer; more input is flushed in more Writes). The
// buffer holds at most 72 KiB of input: a 64 KiB encryption chunk, what
// smime and openpgp write at a time, and what comes before it, so that a
// chunk's lines go out in one Write.
// lineLen 0 means [MaxLineLen], the MIME body's (RFC 2045 §6.8); otherwise
// it is rounded down to a multiple of 4 and kept between 4 and MaxLineLen.
func NewBase64Writer(w io.Writer, lineLen int, size int64) *Base64Writer {
	if lineLen <= 0 || lineLen > MaxLineLen {
		lineLen = MaxLineLen // RFC 2045 §6.8: at most 76 characters
	}
	lineLen = max(4, lineLen/4*4)
	in := lineLen / 4 * 3
	lines := (min(max(size, 0), 64<<10)+8<<10)/int64(in) + 2 // at most bufferedInput
	return &Base64Writer{
		w:        w,
		in:       in,
		lineCRLF: lineLen + 2,
		part:     make([]byte, in),
		out:      make([]byte, 0, int(lines)*(lineLen+2)),
	}
}

// line appends one full line of src (b.in octets) and CRLF; out has room
// for it.
func (b *Base64Writer) line(src []byte) {
	n := len(b.out)
	b.out = b.out[:n+b.lineCRLF]
	if b.in == MaxLineLen/4*3 {
		encodeLine76((*[MaxLineLen + 2]byte)(b.out[n:]), (*[MaxLineLen / 4 * 3]byte)(src))
		return
	}
	encodeLine(b.out[n:], src[:b.in])
}

func (b *Base64Writer) flush() error {
	if b.err != nil {
		return b.err
	}
	if len(b.out) > 0 {
		_, b.err = b.w.Write(b.out)
		b.out = b.out[:0]
	}
	return b.err
}

// Write encodes p. It returns the first error of the underlying writer,
// and that error again on every later call.
func (b *Base64Writer) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	total := len(p)
	if b.np > 0 {
		n := copy(b.part[b.np:], p)
		b.np += n
		p = p[n:]
		if b.np < b.in {
			return total, nil
		}
		b.line(b.part)
		b.np = 0
	}
	for len(p) >= b.in {
		if cap(b.out)-len(b.out) < b.lineCRLF {
			if err := b.flush(); err != nil {
				return total - len(p), err
			}
		}
		b.line(p)
		p = p[b.in:]
	}
	b.np = copy(b.part, p)
	if err := b.flush(); err != nil {
		return total - len(p), err
	}
	return total, nil
}

// Close encodes the remaining input as the last line, with padding, and
// writes everything out. It does not close the underlying writer.
func (b *Base64Writer) Close() error {
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

// NewBase64Reader decodes the base64 body of an entity (RFC 2045 §6.8)
// read from r. Line breaks and the spaces and tabs some agents leave are
// skipped; any other character outside the alphabet is a
// base64.CorruptInputError (encoding/base64's decoder: it reads on after
// a padded quantum).
func NewBase64Reader(r io.Reader) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, &dropSpace{r: r})
}

// dropSpace removes the white space RFC 2045 §6.8 lets a base64 body carry
// (line breaks, and the spaces and tabs some agents leave), which
// encoding/base64 (which skips only CR and LF) would refuse.
type dropSpace struct{ r io.Reader }

func (d *dropSpace) Read(p []byte) (int, error) {
	for {
		n, err := d.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c != ' ' && c != '\t' {
				p[k] = c
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}
