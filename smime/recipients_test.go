package smime

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// TestParseEnvelopeOurs: ParseEnvelope reads what Encrypt writes, for
// every cipher, key type and identifier, in DER and re-encoded as BER, and
// Includes names exactly the recipients.
func TestParseEnvelopeOurs(t *testing.T) {
	outsider := testKeys(t, "p256", 3)[2]
	for _, c := range allCiphers() {
		for _, kinds := range [][]string{{"rsa"}, {"p256"}, {"p384", "rsa", "p521"}} {
			for _, ski := range []bool{false, true} {
				for _, oaep := range []bool{false, true} {
					name := fmt.Sprintf("%s/%s/ski=%v/oaep=%v", c, strings.Join(kinds, "+"), ski, oaep)
					t.Run(name, func(t *testing.T) {
						var ks []kindKey
						for _, k := range kinds {
							ks = append(ks, testKeys(t, k, 1)[0])
						}
						pt := randomBytes(1000, 3)
						der := encryptFor(t, pt, ks, Options{Cipher: c, UseSKI: ski, RSAOAEP: oaep})
						for form, b := range map[string][]byte{"der": der, "ber": toBER(t, der, 100)} {
							env, err := ParseEnvelope(bytes.NewReader(b))
							if err != nil {
								t.Fatalf("%s: %v", form, err)
							}
							if env.Auth != c.authenticated() {
								t.Errorf("%s: Auth = %v for %s", form, env.Auth, c)
							}
							if len(env.Recipients) != len(ks) {
								t.Errorf("%s: %d recipients, want %d", form, len(env.Recipients), len(ks))
							}
							for _, k := range ks {
								if !env.Includes(k.Cert) {
									t.Errorf("%s: Includes(%s recipient) = false", form, k.Kind)
								}
							}
							if env.Includes(outsider.Cert) {
								t.Errorf("%s: Includes(outsider) = true", form)
							}
						}
					})
				}
			}
		}
	}
}

