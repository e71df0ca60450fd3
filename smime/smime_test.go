package smime

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/danemilter/danemilter/mimeentity"
)

// randomBytes returns n reproducible pseudo-random octets.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = seed
	_, _ = mrand.NewChaCha8(s).Read(b)
	return b
}

// roundTripSizes are the plaintext sizes every round trip covers: empty,
// around the AES block, around the 64 KiB chunk, and a larger message.
var roundTripSizes = []int{0, 1, 15, 16, 17, 64<<10 - 1, 64 << 10, 64<<10 + 1, 200_000}

// derBoundarySizes make the encryptedContent length cross the DER length
// forms: 112 and 128 octets of ciphertext (short and long form), 240 and
// 256 (one and two length octets), 65520 and 65536 (two and three).
var derBoundarySizes = []int{111, 112, 239, 240, 65519, 65535}

var ciphers = []Cipher{AES256CBC, AES128CBC, AES128GCM, AES256GCM}

// keyIVLen returns the CEK and IV (or nonce) lengths of c.
func keyIVLen(c Cipher) (keyLen, ivLen int) {
	switch c {
	case AES128CBC:
		return 16, 16
	case AES128GCM:
		return 16, 12
	case AES256GCM:
		return 32, 12
	}
	return 32, 16
}

// encryptBoth runs Encrypt or EncryptBase64 and returns the DER, decoding
// and checking the base64 form.
func encryptDER(t testing.TB, b64 bool, pt []byte, certs []*x509.Certificate, opts Options) []byte {
	t.Helper()
	var out bytes.Buffer
	if b64 {
		if err := EncryptBase64(&out, bytes.NewReader(pt), int64(len(pt)), certs, opts); err != nil {
			t.Fatalf("EncryptBase64: %v", err)
		}
		der, err := decodeBase64Body(out.Bytes())
		if err != nil {
			t.Fatalf("EncryptBase64 output: %v", err)
		}
		return der
	}
	if err := Encrypt(&out, bytes.NewReader(pt), int64(len(pt)), certs, opts); err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return out.Bytes()
}

// TestRoundTripGo decrypts with the test-only CMS reader: every size, all
// four ciphers, both output forms, one and three recipients, each recipient with
// its own key.
func TestRoundTripGo(t *testing.T) {
	rcpts := testRecipients(t, 3)
	sizes := append(append([]int{}, roundTripSizes...), derBoundarySizes...)
	for _, size := range sizes {
		pt := randomBytes(size, byte(size))
		for _, c := range ciphers {
			for _, n := range []int{1, 3} {
				for _, b64 := range []bool{false, true} {
					name := fmt.Sprintf("size=%d/%v/rcpts=%d/base64=%v", size, c, n, b64)
					t.Run(name, func(t *testing.T) {
						rs := rcpts[:n]
						der := encryptDER(t, b64, pt, certsOf(rs), Options{Cipher: c})
						if want := int64(len(pt)/16+1) * 16; int64(len(der)) < want {
							t.Fatalf("output %d octets, shorter than the ciphertext %d", len(der), want)
						}
						for i, r := range rs {
							d, err := decryptCMS(der, r)
							if err != nil {
								t.Fatalf("recipient %d: %v", i, err)
							}
							if !bytes.Equal(d.Plaintext, pt) {
								t.Fatalf("recipient %d: plaintext differs (got %d octets, want %d)", i, len(d.Plaintext), len(pt))
							}
							if d.Cipher != c || d.Recipients != n {
								t.Errorf("recipient %d: cipher %v with %d RecipientInfos, want %v with %d", i, d.Cipher, d.Recipients, c, n)
							}
						}
					})
				}
			}
		}
	}
}

