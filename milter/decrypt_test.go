package milter

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
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

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/keydir"
	"github.com/danemilter/danemilter/milter/miltertest"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/smime"
)

// keySource is a keydir.Source made in the test.
type keySource struct {
	smime map[string][]keydir.SMIMEKey
	pgp   map[string]pgp.EntityList
}

func (k *keySource) SMIME(a string) []keydir.SMIMEKey { return k.smime[strings.ToLower(a)] }
func (k *keySource) OpenPGP(a string) pgp.EntityList  { return k.pgp[strings.ToLower(a)] }

func ecKey(t *testing.T, addr string) keydir.SMIMEKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: addr},
		EmailAddresses: []string{addr}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageKeyAgreement, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	return keydir.SMIMEKey{Cert: cert, Key: key}
}

func rsaKey(t *testing.T, addr string) keydir.SMIMEKey {
	t.Helper()
	u := newUser(t, addr)
	cert, err := x509.ParseCertificate(u.der)
	must(t, err)
	return keydir.SMIMEKey{Cert: cert, Key: u.key}
}

// innerEntity is what the sender encrypted: Content-* fields, a body.
const innerEntity = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThe secret plan.\r\nLine two, caf\xc3\xa9.\r\n"

const outerFields = "Received: from mx.bank.example by mx.local.example\r\n" +
	"From: Bank <ceo@bank.example>\r\nTo: user@local.example\r\nSubject: statement\r\nMIME-Version: 1.0\r\n" +
	"X-Danemilter-Decrypted: smime; forged\r\n"

func smimeMessage(t *testing.T, cipher smime.Cipher, certs ...*x509.Certificate) string {
	t.Helper()
	return smimeMessageOf(t, innerEntity, cipher, certs...)
}

// smimeMessageOf is entity encrypted by danemilter's S/MIME code under
// outerFields.
func smimeMessageOf(t testing.TB, entity string, cipher smime.Cipher, certs ...*x509.Certificate) string {
	t.Helper()
	var b bytes.Buffer
	must(t, smime.EncryptBase64(&b, strings.NewReader(entity), int64(len(entity)), certs, smime.Options{Cipher: cipher}))
	var h strings.Builder
	h.WriteString(outerFields)
	for _, f := range smime.OuterFieldsFor(cipher) {
		h.WriteString(f.Name + ": " + f.Value + "\r\n")
	}
	return h.String() + "\r\n" + b.String()
}

func pgpMessage(t *testing.T, keys ...*pgp.Entity) string {
	t.Helper()
	return pgpMessageOf(t, innerEntity, keys...)
}

// pgpMessageOf is entity encrypted by danemilter's PGP/MIME code under
// outerFields.
func pgpMessageOf(t testing.TB, entity string, keys ...*pgp.Entity) string {
	t.Helper()
	var b bytes.Buffer
	boundary, err := openpgp.EncryptMIME(&b, strings.NewReader(entity), keys, openpgp.Options{})
	must(t, err)
	var h strings.Builder
	h.WriteString(outerFields)
	for _, f := range openpgp.OuterFields(boundary) {
		h.WriteString(f.Name + ": " + f.Value + "\r\n")
	}
	return h.String() + "\r\n" + b.String()
}

// opensslMessage encrypts innerEntity with openssl cms -encrypt.
func opensslMessage(t *testing.T, cipherArg string, cert *x509.Certificate) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	dir := t.TempDir()
	in, pemFile := filepath.Join(dir, "in"), filepath.Join(dir, "cert.pem")
	must(t, os.WriteFile(in, []byte(innerEntity), 0o600))
	must(t, os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600))
	out, err := exec.Command("openssl", "cms", "-encrypt", "-binary", cipherArg, "-in", in, pemFile).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	msg := strings.ReplaceAll(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n", "\r\n")
	msg = strings.Replace(msg, "MIME-Version: 1.0\r\n", "", 1)
	return outerFields + msg
}