// TestParseEnvelopeBase64: the base64 body EncryptBase64 writes, also with
// the spaces and tabs some agents leave, and refused with anything else.
func TestParseEnvelopeBase64(t *testing.T) {
	k := testKeys(t, "rsa", 1)[0]
	var body bytes.Buffer
	pt := randomBytes(5000, 1)
	if err := EncryptBase64(&body, bytes.NewReader(pt), int64(len(pt)), kindCerts([]kindKey{k}), Options{}); err != nil {
		t.Fatal(err)
	}
	b := body.String()
	for name, in := range map[string]string{
		"as written":     b,
		"spaces":         strings.ReplaceAll(b, "\r\n", " \t\r\n"),
		"bare LF":        strings.ReplaceAll(b, "\r\n", "\n"),
		"blank lines":    "\r\n" + b + "\r\n\r\n",
		"one byte reads": b, // read through iotest.OneByteReader below
	} {
		var r = strings.NewReader(in)
		var rr io.Reader = r
		if name == "one byte reads" {
			rr = iotest.OneByteReader(r)
		}
		env, err := ParseEnvelopeBase64(rr)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !env.Includes(k.Cert) {
			t.Errorf("%s: recipient not included", name)
		}
	}
	for name, in := range map[string]string{
		"text after":      b + "Hello, this is plaintext.\r\n",
		"after padding":   strings.TrimRight(b, "\r\n") + "==AAAA\r\n",
		"not base64":      "*" + b,
		"cut":             b[:len(b)/2],
		"empty":           "",
		"only whitespace": " \r\n\t\r\n",
	} {
		if _, err := ParseEnvelopeBase64(strings.NewReader(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

// TestParseEnvelopeOpenSSL: `openssl cms -encrypt`'s output, DER and
// S/MIME, definite and streamed (indefinite lengths), with issuer and
// serial or subject key identifiers, for RSA and EC recipients at once.
func TestParseEnvelopeOpenSSL(t *testing.T) {
	openssl := needOpenSSL(t)
	ks := []kindKey{testKeys(t, "rsa", 1)[0], testKeys(t, "p256", 1)[0], testKeys(t, "p384", 1)[0]}
	outsider := testKeys(t, "rsa", 2)[1]
	dir := t.TempDir()
	var certPaths []string
	for i, k := range ks {
		p, _ := writeKeyPEM(t, dir, fmt.Sprint("r", i), k.Cert, k.Key)
		certPaths = append(certPaths, p)
	}
	in := filepath.Join(dir, "plain")
	if err := os.WriteFile(in, []byte(strings.Repeat("Content-Type: text/plain\r\n\r\nreadable text\r\n", 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cipher := range []string{"-aes256", "-aes-128-gcm"} {
		for _, keyid := range []bool{false, true} {
			for _, stream := range []bool{false, true} {
				for _, form := range []string{"DER", "SMIME"} {
					t.Run(fmt.Sprintf("%s/keyid=%v/stream=%v/%s", cipher, keyid, stream, form), func(t *testing.T) {
						out := filepath.Join(t.TempDir(), "msg")
						args := []string{"cms", "-encrypt", "-binary", "-outform", form, cipher, "-in", in, "-out", out}
						if keyid {
							args = append(args, "-keyid")
						}
						if stream {
							args = append(args, "-stream")
						}
						for _, p := range certPaths {
							args = append(args, "-recip", p)
						}
						runOpenSSL(t, openssl, args...)
						b, err := os.ReadFile(out)
						if err != nil {
							t.Fatal(err)
						}
						var env *Envelope
						if form == "DER" {
							env, err = ParseEnvelope(bytes.NewReader(b))
						} else {
							_, body, ok := bytes.Cut(b, []byte("\n\n"))
							if !ok {
								t.Fatalf("no header end in openssl's S/MIME output")
							}
							env, err = ParseEnvelopeBase64(bytes.NewReader(body))
						}
						if err != nil {
							t.Fatal(err)
						}
						for _, k := range ks {
							if !env.Includes(k.Cert) {
								t.Errorf("%s recipient not included", k.Kind)
							}
						}
						if env.Includes(outsider.Cert) {
							t.Error("outsider included")
						}
					})
				}
			}
		}
	}
}

// fakeEnveloped is the first fake of issue 9: a SEQUENCE header, the
// envelopedData OID, then plaintext.
func fakeEnveloped() []byte {
	b := []byte{0x30, 0x82, 0x00, 0x32, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}
	return append(b, "Dear partner, the merger closes on Friday. Secret!"...)
}

// handEnvelope builds a complete EnvelopedData around content with the
// header code of Encrypt: a RecipientInfo that names cert as a real one
// would, and content in place of the ciphertext.
func handEnvelope(t testing.TB, k kindKey, content []byte) []byte {
	t.Helper()
	rs, err := prepareRecipients(kindCerts([]kindKey{k}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cek := make([]byte, 32)
	ris, allV0, err := recipientInfos(cek, rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := asn1MarshalOctets(make([]byte, 16))
	alg := append(appendHeader(nil, tagSequence, int64(11+len(iv))), 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a)
	alg = append(alg, iv...)
	h, err := envelope{allV0: allV0, ris: ris, alg: alg, ctLen: int64(len(content))}.header()
	if err != nil {
		t.Fatal(err)
	}
	return append(h, content...)
}

func asn1MarshalOctets(b []byte) ([]byte, error) {
	return append(appendHeader(nil, tagOctetString, int64(len(b))), b...), nil
}

// TestParseEnvelopeRefuses: the fakes of issue 9, truncations, trailing
// octets and other structures that are not one complete envelope with
// ciphertext.
func TestParseEnvelopeRefuses(t *testing.T) {
	k := testKeys(t, "rsa", 1)[0]
	good := encryptFor(t, randomBytes(300, 9), []kindKey{k}, Options{})
	gcm := encryptFor(t, randomBytes(300, 9), []kindKey{k}, Options{Cipher: AES128GCM})
	ber := toBER(t, good, 64)
	text := []byte(strings.Repeat("The quarterly numbers are attached below. ", 8)[:320])
	if len(text)%16 != 0 {
		t.Fatal("text length")
	}
	// A complete, well-formed envelope naming the recipient, with text as
	// its "ciphertext".
	plainInside := handEnvelope(t, k, text)
	if _, err := ParseEnvelope(bytes.NewReader(handEnvelope(t, k, randomBytes(320, 4)))); err != nil {
		t.Fatalf("the hand-built envelope with random content: %v", err)
	}
	signedData := append([]byte(nil), good...)
	copy(signedData[bytes.Index(signedData, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}):], []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02})

	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"issue 9 fake", fakeEnveloped(), ErrMalformed},
		{"fake with the length fixed", append([]byte{0x30, byte(len(fakeEnveloped()) - 2)}, fakeEnveloped()[4:]...), ErrMalformed},
		{"plaintext in a complete envelope", plainInside, ErrNotCiphertext},
		{"empty", nil, ErrMalformed},
		{"garbage", []byte("hello world, this is not DER"), ErrMalformed},
		{"trailing octet", append(append([]byte(nil), good...), 0), ErrMalformed},
		{"trailing text", append(append([]byte(nil), good...), "PS: plaintext"...), ErrMalformed},
		{"BER trailing octets", append(append([]byte(nil), ber...), 0, 0), ErrMalformed},
		{"signedData", signedData, ErrUnsupportedAlgorithm},
		{"CBC length not a block multiple", handEnvelope(t, k, randomBytes(33, 2)), ErrMalformed},
		{"no content", handEnvelope(t, k, nil), ErrMalformed},
	}
	for _, cut := range []int{1, 2, 10, len(good) / 2, len(good) - 17, len(good) - 1} {
		cases = append(cases, struct {
			name string
			in   []byte
			want error
		}{fmt.Sprintf("DER cut at %d", cut), good[:cut], ErrMalformed})
	}
	for _, cut := range []int{2, len(ber) / 2, len(ber) - 2, len(ber) - 1} {
		cases = append(cases, struct {
			name string
			in   []byte
			want error
		}{fmt.Sprintf("BER cut at %d", cut), ber[:cut], ErrMalformed})
	}
	for _, cut := range []int{len(gcm) - 1, len(gcm) - 18} { // into the mac
		cases = append(cases, struct {
			name string
			in   []byte
			want error
		}{fmt.Sprintf("GCM cut at %d", cut), gcm[:cut], ErrMalformed})
	}
	for _, c := range cases {
		env, err := ParseEnvelope(bytes.NewReader(c.in))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if env != nil {
			t.Errorf("%s: an envelope came back with the error", c.name)
		}
	}
	// And through base64, as the milter sees the fake.
	if _, err := ParseEnvelopeBase64(strings.NewReader(base64.StdEncoding.EncodeToString(fakeEnveloped()))); !errors.Is(err, ErrMalformed) {
		t.Errorf("issue 9 fake in base64: %v", err)
	}
}

// TestIncludesKeyType: naming the certificate is not enough; the
// RecipientInfo must be one that certificate's key can open.
func TestIncludesKeyType(t *testing.T) {
	rsaKey := testKeys(t, "rsa", 1)[0]
	env, err := ParseEnvelope(bytes.NewReader(encryptFor(t, randomBytes(100, 1), []kindKey{rsaKey}, Options{})))
	if err != nil {
		t.Fatal(err)
	}
	if !env.Includes(rsaKey.Cert) {
		t.Fatal("RSA recipient not included")
	}
	// Same issuer and serial number, an EC key: a KeyTransRecipientInfo
	// cannot be for it.
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	twin, err := kindCert(rsaKey.Cert.Subject.CommonName, rsaKey.Cert.SerialNumber, ec, false)
	if err != nil {
		t.Fatal(err)
	}
	twin.RawIssuer = rsaKey.Cert.RawIssuer
	if env.Includes(twin) {
		t.Error("a key-transport RecipientInfo counts for an EC certificate")
	}
	other, err := kindCert("x@example.test", big.NewInt(77), rsaKey.Key, false)
	if err != nil {
		t.Fatal(err)
	}
	if env.Includes(other) {
		t.Error("another issuer and serial counts")
	}
	// A key-transport RecipientInfo whose encrypted key is not as long as
	// the modulus.
	id := env.Recipients[0]
	id.encryptedKeyLen--
	if id.Names(rsaKey.Cert) {
		t.Error("a short encrypted key counts")
	}
}

// TestParseEnvelopeStreams: the encrypted content is not held in memory.
func TestParseEnvelopeStreams(t *testing.T) {
	k := testKeys(t, "rsa", 1)[0]
	size := int64(32 << 20)
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(Encrypt(pw, io.LimitReader(newGenReader(), size), size, kindCerts([]kindKey{k}), Options{Cipher: AES256GCM}))
	}()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := &peakReader{r: pr}
	env, err := ParseEnvelope(r)
	if err != nil {
		t.Fatal(err)
	}
	if env.ContentLength != size {
		t.Errorf("ContentLength = %d, want %d", env.ContentLength, size)
	}
	rise := int64(r.peak) - int64(before.HeapAlloc)
	t.Logf("live heap rose by at most %d KiB reading a %d MiB envelope", rise>>10, size>>20)
	if rise > 4<<20 {
		t.Errorf("heap rose by %d bytes parsing a %d-byte envelope", rise, size)
	}
}

// peakReader samples the live heap every few reads.
type peakReader struct {
	r    io.Reader
	n    int
	peak uint64
	ms   runtime.MemStats
}

func (p *peakReader) Read(b []byte) (int, error) {
	p.n++
	if p.n%64 == 0 {
		runtime.ReadMemStats(&p.ms)
		p.peak = max(p.peak, p.ms.HeapAlloc)
	}
	return p.r.Read(b)
}
