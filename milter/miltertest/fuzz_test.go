package miltertest

import (
	"bytes"
	"testing"
)

// FuzzSplitApply checks that splitting any message into fields and body and
// re-assembling it without modifications is lossless for well-formed input and
// never panics for any input.
func FuzzSplitApply(f *testing.F) {
	f.Add([]byte("From: a\r\nSubject: x\r\n\r\nbody\r\n"))
	f.Add([]byte("Content-Type: text/plain;\r\n\tcharset=utf-8\r\n\r\n"))
	f.Add([]byte("\r\n"))
	f.Add([]byte("no colon\r\n\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		hdrs, body, err := SplitMessage(msg)
		if err != nil {
			return
		}
		out := apply(hdrs, body, nil, true)
		// Bare LF inside a header becomes CRLF; otherwise the bytes survive.
		if !bytes.Contains(msg, []byte("\n")) || bytes.Count(msg, []byte("\n")) != bytes.Count(msg, []byte("\r\n")) {
			return
		}
		if !bytes.HasSuffix(msg[:len(msg)-len(body)], []byte("\r\n\r\n")) {
			return
		}
		if !bytes.Equal(out, msg) {
			t.Fatalf("round trip changed message:\n%q\n%q", msg, out)
		}
	})
}
