package verify

// Test-only helpers: certificates and keys made here, messages signed by
// `openssl cms -sign` (S/MIME) and go-crypto (PGP/MIME), and a fake
// resolver that publishes their records.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
)

// testNow is the time tests verify at; certificates are valid around it.
var testNow = time.Now()

// signedContent is the MIME entity the tests sign.
const signedContent = "Content-Type: text/plain; charset=us-ascii\r\n" +
	"Content-Transfer-Encoding: 7bit\r\n" +
	"\r\n" +
	"Hello, Bob.\r\n" +
	"This body is signed; one changed octet must break it.\r\n"

// smimeSigner is a certificate and key on disk for `openssl cms -sign`.
type smimeSigner struct {
	cert               *x509.Certificate
	certPath, keyPath  string
	email              string
	dir                string
	issuerCA, issuerEE *x509.Certificate
}

func needOpenSSL(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("DANEMILTER_INTEGRATION") == "1" {
			tb.Fatal("openssl not found")
		}
		tb.Skip("openssl not found")
	}
	return p
}

// newSMIMESigner makes a self-signed ECDSA P-256 signing certificate for
// email.
func newSMIMESigner(tb testing.TB, email string) *smimeSigner {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: "Test Signer", Organization: []string{"Example; Inc"}},
		EmailAddresses: []string{email},
		NotBefore:      testNow.Add(-time.Hour),
		NotAfter:       testNow.Add(24 * time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	s := &smimeSigner{cert: cert, email: email, dir: dir,
		certPath: filepath.Join(dir, "cert.pem"), keyPath: filepath.Join(dir, "key.pem")}
	writePEM(tb, s.certPath, "CERTIFICATE", der)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	writePEM(tb, s.keyPath, "PRIVATE KEY", pk)
	return s
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// sign returns the S/MIME entity `openssl cms -sign` makes of content:
// multipart/signed, or application/pkcs7-mime when opaque.
func (s *smimeSigner) sign(tb testing.TB, content, md string, opaque bool) []byte {
	tb.Helper()
	openssl := needOpenSSL(tb)
	in := filepath.Join(s.dir, "in.txt")
	out := filepath.Join(s.dir, "out.eml")
	if err := os.WriteFile(in, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	args := []string{"cms", "-sign", "-binary", "-in", in, "-signer", s.certPath, "-inkey", s.keyPath, "-md", md, "-out", out}
	if opaque {
		args = append(args, "-nodetach")
	}
	if o, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
		tb.Fatalf("openssl %v: %v\n%s", args, err, o)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// withHeader puts a message header (From and the rest) in front of an
// entity.
func withHeader(from string, entity []byte) []byte {
	h := "Return-Path: <x@example.org>\r\n"
	if from != "" {
		h += "From: " + from + "\r\n"
	}
	h += "To: bob@example.net\r\nSubject: test\r\nDate: Mon, 1 Dec 2026 10:00:00 +0000\r\n"
	return append([]byte(h), entity...)
}

// mixed nests entities as the parts of a multipart/mixed entity, after a
// plain text part.
func mixed(parts ...[]byte) []byte {
	// A boundary of its own per nesting level: the total length differs.
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	bd := fmt.Sprintf("mix%d", n)
	var b bytes.Buffer
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"" + bd + "\"\r\n\r\npreamble\r\n")
	b.WriteString("--" + bd + "\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n")
	for _, p := range parts {
		b.WriteString("--" + bd + "\r\n")
		b.Write(p)
		b.WriteString("\r\n")
	}
	b.WriteString("--" + bd + "--\r\n")
	return b.Bytes()
}

// only nests entity as the only part of a multipart/mixed entity, between
// a preamble and an epilogue: it still covers the whole message content.
func only(entity []byte) []byte {
	bd := fmt.Sprintf("only%d", len(entity))
	var b bytes.Buffer
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"" + bd + "\"\r\n\r\nThis is a preamble.\r\n")
	b.WriteString("--" + bd + "\r\n")
	b.Write(entity)
	b.WriteString("\r\n--" + bd + "--\r\nThis is an epilogue.\r\n")
	return b.Bytes()
}

// smimeaFor returns a secure SMIMEA answer for cert under the given
// parameters.
func smimeaFor(cert *x509.Certificate, usage, selector, matching uint8) dane.Result {
	content := cert.Raw
	if selector == dane.SelectorSPKI {
		content = cert.RawSubjectPublicKeyInfo
	}
	data := hex.EncodeToString(content)
	switch matching {
	case dane.MatchingSHA256:
		h := crypto.SHA256.New()
		h.Write(content)
		data = hex.EncodeToString(h.Sum(nil))
	case dane.MatchingSHA512:
		h := crypto.SHA512.New()
		h.Write(content)
		data = hex.EncodeToString(h.Sum(nil))
	}
	return dane.Result{Status: dane.StatusSecure, TTL: time.Hour, Records: []dns.RR{&dns.SMIMEA{
		Hdr:   dns.RR_Header{Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 3600},
		Usage: usage, Selector: selector, MatchingType: matching, Certificate: data,
	}}}
}

// openpgpkeyFor returns a secure OPENPGPKEY answer holding es.
func openpgpkeyFor(tb testing.TB, es ...*pgp.Entity) dane.Result {
	tb.Helper()
	var b bytes.Buffer
	for _, e := range es {
		if err := e.Serialize(&b); err != nil {
			tb.Fatal(err)
		}
	}
	return dane.Result{Status: dane.StatusSecure, TTL: time.Hour, Records: []dns.RR{&dns.OPENPGPKEY{
		Hdr:       dns.RR_Header{Rrtype: dns.TypeOPENPGPKEY, Class: dns.ClassINET, Ttl: 3600},
		PublicKey: base64.StdEncoding.EncodeToString(b.Bytes()),
	}}}
}

func smimeaName(tb testing.TB, addr string) string {
	tb.Helper()
	n, err := dane.SMIMEAName(addr, false)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func openpgpkeyName(tb testing.TB, addr string) string {
	tb.Helper()
	n, err := dane.OPENPGPKEYName(addr, false)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// newPGPKey makes an Ed25519 (legacy EdDSA) key for email.
func newPGPKey(tb testing.TB, email string) *pgp.Entity {
	tb.Helper()
	e, err := pgp.NewEntity("Test", "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return testNow.Add(-time.Hour) }})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// pgpSign returns an RFC 3156 multipart/signed entity of content signed by
// e with hash h (0: SHA-256).
func pgpSign(tb testing.TB, e *pgp.Entity, content string, h crypto.Hash) []byte {
	tb.Helper()
	if h == 0 {
		h = crypto.SHA256
	}
	var sig bytes.Buffer
	cfg := &packet.Config{DefaultHash: h, Time: func() time.Time { return testNow.Add(-time.Minute) }}
	if err := pgp.ArmoredDetachSign(&sig, e, strings.NewReader(content), cfg); err != nil {
		tb.Fatal(err)
	}
	micalg := map[crypto.Hash]string{crypto.SHA256: "pgp-sha256", crypto.SHA512: "pgp-sha512", crypto.SHA1: "pgp-sha1"}[h]
	return []byte("MIME-Version: 1.0\r\nContent-Type: multipart/signed; micalg=" + micalg + ";\r\n" +
		" protocol=\"application/pgp-signature\"; boundary=\"pgp_b\"\r\n" +
		"\r\n" +
		"This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n" +
		"--pgp_b\r\n" +
		content +
		"\r\n--pgp_b\r\n" +
		"Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n" +
		"\r\n" +
		sig.String() +
		"\r\n--pgp_b--\r\n")
}

// newVerifier returns a Verifier over f at testNow.
func newVerifier(f *dane.Fake) *Verifier {
	return &Verifier{Resolver: f, Now: func() time.Time { return testNow }}
}

func mustVerify(tb testing.TB, v *Verifier, msg []byte) *Report {
	tb.Helper()
	r, err := v.Verify(context.Background(), msg)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}
