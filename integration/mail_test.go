package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// smimeaOwner is the owner name of addr's SMIMEA records, computed here
// independently of package dane: the SHA-256 of the local part as written,
// truncated to 28 octets and hex-encoded, under _smimecert (RFC 8162 §3).
func smimeaOwner(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	sum := sha256.Sum256([]byte(addr[:at]))
	return hex.EncodeToString(sum[:])[:56] + "._smimecert." + addr[at+1:] + "."
}

// toCRLF turns every line end into CRLF.
func toCRLF(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// readCorpus reads a message of the repository's testdata with CRLF line
// ends.
func readCorpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return toCRLF(b)
}

// splitMessage splits a CRLF message into its header fields (each with its
// folded continuation lines and final CRLF, as written) and its body.
func splitMessage(t *testing.T, msg []byte) (fields []string, body []byte) {
	t.Helper()
	rest := msg
	for {
		i := bytes.Index(rest, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("message has no end of header:\n%q", msg)
		}
		line := string(rest[:i+2])
		rest = rest[i+2:]
		if line == "\r\n" {
			return fields, rest
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] += line
			continue
		}
		fields = append(fields, line)
	}
}

// fieldName is the name of a raw header field.
func fieldName(f string) string {
	name, _, _ := strings.Cut(f, ":")
	return strings.TrimSpace(name)
}

// mimeEntity is what S/MIME encrypts of a message (RFC 8551 §3.1): its
// Content-* header fields as written, in their order, the empty line and
// the body.
func mimeEntity(t *testing.T, msg []byte) []byte {
	t.Helper()
	fields, body := splitMessage(t, msg)
	var b bytes.Buffer
	for _, f := range fields {
		if strings.HasPrefix(strings.ToLower(fieldName(f)), "content-") {
			b.WriteString(f)
		}
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// parseHeader parses a message's header (values unfolded).
func parseHeader(t *testing.T, msg []byte) mail.Header {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("cannot parse message: %v\n%s", err, msg)
	}
	return m.Header
}

// collapseSpace normalizes folding white space for comparing header values.
func collapseSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// firstDiff describes where two byte strings first differ.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(i-60, 0)
	return fmt.Sprintf("lengths: got %d, want %d; first difference at byte %d\ngot  ...%q\nwant ...%q",
		len(got), len(want), i, got[min(lo, len(got)):min(i+60, len(got))], want[min(lo, len(want)):min(i+60, len(want))])
}