// TestRoundTripLargeDERLength crosses the 2^24 boundary of the
// encryptedContent length (three to four length octets).
func TestRoundTripLargeDERLength(t *testing.T) {
	if testing.Short() {
		t.Skip("16 MiB round trip in -short mode")
	}
	rcpt := testRecipients(t, 1)[0]
	for _, size := range []int{1<<24 - 17, 1<<24 - 16} {
		pt := randomBytes(size, 7)
		der := encryptDER(t, false, pt, []*x509.Certificate{rcpt.Cert}, Options{})
		d, err := decryptCMS(der, rcpt)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(d.Plaintext, pt) {
			t.Fatalf("size %d: plaintext differs", size)
		}
	}
}

// needOpenSSL returns the path of openssl, or skips the test when it is
// missing, unless DANEMILTER_INTEGRATION=1 demands it.
func needOpenSSL(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("DANEMILTER_INTEGRATION") == "1" {
			tb.Fatalf("openssl not found and DANEMILTER_INTEGRATION=1: %v", err)
		}
		tb.Skip("openssl not in PATH (set DANEMILTER_INTEGRATION=1 to make this fatal)")
	}
	return p
}

// writePEM writes a recipient's certificate and PKCS #8 key to dir and
// returns their paths.
func writePEM(tb testing.TB, dir string, i int, r testRecipient) (certPath, keyPath string) {
	tb.Helper()
	pk, err := x509.MarshalPKCS8PrivateKey(r.Key)
	if err != nil {
		tb.Fatal(err)
	}
	certPath = filepath.Join(dir, fmt.Sprintf("cert%d.pem", i))
	keyPath = filepath.Join(dir, fmt.Sprintf("key%d.pem", i))
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Cert.Raw}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return certPath, keyPath
}

