package milter

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzEntityHeader checks that the entity header built from any header fields
// is CRLF-only, ends with the empty line and contains only Content-* fields.
func FuzzEntityHeader(f *testing.F) {
	f.Add("Content-Type", " text/plain;\n\tcharset=utf-8", "Subject", " hi")
	f.Add("content-transfer-encoding", "base64", "X-Content", "\r\n")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		for _, s := range []string{n1, v1, n2, v2} {
			if strings.Contains(s, "\r") && !strings.Contains(s, "\r\n") {
				return // bare CR: MTAs do not pass it in header values
			}
		}
		h := &handler{message: &message{headers: []field{{n1, v1}, {n2, v2}}}}
		for _, lead := range []bool{true, false} {
			b := h.entityHeader(lead)
			if !bytes.HasSuffix(b, []byte("\r\n")) {
				t.Fatalf("entity header %q does not end with CRLF", b)
			}
			if bytes.Count(b, []byte("\n")) != bytes.Count(b, []byte("\r\n")) {
				t.Fatalf("bare LF in %q", b)
			}
			for _, f := range h.headers {
				in := bytes.HasPrefix(b, []byte(f.name+":")) || bytes.Contains(b, []byte("\r\n"+f.name+":"))
				if !strings.HasPrefix(strings.ToLower(f.name), "content-") && in && f.name != "" && !strings.Contains(v1+v2+n1+n2, f.name+":") {
					t.Fatalf("non-entity field %q in %q", f.name, b)
				}
			}
		}
	})
}
