package smime

import (
	"encoding/base64"
	"io"
)

// lineIn and lineOut: 57 input octets make exactly one 76-character line,
// the longest RFC 2045 §6.8 allows.
const (
	lineIn  = 57
	lineOut = 76
)

// base64Writer encodes what it is given in base64 (RFC 4648 §4), in lines
// of 76 characters each followed by CRLF (RFC 2045 §6.8), buffering its
// output. Close writes the last, shorter line, also CRLF-terminated.
type base64Writer struct {
	w    io.Writer
	part [lineIn]byte // input that does not fill a line yet
	np   int
	out  []byte // encoded lines not yet written to w
	err  error
}

func newBase64Writer(w io.Writer) *base64Writer {
	// Room for one encrypt chunk's worth of lines plus the header.
	const lines = (chunkSize+8<<10)/lineIn + 2
	return &base64Writer{w: w, out: make([]byte, 0, lines*(lineOut+2))}
}

// line appends one encoded line of src (at most 57 octets) and CRLF.
func (b *base64Writer) line(src []byte) {
	n := len(b.out)
	b.out = b.out[:n+base64.StdEncoding.EncodedLen(len(src))]
	base64.StdEncoding.Encode(b.out[n:], src)
	b.out = append(b.out, '\r', '\n')
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
		b.line(b.part[:])
		b.np = 0
	}
	for len(p) >= lineIn {
		if cap(b.out)-len(b.out) < lineOut+2 {
			if err := b.flush(); err != nil {
				return total - len(p), err
			}
		}
		b.line(p[:lineIn])
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
		b.line(b.part[:b.np])
		b.np = 0
	}
	return b.flush()
}