func runOpenSSL(tb testing.TB, openssl string, args ...string) []byte {
	tb.Helper()
	out, err := exec.Command(openssl, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// smimeMessage wraps an EncryptBase64 body as a whole message with the
// OuterFieldsFor header, as the milter sends it.
func smimeMessage(body []byte, c Cipher) []byte {
	var b bytes.Buffer
	b.WriteString("From: sender@example.test\r\nTo: rcpt@example.test\r\nSubject: test\r\nMIME-Version: 1.0\r\n")
	for _, f := range OuterFieldsFor(c) {
		b.WriteString(f.Name + ": " + f.Value + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// TestOpenSSLRoundTrip lets OpenSSL, an independent implementation, decrypt
// the DER (openssl cms -decrypt -inform DER) and the whole S/MIME message
// (openssl cms -decrypt, SMIME input), for every size, all ciphers, and one
// and three recipients, each decrypting with its own key.
func TestOpenSSLRoundTrip(t *testing.T) {
	openssl := needOpenSSL(t)
	rcpts := testRecipients(t, 3)
	keyDir := t.TempDir()
	type files struct{ cert, key string }
	pems := make([]files, len(rcpts))
	for i, r := range rcpts {
		pems[i].cert, pems[i].key = writePEM(t, keyDir, i, r)
	}
	for _, size := range roundTripSizes {
		pt := randomBytes(size, byte(size)+1)
		for _, c := range ciphers {
			for _, n := range []int{1, 3} {
				t.Run(fmt.Sprintf("size=%d/%v/rcpts=%d", size, c, n), func(t *testing.T) {
					t.Parallel()
					dir := t.TempDir()
					certs := certsOf(rcpts[:n])

					var der bytes.Buffer
					if err := Encrypt(&der, bytes.NewReader(pt), int64(len(pt)), certs, Options{Cipher: c}); err != nil {
						t.Fatal(err)
					}
					derPath := filepath.Join(dir, "msg.der")
					if err := os.WriteFile(derPath, der.Bytes(), 0o600); err != nil {
						t.Fatal(err)
					}
					var body bytes.Buffer
					if err := EncryptBase64(&body, bytes.NewReader(pt), int64(len(pt)), certs, Options{Cipher: c}); err != nil {
						t.Fatal(err)
					}
					emlPath := filepath.Join(dir, "msg.eml")
					if err := os.WriteFile(emlPath, smimeMessage(body.Bytes(), c), 0o600); err != nil {
						t.Fatal(err)
					}

					// OpenSSL parses the structure and sees what we meant.
					printed := string(runOpenSSL(t, openssl, "cms", "-cmsout", "-print", "-inform", "DER", "-in", derPath))
					wantCT := "pkcs7-envelopedData"
					if c.authenticated() {
						wantCT = "id-smime-ct-authEnvelopedData"
					}
					for _, want := range []string{wantCT, "rsaEncryption", opensslName(c)} {
						if !strings.Contains(printed, want) {
							t.Errorf("openssl cms -print output lacks %q:\n%s", want, printed)
						}
					}
					if got := strings.Count(printed, "d.ktri:"); got != n {
						t.Errorf("openssl sees %d KeyTransRecipientInfos, want %d", got, n)
					}
					runOpenSSL(t, openssl, "asn1parse", "-inform", "DER", "-in", derPath, "-noout")

					for i := range n {
						for _, in := range []struct{ name, path, inform string }{
							{"der", derPath, "DER"},
							{"smime", emlPath, "SMIME"},
						} {
							out := filepath.Join(dir, fmt.Sprintf("out-%s-%d", in.name, i))
							runOpenSSL(t, openssl, "cms", "-decrypt", "-binary", "-inform", in.inform, "-in", in.path,
								"-recip", pems[i].cert, "-inkey", pems[i].key, "-out", out)
							got, err := os.ReadFile(out)
							if err != nil {
								t.Fatal(err)
							}
							if !bytes.Equal(got, pt) {
								t.Errorf("%s, recipient %d: openssl decrypted %d octets that differ from the %d of the plaintext", in.name, i, len(got), len(pt))
							}
						}
					}
				})
			}
		}
	}
}

// failWriter fails after accepting limit octets.
type failWriter struct {
	limit int
	n     int
}

var errWrite = errors.New("write failed")

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		k := w.limit - w.n
		w.n = w.limit
		return k, errWrite
	}
	w.n += len(p)
	return len(p), nil
}

// TestEncryptErrors checks every documented error and that the errors found
// before the first octet is written leave w untouched.
func TestEncryptErrors(t *testing.T) {
	rcpt := testRecipients(t, 1)[0].Cert
	ed := unsupportedCert(t)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224Cert, err := selfSigned("p224@example.test", big.NewInt(7), p224.Public(), p224)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// crypto/x509 can neither make nor parse X25519 certificates; a
	// hand-filled one stands in for what a caller might build.
	x25519Cert := &x509.Certificate{PublicKey: x25519.PublicKey(), RawIssuer: rcpt.RawIssuer, SerialNumber: big.NewInt(9)}
	errRead := errors.New("read failed")
	plain := []byte("hello, world\r\n")

	tests := []struct {
		name      string
		r         io.Reader
		size      int64
		certs     []*x509.Certificate
		opts      Options
		want      error
		wantIndex int  // for *RecipientError; -1 when none is expected
		silent    bool // nothing may have been written
	}{
		{"no recipients (nil)", bytes.NewReader(plain), int64(len(plain)), nil, Options{}, ErrNoRecipients, -1, true},
		{"no recipients (empty)", bytes.NewReader(plain), int64(len(plain)), []*x509.Certificate{}, Options{}, ErrNoRecipients, -1, true},
		{"Ed25519 recipient", bytes.NewReader(plain), int64(len(plain)), []*x509.Certificate{ed}, Options{}, ErrUnsupportedKey, 0, true},
		{"Ed25519 second recipient", bytes.NewReader(plain), int64(len(plain)), []*x509.Certificate{rcpt, ed}, Options{}, ErrUnsupportedKey, 1, true},
		{"P-224 recipient", bytes.NewReader(plain), int64(len(plain)), []*x509.Certificate{rcpt, p224Cert}, Options{Cipher: AES256GCM}, ErrUnsupportedKey, 1, true},
		{"X25519 recipient", bytes.NewReader(plain), int64(len(plain)), []*x509.Certificate{x25519Cert}, Options{}, ErrUnsupportedKey, 0, true},
		{"unparsed certificate with SKI option", bytes.NewReader(plain), int64(len(plain)), []*x509.Certificate{{PublicKey: rcpt.PublicKey}}, Options{UseSKI: true}, ErrUnsupportedKey, 0, true},
		{"GCM size beyond 2^36", bytes.NewReader(plain), gcmMaxSize + 1, []*x509.Certificate{rcpt}, Options{Cipher: AES128GCM}, ErrSizeMismatch, -1, true},
		{"GCM short reader", bytes.NewReader(plain), int64(len(plain)) + 1, []*x509.Certificate{rcpt}, Options{Cipher: AES128GCM}, ErrSizeMismatch, -1, false},
		{"GCM long reader", bytes.NewReader(plain), int64(len(plain)) - 1, []*x509.Certificate{rcpt}, Options{Cipher: AES256GCM}, ErrSizeMismatch, -1, false},
		{"nil certificate", bytes.NewReader(plain), int64(len(plain)), []*x509.Certificate{rcpt, nil}, Options{}, ErrUnsupportedKey, 1, true},
		{"unparsed certificate", bytes.NewReader(plain), int64(len(plain)), []*x509.Certificate{{PublicKey: rcpt.PublicKey}}, Options{}, ErrUnsupportedKey, 0, true},
		{"unknown cipher", bytes.NewReader(plain), int64(len(plain)), []*x509.Certificate{rcpt}, Options{Cipher: Cipher(99)}, ErrUnsupportedCipher, -1, true},
		{"negative size", bytes.NewReader(plain), -1, []*x509.Certificate{rcpt}, Options{}, ErrSizeMismatch, -1, true},
		{"huge size", bytes.NewReader(plain), 1 << 62, []*x509.Certificate{rcpt}, Options{}, ErrSizeMismatch, -1, true},
		{"short reader", bytes.NewReader(plain), int64(len(plain)) + 1, []*x509.Certificate{rcpt}, Options{}, ErrSizeMismatch, -1, false},
		{"short reader, empty", bytes.NewReader(nil), 1, []*x509.Certificate{rcpt}, Options{}, ErrSizeMismatch, -1, false},
		{"short reader, many chunks", bytes.NewReader(make([]byte, 200_000)), 300_000, []*x509.Certificate{rcpt}, Options{}, ErrSizeMismatch, -1, false},
		{"long reader", bytes.NewReader(plain), int64(len(plain)) - 1, []*x509.Certificate{rcpt}, Options{}, ErrSizeMismatch, -1, false},
		{"long reader, size 0", bytes.NewReader(plain), 0, []*x509.Certificate{rcpt}, Options{}, ErrSizeMismatch, -1, false},
		{"long reader, chunk multiple", bytes.NewReader(make([]byte, 2*chunkSize+1)), 2 * chunkSize, []*x509.Certificate{rcpt}, Options{}, ErrSizeMismatch, -1, false},
		{"reader error", iotest.ErrReader(errRead), 10, []*x509.Certificate{rcpt}, Options{}, errRead, -1, false},
		{"reader error after data", io.MultiReader(bytes.NewReader(plain), iotest.ErrReader(errRead)), int64(len(plain)), []*x509.Certificate{rcpt}, Options{}, errRead, -1, false},
		{"rand error", bytes.NewReader(plain), int64(len(plain)), []*x509.Certificate{rcpt}, Options{Rand: iotest.ErrReader(errRead)}, errRead, -1, true},
	}
	for _, tt := range tests {
		for _, b64 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/base64=%v", tt.name, b64), func(t *testing.T) {
				if s, ok := tt.r.(io.Seeker); ok {
					if _, err := s.Seek(0, io.SeekStart); err != nil {
						t.Fatal(err)
					}
				}
				var out bytes.Buffer
				var err error
				if b64 {
					err = EncryptBase64(&out, tt.r, tt.size, tt.certs, tt.opts)
				} else {
					err = Encrypt(&out, tt.r, tt.size, tt.certs, tt.opts)
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				if !strings.HasPrefix(err.Error(), "smime: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				var re *RecipientError
				switch {
				case tt.wantIndex >= 0 && !errors.As(err, &re):
					t.Errorf("err = %v, want a *RecipientError", err)
				case tt.wantIndex >= 0 && re.Index != tt.wantIndex:
					t.Errorf("RecipientError.Index = %d, want %d", re.Index, tt.wantIndex)
				case tt.wantIndex < 0 && errors.As(err, &re):
					t.Errorf("unexpected *RecipientError %v", err)
				}
				if tt.silent && out.Len() != 0 {
					t.Errorf("wrote %d octets before failing", out.Len())
				}
			})
		}
	}
}

// TestRecipientErrorSubject checks that the error names the certificate.
func TestRecipientErrorSubject(t *testing.T) {
	ed := unsupportedCert(t)
	err := Encrypt(io.Discard, strings.NewReader("x"), 1, []*x509.Certificate{ed}, Options{})
	var re *RecipientError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *RecipientError", err)
	}
	if re.Subject != ed.Subject.String() || !strings.Contains(err.Error(), "ed@example.test") {
		t.Errorf("RecipientError %q, Subject %q: does not name %q", err, re.Subject, ed.Subject)
	}
}

// TestWriteErrors fails the writer at every interesting offset: in the
// header, in the first chunk, later, and in the final base64 line.
func TestWriteErrors(t *testing.T) {
	rcpt := testRecipients(t, 1)[0].Cert
	pt := randomBytes(3*chunkSize+5, 3)
	for _, limit := range []int{0, 10, 500, chunkSize, 2*chunkSize + 100, 3 * chunkSize} {
		for _, b64 := range []bool{false, true} {
			t.Run(fmt.Sprintf("limit=%d/base64=%v", limit, b64), func(t *testing.T) {
				w := &failWriter{limit: limit}
				var err error
				if b64 {
					err = EncryptBase64(w, bytes.NewReader(pt), int64(len(pt)), []*x509.Certificate{rcpt}, Options{})
				} else {
					err = Encrypt(w, bytes.NewReader(pt), int64(len(pt)), []*x509.Certificate{rcpt}, Options{})
				}
				if !errors.Is(err, errWrite) {
					t.Fatalf("err = %v, want %v", err, errWrite)
				}
			})
		}
	}
	// The last base64 line is written by Close: fail exactly there.
	var full bytes.Buffer
	small := []byte("abc")
	if err := EncryptBase64(&full, bytes.NewReader(small), 3, []*x509.Certificate{rcpt}, Options{}); err != nil {
		t.Fatal(err)
	}
	lastLine := len(full.Bytes()) - (bytes.LastIndex(full.Bytes()[:full.Len()-2], []byte("\r\n")) + 2)
	w := &failWriter{limit: full.Len() - lastLine}
	if err := EncryptBase64(w, bytes.NewReader(small), 3, []*x509.Certificate{rcpt}, Options{}); !errors.Is(err, errWrite) {
		t.Fatalf("failing the last line: err = %v, want %v", err, errWrite)
	}
}

// TestOptionsRand checks that the CEK and IV come from Options.Rand, in
// that order, and that a fresh draw happens on every call.
func TestOptionsRand(t *testing.T) {
	rcpt := testRecipients(t, 1)[0]
	for _, c := range ciphers {
		keyLen, ivLen := keyIVLen(c)
		want := randomBytes(keyLen+ivLen, 99)
		der := encryptDER(t, false, []byte("x"), []*x509.Certificate{rcpt.Cert}, Options{Cipher: c, Rand: bytes.NewReader(want)})
		d, err := decryptCMS(der, rcpt)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.CEK, want[:keyLen]) || !bytes.Equal(d.IV, want[keyLen:]) {
			t.Errorf("%v: CEK/IV not taken from Options.Rand", c)
		}
	}
	a := encryptDER(t, false, []byte("x"), []*x509.Certificate{rcpt.Cert}, Options{})
	b := encryptDER(t, false, []byte("x"), []*x509.Certificate{rcpt.Cert}, Options{})
	da, errA := decryptCMS(a, rcpt)
	db, errB := decryptCMS(b, rcpt)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if bytes.Equal(da.CEK, db.CEK) || bytes.Equal(da.IV, db.IV) {
		t.Error("two messages share a CEK or IV")
	}
}

