package smime

// Signature verification against OpenSSL: messages signed by `openssl cms
// -sign` with keys made here, detached and opaque, every digest and
// signature scheme, tampered copies, and `openssl cms -verify -noverify`'s
// verdict on each.

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// signContent is the MIME entity the tests sign. Every line carries a
// character outside the base64 alphabet, so that mutateDER never takes it
// for the signature.
const signContent = "Content-Type: text/plain; charset=us-ascii\r\n" +
	"Content-Transfer-Encoding: 7bit\r\n" +
	"\r\n" +
	"Hello, Bob.\r\n" +
	"This body is signed; one changed octet must break it.\r\n"

// testSigner is a key that signs with one scheme.
type testSigner struct {
	name   string
	key    crypto.Signer
	keyopt []string // extra `openssl cms -sign` options
	scheme SignatureAlgorithm
}

func testSigners(t *testing.T) []testSigner {
	t.Helper()
	rsaKey := testKeys(t, "rsa", 1)[0].Key
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []testSigner{
		{"rsa", rsaKey, nil, SigRSAPKCS1v15},
		{"rsa-pss", rsaKey, []string{"-keyopt", "rsa_padding_mode:pss"}, SigRSAPSS},
		{"p256", testKeys(t, "p256", 1)[0].Key, nil, SigECDSA},
		{"p384", testKeys(t, "p384", 1)[0].Key, nil, SigECDSA},
		{"p521", testKeys(t, "p521", 1)[0].Key, nil, SigECDSA},
		{"ed25519", edKey, nil, SigEd25519},
	}
}

// opensslVerifies reports whether `openssl cms -verify -noverify` accepts
// the S/MIME message in path (signature only, no chain).
func opensslVerifies(t testing.TB, openssl, path string) bool {
	t.Helper()
	out, err := exec.Command(openssl, "cms", "-verify", "-noverify", "-in", path, "-out", os.DevNull).CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("openssl: %v", err)
		}
		return false
	}
	return bytes.Contains(out, []byte("Verification successful"))
}

var base64Line = regexp.MustCompile(`^[A-Za-z0-9+/=]+\r?$`)

// mutateDER finds the base64 CMS object of an S/MIME message (the longest
// run of base64 lines), decodes it, applies f and writes it back.
func mutateDER(t testing.TB, msg []byte, f func(der []byte) []byte) []byte {
	t.Helper()
	lines := strings.SplitAfter(string(msg), "\n")
	bestStart, bestLen := -1, 0
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && base64Line.MatchString(strings.TrimSuffix(lines[j], "\n")) {
			j++
		}
		if j-i > bestLen {
			bestStart, bestLen = i, j-i
		}
		i = j + 1
	}
	if bestLen < 2 {
		t.Fatal("mutateDER: no base64 object in the message")
	}
	b64 := strings.Join(lines[bestStart:bestStart+bestLen], "")
	der, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(b64))
	if err != nil {
		t.Fatal(err)
	}
	der = f(append([]byte(nil), der...))
	enc := base64.StdEncoding.EncodeToString(der)
	var nb strings.Builder
	for len(enc) > 64 {
		nb.WriteString(enc[:64] + "\r\n")
		enc = enc[64:]
	}
	nb.WriteString(enc + "\r\n")
	out := strings.Join(lines[:bestStart], "") + nb.String() + strings.Join(lines[bestStart+bestLen:], "")
	return []byte(out)
}

// signatureOf returns the signature value of the first SignerInfo.
func signatureOf(t testing.TB, der []byte) []byte {
	t.Helper()
	sd, err := parseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	f, err := sd.signerInfos[0].children()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(f) - 1; i >= 0; i-- {
		if f[i].is(classUniversal, numOctetString, false) {
			return f[i].content
		}
	}
	t.Fatal("no signature in SignerInfo")
	return nil
}

// replaceOnce replaces the first old in b by new, which must be as long.
func replaceOnce(t testing.TB, b []byte, old, new string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(old))
	if i < 0 || len(old) != len(new) {
		t.Fatalf("replaceOnce: %q not found", old)
	}
	out := append([]byte(nil), b...)
	copy(out[i:], new)
	return out
}

