package smime

import (
	"encoding/asn1"
	"os"
	"path/filepath"
	"testing"
)

// TestVerifyCapabilities: the signed SMIMECapabilities attribute (RFC 8551
// §2.5.2) that `openssl cms -sign` adds by default comes out as DER on the
// SignerResult, and none with -nosmimecap.
func TestVerifyCapabilities(t *testing.T) {
	openssl := needOpenSSL(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "content.txt")
	if err := os.WriteFile(in, []byte(signContent), 0o600); err != nil {
		t.Fatal(err)
	}
	k := testKeys(t, "p256", 1)[0]
	certPath, keyPath := writeKeyPEM(t, dir, "p256", k.Cert, k.Key)
	sign := func(extra ...string) *Verification {
		t.Helper()
		out := filepath.Join(dir, "m.eml")
		args := append([]string{"cms", "-sign", "-in", in, "-signer", certPath, "-inkey", keyPath, "-out", out}, extra...)
		runOpenSSL(t, openssl, args...)
		msg, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		v, err := VerifyEntity(msg)
		if err != nil || !v.Valid() {
			t.Fatalf("%v: %v %+v", extra, err, v)
		}
		return v
	}

	caps := sign().Signers[0].Capabilities
	if caps == nil {
		t.Fatal("no SMIMECapabilities from openssl cms -sign")
	}
	var list []struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	if rest, err := asn1.Unmarshal(caps, &list); err != nil || len(rest) != 0 {
		t.Fatalf("SMIMECapabilities do not parse: %v (%d octets left)", err, len(rest))
	}
	seen := map[string]bool{}
	for _, c := range list {
		seen[c.Algorithm.String()] = true
	}
	// OpenSSL 3 announces aes256-CBC first, then aes192/aes128-CBC (and
	// older ciphers); not GCM.
	for _, want := range []string{"2.16.840.1.101.3.4.1.42", "2.16.840.1.101.3.4.1.2"} {
		if !seen[want] {
			t.Errorf("capabilities lack %s: %v", want, seen)
		}
	}
	if seen["2.16.840.1.101.3.4.1.46"] {
		t.Errorf("openssl announced aes256-GCM: %v", seen)
	}

	if caps := sign("-nosmimecap").Signers[0].Capabilities; caps != nil {
		t.Errorf("-nosmimecap: capabilities %x", caps)
	}
}
