package keydir

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestImportPKCS12FromOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	root := keyDir(t)
	tmp := t.TempDir()
	p12 := filepath.Join(tmp, "alice.p12")
	out, err := exec.Command("openssl", "pkcs12", "-export", "-in", findKeyFile(t, root, "smime-"),
		"-out", p12, "-passout", "pass:s3cret").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs12 -export: %v\n%s", err, out)
	}
	data, err := os.ReadFile(p12)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ImportPKCS12(data, "s3cret", "ALICE@example.com")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fixtures(t)
	if !k.Cert.Equal(want.Cert) || keyMatches(k.Cert, k.Key) != nil {
		t.Error("imported key differs")
	}
	if _, err := ImportPKCS12(data, "wrong", "alice@example.com"); !errors.Is(err, ErrBadKey) {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := ImportPKCS12(data, "s3cret", "bob@example.com"); !errors.Is(err, ErrBadKey) {
		t.Errorf("other address: %v", err)
	}
}

func TestImportPEM(t *testing.T) {
	s, _ := fixtures(t)
	b, err := encodeSMIME(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ImportPEM(b, b, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	other, err := GenerateSMIME("alice@example.com", SMIMEP256, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ob, _ := encodeSMIME(other)
	i := bytes.Index(ob, []byte("-----BEGIN PRIVATE KEY"))
	if _, err := ImportPEM(b[:bytes.Index(b, []byte("-----BEGIN PRIVATE KEY"))], ob[i:], "alice@example.com"); !errors.Is(err, ErrBadKey) {
		t.Errorf("mismatched key: %v", err)
	}
}

// TestImportGPG imports what gpg --export-secret-keys writes for a key with
// a passphrase, binary and armored.
func TestImportGPG(t *testing.T) {
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("no gpg")
	}
	home := t.TempDir()
	gpg := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", "pw"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, stderr.String())
		}
		return out
	}
	gpg("--quick-generate-key", "<dave@example.com>", "ed25519", "default", "1y")
	sub := gpg("--list-keys", "--with-colons", "dave@example.com")
	for _, line := range bytes.Split(sub, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("fpr:")) {
			gpg("--quick-add-key", string(bytes.Split(line, []byte(":"))[9]), "cv25519", "encr", "1y")
			break
		}
	}
	for _, armored := range []bool{false, true} {
		args := []string{"--export-secret-keys"}
		if armored {
			args = append([]string{"--armor"}, args...)
		}
		data := gpg(append(args, "dave@example.com")...)
		if _, err := ImportGPG(data, nil, "dave@example.com"); !errors.Is(err, ErrBadKey) {
			t.Errorf("armored %v: no passphrase: %v", armored, err)
		}
		ents, err := ImportGPG(data, []byte("pw"), "Dave@Example.com")
		if err != nil || len(ents) != 1 {
			t.Fatalf("armored %v: %v, %v", armored, ents, err)
		}
		root := filepath.Join(t.TempDir(), "k")
		if _, err := WriteOpenPGP(root, "dave@example.com", ents[0]); err != nil {
			t.Fatal(err)
		}
		d, err := Open(root, nil)
		if err != nil || len(d.OpenPGP("dave@example.com")) != 1 {
			t.Fatalf("Open after import: %v", err)
		}
	}
}
