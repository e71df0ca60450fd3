package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeysCommands(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "keys")
	list := filepath.Join(base, "users")
	if err := os.WriteFile(list, []byte("# users\nBob@example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(append([]string{"keys", "--dir", dir}, args...), &out, &errb); code != want {
			t.Fatalf("keys %v = %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	keys(0, "generate", "--smime", "p256", "--valid", "90d", "alice@example.com")
	keys(0, "generate", "--smime", "none", "--list", list)
	out := keys(0, "list")
	for _, w := range []string{"alice@example.com\tsmime", "alice@example.com\topenpgp", "bob@example.com\topenpgp", "ECDSA P-256", "expires in 89 days"} {
		if !strings.Contains(out, w) {
			t.Errorf("list lacks %q:\n%s", w, out)
		}
	}
	out = keys(0, "records", "--smimea", "3-1-1", "ALICE@example.com")
	if !strings.Contains(out, "SMIMEA\t3 1 1 ") || !strings.Contains(out, "OPENPGPKEY") || strings.Contains(out, "PRIVATE") {
		t.Errorf("records:\n%s", out)
	}
	out = keys(0, "records")
	if strings.Count(out, "OPENPGPKEY") != 2 || strings.Count(out, "SMIMEA") != 1 {
		t.Errorf("records of all:\n%s", out)
	}
	// Import the PEM just written under another name is refused: the
	// certificate does not name the address.
	m, _ := filepath.Glob(filepath.Join(dir, "alice@example.com", "smime-*.pem"))
	keys(1, "import", "--pem", m[0], m[0], "carol@example.com")
	keys(0, "import", "--pem", m[0], m[0], "alice@example.com")
	keys(2, "records", "--smimea", "2-0-0")
	keys(2, "bogus")
	// A group-readable key file makes the daemon refuse the directory.
	if err := os.Chmod(m[0], 0o640); err != nil {
		t.Fatal(err)
	}
	if out := keys(1, "list"); !strings.Contains(out, m[0]) || !strings.Contains(out, "group or others") {
		t.Errorf("refusal does not name the file:\n%s", out)
	}
}
