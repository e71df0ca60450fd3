package mimeentity

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrMultipart means a multipart body cannot be cut into its parts: no
// usable boundary, or no delimiter line.
var ErrMultipart = errors.New("mimeentity: malformed multipart body")

// SplitMultipart cuts a multipart body into its body parts on the raw octets
// (RFC 2046 §5.1.1), as a signature covers them: a part runs from after its
// delimiter line to before the line break that precedes the next delimiter
// (that line break is the delimiter's); a delimiter line may carry trailing
// white space (transport padding). The preamble and epilogue are dropped.
// closed reports whether the close delimiter was seen; without it the last
// part runs to the end of the body, and the caller decides whether that is
// acceptable. A body without any delimiter is an error wrapping ErrMultipart.
func SplitMultipart(body []byte, boundary string) (parts [][]byte, closed bool, err error) {
	// RFC 2046 §5.1.1 allows 1 to 70 characters; mail readers (and
	// OpenSSL) take longer ones, so only a line's length bounds it
	// (RFC 5322 §2.1.1: 998).
	if boundary == "" || len(boundary) > 990 {
		return nil, false, fmt.Errorf("%w: boundary %q", ErrMultipart, boundary)
	}
	dash := []byte("--" + boundary)
	start := -1 // start of the current part, -1 in the preamble
	for pos := 0; pos < len(body); {
		end := bytes.IndexByte(body[pos:], '\n')
		next := len(body)
		if end >= 0 {
			next = pos + end + 1
		}
		line := bytes.TrimRight(body[pos:next], "\r\n")
		if rest, ok := bytes.CutPrefix(line, dash); ok {
			closing := bytes.HasPrefix(rest, []byte("--"))
			if closing {
				rest = rest[2:]
			}
			if len(bytes.Trim(rest, " \t")) == 0 { // transport padding
				if start >= 0 {
					stop := pos
					if stop > start && body[stop-1] == '\n' {
						stop--
						if stop > start && body[stop-1] == '\r' {
							stop--
						}
					}
					parts = append(parts, body[start:stop])
				}
				if closing {
					return parts, true, nil
				}
				start = next
			}
		}
		pos = next
	}
	if start < 0 {
		return nil, false, fmt.Errorf("%w: no delimiter line for boundary %q", ErrMultipart, boundary)
	}
	return append(parts, body[start:]), false, nil
}

// CanonicalCRLF turns every bare LF into CRLF (RFC 8551 §3.1.1, RFC 3156 §5:
// the canonical form of text ends lines with CRLF). Octets already in that
// form are returned as they are.
func CanonicalCRLF(b []byte) []byte {
	n := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			n++
		}
	}
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+n)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