// gpgMessage encrypts innerEntity with gpg --encrypt (compressed, as gpg
// does by default) and wraps it as RFC 3156 says.
func gpgMessage(t *testing.T, key *pgp.Entity) string {
	t.Helper()
	bin, err := exec.LookPath("gpg")
	if err != nil {
		t.Skip("no gpg")
	}
	home := t.TempDir()
	var pub bytes.Buffer
	must(t, key.Serialize(&pub))
	run := func(stdin []byte, args ...string) []byte {
		cmd := exec.Command(bin, append([]string{"--batch", "--no-tty", "--homedir", home}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, e.String())
		}
		return o.Bytes()
	}
	t.Cleanup(func() { _ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	run(pub.Bytes(), "--import")
	armored := run([]byte(innerEntity), "--trust-model", "always", "--armor", "--encrypt", "-r", "user@local.example")
	b := "gpg_b.1"
	return outerFields + "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"" + b + "\"\r\n\r\n" +
		"--" + b + "\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--" + b +
		"\r\nContent-Type: application/octet-stream\r\n\r\n" + string(bytes.ReplaceAll(armored, []byte("\n"), []byte("\r\n"))) + "\r\n--" + b + "--\r\n"
}

func decryptOpts(v Verifier, keys keydir.Source, decrypt []string, reject bool) Options {
	o := inboundOpts(v, nil)
	o.Keys = keys
	l, err := NewDecryptList(decrypt)
	if err != nil {
		panic(err)
	}
	o.Decrypt, o.DecryptReject = l, reject
	return o
}

func msgBody(msg []byte) string {
	_, b, _ := strings.Cut(string(msg), "\r\n\r\n")
	return b
}

func checkDecrypted(t *testing.T, res *gomilter.Action, msg []byte, v *fakeVerifier, format string) {
	t.Helper()
	if res.Type != gomilter.ActionAccept {
		t.Fatalf("final %+v", res)
	}
	_, innerBody, _ := strings.Cut(innerEntity, "\r\n\r\n")
	if got := msgBody(msg); got != innerBody {
		t.Fatalf("body %q, want the inner body %q", got, innerBody)
	}
	if ct := header(msg, "Content-Type"); len(ct) != 1 || ct[0] != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if ct := header(msg, "Content-Transfer-Encoding"); len(ct) != 1 || ct[0] != "8bit" {
		t.Errorf("Content-Transfer-Encoding %q", ct)
	}
	for _, name := range []string{"Content-Disposition", "Content-Description"} {
		if len(header(msg, name)) != 0 {
			t.Errorf("outer %s kept", name)
		}
	}
	if s := header(msg, "Subject"); len(s) != 1 || s[0] != "statement" {
		t.Errorf("Subject %q", s)
	}
	tr := header(msg, DecryptedHeader)
	if len(tr) != 1 || !strings.HasPrefix(tr[0], format) || strings.Contains(tr[0], "forged") {
		t.Errorf("%s %q, want one starting %q", DecryptedHeader, tr, format)
	}
	if v != nil {
		if v.calls() != 1 || !strings.Contains(string(v.got[0]), "The secret plan.") {
			t.Errorf("verifier did not see the decrypted message (%d calls)", v.calls())
		}
		if ar := authResultsOf(msg); len(ar) == 0 || !strings.Contains(strings.Join(ar, "\n"), "smime=pass") {
			t.Errorf("Authentication-Results %q", ar)
		}
	}
}

func TestDecryptInbound(t *testing.T) {
	rsaK, ecK := rsaKey(t, "user@local.example"), ecKey(t, "user@local.example")
	other := ecKey(t, "user@local.example")
	pgpK := pgpUser(t, &dane.Fake{}, "user@local.example")
	keys := &keySource{smime: map[string][]keydir.SMIMEKey{"user@local.example": {ecK, rsaK}},
		pgp: map[string]pgp.EntityList{"user@local.example": {pgpK}}}
	for _, tc := range []struct {
		name, format string
		msg          func(t *testing.T) string
	}{
		{"danemilter rsa cbc", "smime; cipher=aes256-cbc", func(t *testing.T) string { return smimeMessage(t, smime.AES256CBC, rsaK.Cert) }},
		{"danemilter ecdh gcm", "smime; cipher=aes256-gcm", func(t *testing.T) string { return smimeMessage(t, smime.AES256GCM, ecK.Cert) }},
		{"danemilter two recipients", "smime; cipher=aes128-gcm", func(t *testing.T) string {
			return smimeMessage(t, smime.AES128GCM, other.Cert, ecK.Cert)
		}},
		{"openssl rsa", "smime; cipher=aes256-cbc", func(t *testing.T) string { return opensslMessage(t, "-aes256", rsaK.Cert) }},
		{"openssl ecdh", "smime; cipher=aes128-cbc", func(t *testing.T) string { return opensslMessage(t, "-aes128", ecK.Cert) }},
		{"openssl gcm", "smime; cipher=aes256-gcm", func(t *testing.T) string { return opensslMessage(t, "-aes-256-gcm", rsaK.Cert) }},
		{"openpgp", "pgp-mime", func(t *testing.T) string { return pgpMessage(t, pgpK) }},
		{"gpg", "pgp-mime", func(t *testing.T) string { return gpgMessage(t, pgpK) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.msg(t)
			v := &fakeVerifier{report: passReport("ceo@bank.example")}
			addr := start(t, decryptOpts(v, keys, []string{"local.example"}, false))
			res := simulate(t, addr, mtas[0].mta, []string{"user@local.example"}, msg)
			checkDecrypted(t, res.Final, res.Message, v, tc.format)
		})
	}
}

// TestDecryptUnchanged: what is not decrypted passes as it came (but a
// forged trace field goes).
func TestDecryptUnchanged(t *testing.T) {
	rsaK, ecK := rsaKey(t, "user@local.example"), ecKey(t, "user@local.example")
	notHeld := ecKey(t, "user@local.example")
	keys := &keySource{smime: map[string][]keydir.SMIMEKey{"user@local.example": {rsaK, ecK}}}
	good := smimeMessage(t, smime.AES256GCM, ecK.Cert)
	for _, tc := range []struct {
		name    string
		mta     int
		rcpts   []string
		decrypt []string
		msg     string
		reject  bool
		final   gomilter.ActionType
	}{
		{"key not held", 0, []string{"user@local.example"}, []string{"local.example"}, smimeMessage(t, smime.AES256GCM, notHeld.Cert), true, gomilter.ActionAccept},
		{"recipient not in decrypt", 0, []string{"user@local.example"}, []string{"boss@local.example"}, good, true, gomilter.ActionAccept},
		{"one recipient not in decrypt", 0, []string{"user@local.example", "e2e@local.example"}, []string{"user@local.example"}, good, true, gomilter.ActionAccept},
		{"outbound", 1, []string{"user@local.example"}, []string{"local.example"}, good, true, gomilter.ActionAccept},
		{"tampered tag pass", 0, []string{"user@local.example"}, []string{"local.example"}, tamper(good), false, gomilter.ActionAccept},
		{"tampered tag reject", 0, []string{"user@local.example"}, []string{"local.example"}, tamper(good), true, gomilter.ActionRejectWithCode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mta := mtas[0].mta
			if tc.mta == 1 {
				mta = miltertest.Postfix("ORIGINATING", "198.51.100.7")
			}
			addr := start(t, decryptOpts(nil, keys, tc.decrypt, tc.reject))
			res := simulate(t, addr, mta, tc.rcpts, tc.msg)
			if res.Final.Type != tc.final {
				t.Fatalf("final %+v, want %v", res.Final, tc.final)
			}
			if tc.final == gomilter.ActionRejectWithCode {
				if res.Final.SMTPReply == "" || !strings.Contains(res.Final.SMTPReply, "5.7.5") {
					t.Errorf("reply %q", res.Final.SMTPReply)
				}
				return
			}
			if msgBody(res.Message) != msgBody([]byte(tc.msg)) {
				t.Errorf("body changed")
			}
			if tr := header(res.Message, DecryptedHeader); len(tr) != 0 {
				t.Errorf("forged %s kept: %q", DecryptedHeader, tr)
			}
		})
	}
}

// tamper flips a bit near the end of the base64 body: in an
// AuthEnvelopedData that is the GCM tag (the mac, last).
func tamper(msg string) string {
	i := strings.LastIndex(strings.TrimRight(msg, "\r\n="), "\r\n") + 10
	c := msg[i]
	r := byte('A')
	if c == 'A' {
		r = 'B'
	}
	return msg[:i] + string(r) + msg[i+1:]
}
