package keydir

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/smime"
)

// publish is the OPENPGPKEY record of e's public key.
func publish(t *testing.T, addr string, e *pgp.Entity) dns.RR {
	t.Helper()
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	name, err := dane.OPENPGPKEYName(addr, false)
	if err != nil {
		t.Fatal(err)
	}
	return &dns.OPENPGPKEY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeOPENPGPKEY, Class: dns.ClassINET, Ttl: 3600},
		PublicKey: base64.StdEncoding.EncodeToString(pub.Bytes())}
}

func TestGeneratedKeysPassDaemonChecks(t *testing.T) {
	const addr = "Carol@Example.com"
	for _, alg := range []string{SMIMERSA3072, SMIMEP256} {
		if testing.Short() && alg == SMIMERSA3072 {
			continue
		}
		k, err := GenerateSMIME(addr, alg, Options{Validity: 30 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if r := dane.CheckCertificate(strings.ToLower(addr), k.Cert, now); r != "" {
			t.Errorf("%s: CheckCertificate: %s", alg, r)
		}
		if r := dane.CheckSigningCertificate(addr, k.Cert, now); r != "" {
			t.Errorf("%s: CheckSigningCertificate: %s", alg, r)
		}
		if d := k.Cert.NotAfter.Sub(now); d < 29*24*time.Hour || d > 31*24*time.Hour {
			t.Errorf("%s: validity %v", alg, d)
		}
	}
	for _, alg := range []string{OpenPGPCv25519, OpenPGPRSA3072} {
		if testing.Short() && alg == OpenPGPRSA3072 {
			continue
		}
		e, err := GenerateOpenPGP(addr, alg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		// Checked after it was made: an OpenPGP key is valid from its
		// creation second, and making the RSA keys above takes seconds.
		now := time.Now()
		rrs := []dns.RR{publish(t, addr, e)}
		if keys, rej := openpgp.SelectKeys(addr, rrs, now); len(keys) != 1 {
			t.Errorf("%s: SelectKeys: %v", alg, rej)
		}
		if keys, rej := openpgp.SigningKeys(addr, rrs, now); len(keys) != 1 {
			t.Errorf("%s: SigningKeys: %v", alg, rej)
		}
		if exp := entityExpiry(e); exp.Sub(now) < DefaultValidity-time.Hour {
			t.Errorf("%s: expiry %v", alg, exp)
		}
	}
	if _, err := GenerateSMIME("no-at-sign", SMIMEP256, Options{}); err == nil {
		t.Error("bad address accepted")
	}
}

// TestOpenSSLDecrypts encrypts to a generated certificate and lets OpenSSL
// decrypt with the key file as stored.
func TestOpenSSLDecrypts(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	root := keyDir(t)
	d, err := Open(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := d.SMIME("alice@example.com")[0]
	msg := "Content-Type: text/plain\r\n\r\nfor the gateway\r\n"
	var ct bytes.Buffer
	if err := smime.Encrypt(&ct, strings.NewReader(msg), int64(len(msg)), []*x509.Certificate{k.Cert}, smime.Options{}); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "msg.der")
	if err := os.WriteFile(in, ct.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "cms", "-decrypt", "-inform", "DER", "-in", in, "-inkey", findKeyFile(t, root, "smime-")).CombinedOutput()
	if err != nil || string(out) != msg {
		t.Fatalf("openssl cms -decrypt: %v\n%s", err, out)
	}
}

// TestGnuPGDecrypts imports the stored secret key into GnuPG and lets it
// decrypt a PGP/MIME message encrypted to the published key.
func TestGnuPGDecrypts(t *testing.T) {
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("no gpg")
	}
	root := keyDir(t)
	home := t.TempDir()
	gpg := func(stdin []byte, args ...string) ([]byte, error) {
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--yes", "--trust-model", "always"}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Logf("gpg %v: %s", args, stderr.String())
		}
		return out, err
	}
	if _, err := gpg(nil, "--import", findKeyFile(t, root, "openpgp-")); err != nil {
		t.Fatal(err)
	}
	_, e := fixtures(t)
	var body bytes.Buffer
	b, err := openpgp.EncryptMIME(&body, strings.NewReader("hello gateway\r\n"), []*pgp.Entity{e}, openpgp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The armored message is in the second part.
	s := body.String()
	i, j := strings.Index(s, "-----BEGIN PGP MESSAGE-----"), strings.Index(s, "-----END PGP MESSAGE-----")
	if i < 0 || j < 0 || b == "" {
		t.Fatalf("no armored message in\n%s", s)
	}
	out, err := gpg([]byte(s[i:j+len("-----END PGP MESSAGE-----")]+"\n"), "--decrypt")
	if err != nil || string(out) != "hello gateway\r\n" {
		t.Fatalf("gpg --decrypt = %q, %v", out, err)
	}
}