// TestConcurrentEncrypt runs many Encrypt calls at once with different
// options (cipher, Rand, output form, recipients); run it with -race. Every
// result must decrypt with the options its own call was given.
func TestConcurrentEncrypt(t *testing.T) {
	rcpts := testRecipients(t, 3)
	const workers, rounds = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				c := ciphers[(w+i)%len(ciphers)]
				keyLen, _ := keyIVLen(c)
				secret := randomBytes(keyLen+16, byte(w*rounds+i))
				n := 1 + (w+i)%3
				pt := randomBytes(1000*w+i, byte(w))
				var out bytes.Buffer
				var err error
				opts := Options{Cipher: c, Rand: bytes.NewReader(secret)}
				b64 := w%2 == 0
				if b64 {
					err = EncryptBase64(&out, bytes.NewReader(pt), int64(len(pt)), certsOf(rcpts[:n]), opts)
				} else {
					err = Encrypt(&out, bytes.NewReader(pt), int64(len(pt)), certsOf(rcpts[:n]), opts)
				}
				if err != nil {
					errs <- err
					continue
				}
				der := out.Bytes()
				if b64 {
					if der, err = decodeBase64Body(der); err != nil {
						errs <- err
						continue
					}
				}
				r := rcpts[(w+i)%n]
				d, err := decryptCMS(der, r)
				switch {
				case err != nil:
					errs <- err
				case !bytes.Equal(d.Plaintext, pt):
					errs <- fmt.Errorf("worker %d round %d: plaintext differs", w, i)
				case d.Cipher != c || !bytes.Equal(d.CEK, secret[:keyLen]) || d.Recipients != n:
					errs <- fmt.Errorf("worker %d round %d: got another call's options", w, i)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestAppendHeader checks the DER length forms at their boundaries (X.690
// §8.1.3) against encoding/asn1.
func TestAppendHeader(t *testing.T) {
	tests := []struct {
		n    int64
		want []byte
	}{
		{0, []byte{0x04, 0x00}},
		{127, []byte{0x04, 0x7f}},
		{128, []byte{0x04, 0x81, 0x80}},
		{255, []byte{0x04, 0x81, 0xff}},
		{256, []byte{0x04, 0x82, 0x01, 0x00}},
		{65535, []byte{0x04, 0x82, 0xff, 0xff}},
		{65536, []byte{0x04, 0x83, 0x01, 0x00, 0x00}},
		{1 << 24, []byte{0x04, 0x84, 0x01, 0x00, 0x00, 0x00}},
		{1 << 32, []byte{0x04, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00}},
		{maxSize + 16, []byte{0x04, 0x87, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10}},
	}
	for _, tt := range tests {
		got := appendHeader(nil, 0x04, tt.n)
		if !bytes.Equal(got, tt.want) {
			t.Errorf("appendHeader(%d) = %x, want %x", tt.n, got, tt.want)
		}
		if tlvLen(tt.n) != int64(len(tt.want))+tt.n {
			t.Errorf("tlvLen(%d) = %d, want %d", tt.n, tlvLen(tt.n), int64(len(tt.want))+tt.n)
		}
	}
}

func TestCipherString(t *testing.T) {
	for c, want := range map[Cipher]string{
		AES256CBC: "aes256-cbc", AES128CBC: "aes128-cbc", AES128GCM: "aes128-gcm", AES256GCM: "aes256-gcm", Cipher(7): "Cipher(7)",
	} {
		if got := c.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(c), got, want)
		}
	}
	var zero Options
	if zero.Cipher != AES256CBC || zero.RSAOAEP || zero.UseSKI {
		t.Error("the zero Options do not select AES-256-CBC, RSA v1.5 and issuer and serial number")
	}
}

func TestParseCipher(t *testing.T) {
	tests := []struct {
		in   string
		want Cipher
		ok   bool
	}{
		{"aes256-cbc", AES256CBC, true},
		{"aes128-cbc", AES128CBC, true},
		{"aes128-gcm", AES128GCM, true},
		{"aes256-gcm", AES256GCM, true},
		{"AES256-GCM", AES256GCM, true},
		{"Aes128-Cbc", AES128CBC, true},
		{"", 0, false},
		{"aes256", 0, false},
		{"aes-256-gcm", 0, false},
		{" aes256-gcm", 0, false},
		{"aes192-cbc", 0, false},
		{"des-cbc", 0, false},
		{"Cipher(7)", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseCipher(tt.in)
		switch {
		case tt.ok && (err != nil || got != tt.want):
			t.Errorf("ParseCipher(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		case !tt.ok && !errors.Is(err, ErrUnsupportedCipher):
			t.Errorf("ParseCipher(%q) error = %v, want ErrUnsupportedCipher", tt.in, err)
		case !tt.ok && !strings.Contains(err.Error(), "aes256-gcm"):
			t.Errorf("ParseCipher(%q) error %q does not list the accepted names", tt.in, err)
		}
	}
	for _, c := range ciphers {
		if got, err := ParseCipher(c.String()); err != nil || got != c {
			t.Errorf("ParseCipher(%v.String()) = %v, %v", c, got, err)
		}
	}
}

func TestOuterFields(t *testing.T) {
	want := []Field{
		{Name: "Content-Type", Value: `application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"`},
		{Name: "Content-Transfer-Encoding", Value: "base64"},
		{Name: "Content-Disposition", Value: `attachment; filename="smime.p7m"`},
		{Name: "Content-Description", Value: "S/MIME Encrypted Message"},
	}
	got := OuterFieldsFor(AES256CBC)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("OuterFieldsFor(AES256CBC) = %q, want %q", got, want)
	}
	for _, c := range append(ciphers, Cipher(99)) {
		fields := OuterFieldsFor(c)
		wantType := want[0].Value
		if c.authenticated() {
			// RFC 8551 §3.2.2: AuthEnvelopedData is authEnveloped-data.
			wantType = `application/pkcs7-mime; smime-type=authEnveloped-data; name="smime.p7m"`
		}
		if fmt.Sprint(fields[1:]) != fmt.Sprint(want[1:]) || fields[0] != (Field{Name: "Content-Type", Value: wantType}) {
			t.Errorf("OuterFieldsFor(%v) = %q", c, fields)
		}
		for _, f := range fields {
			if !mimeentity.IsEntityField(f.Name) {
				t.Errorf("outer field %s is not an entity header: the milter would not replace it", f.Name)
			}
			if strings.HasPrefix(f.Value, " ") {
				t.Errorf("outer field %s has a leading space", f.Name)
			}
		}
		// Our own output must count as encrypted, or a second pass would
		// wrap it again.
		if !mimeentity.IsEncrypted(fields[0].Value) {
			t.Errorf("IsEncrypted(OuterFieldsFor(%v) Content-Type) = false", c)
		}
	}
	// Callers own the slice.
	got[0].Value = "text/plain"
	if OuterFieldsFor(AES256CBC)[0].Value == "text/plain" {
		t.Error("OuterFieldsFor returns shared state")
	}
}

// genReader yields pseudo-random octets without holding a message in
// memory: the input side of the memory test.
type genReader struct{ c *mrand.ChaCha8 }

func newGenReader() *genReader { return &genReader{mrand.NewChaCha8([32]byte{1})} }

func (g *genReader) Read(p []byte) (int, error) { return g.c.Read(p) }

// peakWriter discards what it gets and samples the live heap every few
// writes.
type peakWriter struct {
	n    int
	peak uint64
	ms   runtime.MemStats
}

func (w *peakWriter) Write(p []byte) (int, error) {
	w.n++
	if w.n%16 == 0 {
		runtime.ReadMemStats(&w.ms)
		w.peak = max(w.peak, w.ms.HeapAlloc)
	}
	return len(p), nil
}

// measureEncrypt encrypts size octets from a generator to a discarding
// writer and returns the octets allocated and the rise of the live heap.
func measureEncrypt(tb testing.TB, size int64, certs []*x509.Certificate, b64 bool, c Cipher) (alloc, peakRise uint64) {
	tb.Helper()
	r := io.LimitReader(newGenReader(), size)
	w := &peakWriter{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var err error
	if b64 {
		err = EncryptBase64(w, r, size, certs, Options{Cipher: c})
	} else {
		err = Encrypt(w, r, size, certs, Options{Cipher: c})
	}
	runtime.ReadMemStats(&after)
	if err != nil {
		tb.Fatal(err)
	}
	if w.peak > before.HeapAlloc {
		peakRise = w.peak - before.HeapAlloc
	}
	return after.TotalAlloc - before.TotalAlloc, peakRise
}

// TestPeakMemory proves the streaming claim: encrypting 25 MB from a reader
// that is not in memory allocates a small, fixed amount, not the message.
func TestPeakMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("25 MB encryption in -short mode")
	}
	const size = 25 << 20
	certs := certsOf(testRecipients(t, 3))
	for _, c := range []Cipher{AES256CBC, AES256GCM} {
		for _, b64 := range []bool{false, true} {
			alloc, peak := measureEncrypt(t, size, certs, b64, c)
			t.Logf("%v/base64=%v: 25 MiB encrypted with %d KiB allocated in total, live heap rose by at most %d KiB", c, b64, alloc>>10, peak>>10)
			if alloc > 4<<20 {
				t.Errorf("%v/base64=%v: allocated %d octets for a %d octet message; want < 4 MiB", c, b64, alloc, size)
			}
		}
	}
}

// TestDecryptorRejects keeps the test-only CMS reader honest: it must fail
// on the wrong key, a flipped length octet, trailing data and a bad pad.
func TestDecryptorRejects(t *testing.T) {
	rcpts := testRecipients(t, 2)
	pt := []byte("some plaintext")
	der := encryptDER(t, false, pt, []*x509.Certificate{rcpts[0].Cert}, Options{})
	if _, err := decryptCMS(der, rcpts[0]); err != nil {
		t.Fatalf("good message: %v", err)
	}
	if _, err := decryptCMS(der, rcpts[1]); err == nil {
		t.Error("decrypted for a recipient that is not in the message")
	}
	bad := func(name string, mutate func([]byte) []byte) {
		t.Helper()
		b := mutate(bytes.Clone(der))
		if d, err := decryptCMS(b, rcpts[0]); err == nil && bytes.Equal(d.Plaintext, pt) {
			t.Errorf("%s: accepted", name)
		}
	}
	bad("outer length", func(b []byte) []byte { b[3]++; return b })
	bad("trailing octet", func(b []byte) []byte { return append(b, 0) })
	bad("truncated", func(b []byte) []byte { return b[:len(b)-1] })
	bad("last ciphertext octet", func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	bad("encrypted key", func(b []byte) []byte {
		i := bytes.Index(b, []byte{0x04, 0x82, 0x01, 0x00}) // the 256-octet RSA block
		b[i+10] ^= 1
		return b
	})
}
