package milter

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	gomilter "github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/keydir"
	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/smime"
	"github.com/danemilter/danemilter/verify"
)

// signedText is the entity the bank signs before it is encrypted.
const signedText = "Content-Type: text/plain; charset=us-ascii\r\n\r\n" +
	"Your statement: 1000 EUR received on Friday.\r\n.A dotted line.\r\n"

// smimeSigner is a signing certificate (P-256, digitalSignature,
// emailProtection) for addr, written as PEM files for openssl.
type smimeSigner struct {
	der               []byte
	certFile, keyFile string
}

func newSMIMESigner(t *testing.T, addr string) *smimeSigner {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: addr},
		EmailAddresses: []string{addr}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	dir := t.TempDir()
	s := &smimeSigner{der: der, certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	must(t, os.WriteFile(s.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	must(t, os.WriteFile(s.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600))
	return s
}

// publish puts the signer's certificate in f as SMIMEA 3 0 0, secure.
func (s *smimeSigner) publish(t *testing.T, f *dane.Fake, addr string) {
	t.Helper()
	name, err := dane.SMIMEAName(addr, false)
	must(t, err)
	rr := &dns.SMIMEA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 300},
		Usage: 3, Certificate: hex.EncodeToString(s.der)}
	f.Set(name, dns.TypeSMIMEA, dane.Result{Name: name, Type: dns.TypeSMIMEA, Status: dane.StatusSecure, Records: []dns.RR{rr}, TTL: 300 * time.Second})
}

// sign is entity signed with openssl cms -sign, detached
// (multipart/signed), CRLF, without openssl's MIME-Version line.
func (s *smimeSigner) sign(t *testing.T, entity string) string {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("DANEMILTER_INTEGRATION") != "" {
			t.Fatal("openssl not installed")
		}
		t.Skip("openssl not installed")
	}
	in := filepath.Join(filepath.Dir(s.certFile), "entity")
	must(t, os.WriteFile(in, []byte(entity), 0o600))
	out, err := exec.Command(openssl, "cms", "-sign", "-binary", "-md", "sha256", "-in", in, "-signer", s.certFile, "-inkey", s.keyFile).Output()
	must(t, err)
	crlf := strings.ReplaceAll(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n", "\r\n")
	return strings.TrimPrefix(crlf, "MIME-Version: 1.0\r\n")
}

// pgpSigned is entity signed by e as RFC 3156 multipart/signed.
func pgpSigned(t *testing.T, e *pgp.Entity, entity string) string {
	t.Helper()
	var sig bytes.Buffer
	must(t, pgp.ArmoredDetachSign(&sig, e, strings.NewReader(entity), nil))
	return "Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"sig_b\"\r\n\r\n" +
		"--sig_b\r\n" + entity + "\r\n--sig_b\r\nContent-Type: application/pgp-signature\r\n\r\n" +
		strings.ReplaceAll(sig.String(), "\n", "\r\n") + "\r\n--sig_b--\r\n"
}

// TestDecryptSignedInner: a signed message inside the encryption is
// decrypted, and then the daemon's own verifier, over a resolver that
// serves the signer's records, reports the signature bound to the From
// address — or its failure, when the signed text was changed before it
// was encrypted, or no binding when the signer published nothing.
func TestDecryptSignedInner(t *testing.T) {
	const from = "ceo@bank.example"
	rsaK := rsaKey(t, "user@local.example")
	fake := &dane.Fake{}
	pgpK := pgpUser(t, fake, "user@local.example")
	keys := &keySource{smime: map[string][]keydir.SMIMEKey{"user@local.example": {rsaK}},
		pgp: map[string]pgp.EntityList{"user@local.example": {pgpK}}}
	signer := newSMIMESigner(t, from)
	signer.publish(t, fake, from)
	pgpSigner := pgpUser(t, fake, from)
	signedSMIME := signer.sign(t, signedText)
	tampered := strings.Replace(signedSMIME, "1000 EUR", "9000 EUR", 1)
	if tampered == signedSMIME {
		t.Fatal("nothing to tamper with")
	}
	unpublished := newSMIMESigner(t, from).sign(t, signedText) // a certificate the record does not name

	for _, tc := range []struct {
		name   string
		entity string
		seal   func(entity string) string
		field  string // Authentication-Results or DANE-OpenPGP-Result
		want   []string
		format string
	}{
		{"smime signed in smime gcm", signedSMIME, func(e string) string { return smimeMessageOf(t, e, smime.AES256GCM, rsaK.Cert) },
			"Authentication-Results", []string{"smime=pass", "policy.dane=bound", "body.smime-identifier=" + from}, "smime; cipher=aes256-gcm"},
		{"smime signed in pgp-mime", signedSMIME, func(e string) string { return pgpMessageOf(t, e, pgpK) },
			"Authentication-Results", []string{"smime=pass", "policy.dane=bound"}, "pgp-mime"},
		{"pgp signed in pgp-mime", pgpSigned(t, pgpSigner, signedText), func(e string) string { return pgpMessageOf(t, e, pgpK) },
			verify.FieldOpenPGP, []string{"openpgp=pass", "policy.dane=bound", "body.openpgp-identifier=" + from}, "pgp-mime"},
		{"tampered before encryption", tampered, func(e string) string { return smimeMessageOf(t, e, smime.AES256CBC, rsaK.Cert) },
			"Authentication-Results", []string{"smime=fail"}, "smime; cipher=aes256-cbc"},
		{"signer's record names another certificate", unpublished, func(e string) string { return smimeMessageOf(t, e, smime.AES256CBC, rsaK.Cert) },
			"Authentication-Results", []string{"smime=policy", "policy.dane=mismatch"}, "smime; cipher=aes256-cbc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := decryptOpts(&verify.Verifier{Resolver: fake}, keys, []string{"local.example"}, true)
			opts.Resolver = fake
			addr := start(t, opts)
			res := simulate(t, addr, mtas[0].mta, []string{"user@local.example"}, tc.seal(tc.entity))
			if res.Final.Type != gomilter.ActionAccept {
				t.Fatalf("final %+v", res.Final)
			}
			// The signed entity, byte for byte: its body is the body, its
			// Content-Type the Content-Type.
			_, wantBody, _ := strings.Cut(tc.entity, "\r\n\r\n")
			if got := msgBody(res.Message); got != wantBody {
				t.Errorf("body is not the signed entity's:\ngot  %q\nwant %q", clipS(got, 300), clipS(wantBody, 300))
			}
			wantCT, _, _ := strings.Cut(strings.TrimPrefix(tc.entity, "Content-Type: "), "\r\n\r\n")
			if ct := header(res.Message, "Content-Type"); len(ct) != 1 || mimeentity.UnfoldValue(ct[0]) != mimeentity.UnfoldValue(wantCT) {
				t.Errorf("Content-Type %q, want %q", ct, wantCT)
			}
			if tr := header(res.Message, DecryptedHeader); len(tr) != 1 || tr[0] != tc.format {
				t.Errorf("%s %q, want %q", DecryptedHeader, tr, tc.format)
			}
			fields := header(res.Message, tc.field)
			if len(fields) != 1 {
				t.Fatalf("%s fields %q, want one", tc.field, fields)
			}
			got := strings.Join(strings.Fields(mimeentity.UnfoldValue(fields[0])), " ")
			if !strings.HasPrefix(got, ourID+";") {
				t.Errorf("%s %q is not ours", tc.field, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s %q lacks %q", tc.field, got, w)
				}
			}
		})
	}
}

func clipS(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