// tampered returns the tampered copies of a signed message: one octet of
// the body, a header field inside the signed part, and the signature.
func tampered(t testing.TB, msg []byte, opaque bool) map[string][]byte {
	t.Helper()
	inContent := func(old, new string) []byte {
		if !opaque {
			return replaceOnce(t, msg, old, new)
		}
		return mutateDER(t, msg, func(der []byte) []byte { return replaceOnce(t, der, old, new) })
	}
	return map[string][]byte{
		"body":   inContent("Hello, Bob.", "Hello, Rob."),
		"header": inContent("charset=us-ascii", "charset=US-ASCII"),
		"signature": mutateDER(t, msg, func(der []byte) []byte {
			sig := signatureOf(t, der)
			i := bytes.Index(der, sig)
			der[i+len(sig)/2] ^= 0x01
			return der
		}),
	}
}

// TestVerifyOpenSSL signs with `openssl cms -sign` under every scheme x
// digest x form, checks Verify's result in detail, tampers each message
// three ways, and requires Verify and `openssl cms -verify -noverify` to
// agree on every one of them.
func TestVerifyOpenSSL(t *testing.T) {
	openssl := needOpenSSL(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "content.txt")
	if err := os.WriteFile(in, []byte(signContent), 0o600); err != nil {
		t.Fatal(err)
	}
	var total, agree int
	for _, s := range testSigners(t) {
		cert, err := kindCert(s.name+"@example.test", big.NewInt(77), s.key, true)
		if err != nil {
			t.Fatal(err)
		}
		certPath, keyPath := writeKeyPEM(t, dir, s.name, cert, s.key)
		for _, md := range []string{"sha256", "sha384", "sha512", "sha1"} {
			for _, opaque := range []bool{false, true} {
				form := map[bool]string{false: "detached", true: "opaque"}[opaque]
				name := s.name + "/" + md + "/" + form
				t.Run(name, func(t *testing.T) {
					out := filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+".eml")
					args := []string{"cms", "-sign", "-binary", "-in", in, "-signer", certPath, "-inkey", keyPath, "-md", md, "-out", out}
					if opaque {
						args = append(args, "-nodetach")
					}
					args = append(args, s.keyopt...)
					if o, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
						if s.scheme == SigEd25519 {
							t.Skipf("this OpenSSL cannot sign CMS with Ed25519 (OpenSSL 3.0 cannot; 3.2 can; TestVerifyEd25519 covers it): %.200s", o)
						}
						t.Fatalf("openssl %v: %v\n%s", args, err, o)
					}
					msg, err := os.ReadFile(out)
					if err != nil {
						t.Fatal(err)
					}
					v, err := VerifyEntity(msg)
					if err != nil {
						t.Fatalf("VerifyEntity: %v", err)
					}
					if len(v.Signers) != 1 {
						t.Fatalf("%d signers", len(v.Signers))
					}
					r := v.Signers[0]
					wantForm := map[bool]Form{false: FormDetached, true: FormOpaque}[opaque]
					if v.Form != wantForm || !bytes.Equal(v.Content, []byte(signContent)) {
						t.Errorf("form %v, content %q", v.Form, v.Content)
					}
					if r.Certificate == nil || !bytes.Equal(r.Certificate.Raw, cert.Raw) {
						t.Errorf("signer certificate not found")
					}
					if r.Signature != s.scheme {
						t.Errorf("scheme %q, want %q", r.Signature, s.scheme)
					}
					if s.scheme == SigRSAPSS && (r.PSS == nil || r.PSS.Hash != r.Digest) {
						t.Errorf("PSS parameters %+v", r.PSS)
					}
					if !r.SignedAttributes || r.SigningTime.IsZero() {
						t.Errorf("signed attributes %v, signing time %v", r.SignedAttributes, r.SigningTime)
					}
					wantStatus := StatusValid
					if md == "sha1" {
						wantStatus = StatusWeak
					}
					// RFC 8419 §3.1: Ed25519 signers use SHA-512 whatever
					// -md says (OpenSSL ignores -md for Ed25519).
					if r.Status != wantStatus && !(s.scheme == SigEd25519 && r.Status == StatusValid) {
						t.Errorf("status %v (%v), want %v", r.Status, r.Err, wantStatus)
					}
					if r.Status == StatusWeak && (!errors.Is(r.Err, ErrWeakAlgorithm) || v.Valid() || !v.Verified()) {
						t.Errorf("weak: err %v valid %v verified %v", r.Err, v.Valid(), v.Verified())
					}
					if md == "sha1" && r.Status == StatusValid {
						t.Errorf("SHA-1 passed")
					}
					cases := tampered(t, msg, opaque)
					cases["original"] = msg
					for what, m := range cases {
						p := filepath.Join(dir, "t.eml")
						if err := os.WriteFile(p, m, 0o600); err != nil {
							t.Fatal(err)
						}
						v, err := VerifyEntity(m)
						ours := err == nil && v.Verified()
						theirs := opensslVerifies(t, openssl, p)
						total++
						if ours == theirs {
							agree++
						} else {
							t.Errorf("%s: Verify %v (%v), openssl %v", what, ours, err, theirs)
						}
						if what != "original" && ours {
							t.Errorf("%s: tampered message verifies", what)
						}
						if what == "original" && !ours {
							t.Errorf("original does not verify")
						}
						if what == "body" || what == "header" {
							if err != nil || !errors.Is(v.Signers[0].Err, ErrDigestMismatch) {
								t.Errorf("%s: want ErrDigestMismatch, got %v / %+v", what, err, v)
							}
						}
						if what == "signature" && (err != nil || !errors.Is(v.Signers[0].Err, ErrBadSignature)) {
							t.Errorf("signature: want ErrBadSignature, got %v / %+v", err, v)
						}
					}
				})
			}
		}
	}
	t.Logf("openssl-signed messages and tampered copies: %d, Verify agrees with openssl cms -verify -noverify on %d", total, agree)
}

// TestVerifyDetachedLF: a clear-signed message stored with bare LF
// (a mailbox file) verifies, as with OpenSSL: the first part is hashed
// in canonical CRLF form (RFC 8551 §3.1.1).
func TestVerifyDetachedLF(t *testing.T) {
	openssl := needOpenSSL(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "content.txt")
	if err := os.WriteFile(in, []byte(signContent), 0o600); err != nil {
		t.Fatal(err)
	}
	k := testKeys(t, "p256", 1)[0]
	certPath, keyPath := writeKeyPEM(t, dir, "p256", k.Cert, k.Key)
	out := filepath.Join(dir, "m.eml")
	runOpenSSL(t, openssl, "cms", "-sign", "-in", in, "-signer", certPath, "-inkey", keyPath, "-out", out)
	msg, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lf := bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	for name, m := range map[string][]byte{"crlf": bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n")), "lf": lf} {
		v, err := VerifyEntity(m)
		if err != nil || !v.Valid() {
			t.Errorf("%s: %v %+v", name, err, v)
		}
	}
}

// TestVerifyEntityNotSigned: plain, encrypted and PGP/MIME entities are
// ErrNotSigned; broken structure is ErrMalformed.
func TestVerifyEntityNotSigned(t *testing.T) {
	for _, c := range []struct {
		name string
		msg  string
		want error
	}{
		{"plain", "Content-Type: text/plain\r\n\r\nhi\r\n", ErrNotSigned},
		{"no content-type", "Subject: x\r\n\r\nhi\r\n", ErrNotSigned},
		{"enveloped", "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nMIIB\r\n", ErrNotSigned},
		{"pgp", "Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b\r\n\r\ny\r\n--b--\r\n", ErrNotSigned},
		{"mixed without signature", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n", ErrNotSigned},
		{"no delimiter", "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\nx\r\n", ErrMalformed},
		{"no close delimiter", "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b\r\n\r\ny\r\n", ErrMalformed},
		{"one part", "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n", ErrMalformed},
		{"bad base64", "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n", ErrMalformed},
		{"not cms", "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n", ErrMalformed},
	} {
		_, err := VerifyEntity([]byte(c.msg))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// TestSplitMultipart: the CRLF before a delimiter belongs to the
// delimiter (RFC 2046 §5.1.1), transport padding is allowed, a line that
// only starts with the boundary is content.
func TestSplitMultipart(t *testing.T) {
	body := "preamble\r\n--b \t\r\nA: 1\r\n\r\nx\r\n\r\n--bb\r\n--b\r\nsecond\r\n--b--  \r\nepilogue"
	parts, err := splitMultipart([]byte(body), "b")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A: 1\r\n\r\nx\r\n\r\n--bb", "second"}
	if fmt.Sprintf("%q", parts) != fmt.Sprintf("%q", want) {
		t.Errorf("parts %q, want %q", parts, want)
	}
}
