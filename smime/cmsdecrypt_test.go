package smime

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
)

// toBER re-encodes DER the way streaming BER encoders do: every
// constructed element gets the indefinite length form (X.690 §8.1.3.6) and
// every OCTET STRING, and the primitive [0] encryptedContent, becomes a
// constructed string of segments of at most seg octets (X.690 §8.7.3).
// The SET OF RecipientInfo is copied as it is, so that issuer Names stay
// byte-identical to the certificate's.
func toBER(tb testing.TB, der []byte, seg int) []byte {
	tb.Helper()
	var out []byte
	var conv func([]byte)
	conv = func(b []byte) {
		for len(b) > 0 {
			var v asn1.RawValue
			rest, err := asn1.Unmarshal(b, &v)
			if err != nil {
				tb.Fatal(err)
			}
			id := v.FullBytes[0]
			switch {
			case id == tagSet:
				out = append(out, v.FullBytes...)
			case v.IsCompound:
				out = append(out, id, 0x80)
				conv(v.Bytes)
				out = append(out, 0, 0)
			case id == tagOctetString || id == tagImplicit0Raw:
				out = append(out, id|0x20, 0x80)
				for p := v.Bytes; len(p) > 0; {
					k := min(seg, len(p))
					out = appendHeader(out, tagOctetString, int64(k))
					out = append(out, p[:k]...)
					p = p[k:]
				}
				out = append(out, 0, 0)
			default:
				out = append(out, v.FullBytes...)
			}
			b = rest
		}
	}
	conv(der)
	return out
}

// encryptFor encrypts pt for the given recipients and returns the DER.
func encryptFor(tb testing.TB, pt []byte, ks []kindKey, opts Options) []byte {
	tb.Helper()
	var out bytes.Buffer
	if err := Encrypt(&out, bytes.NewReader(pt), int64(len(pt)), kindCerts(ks), opts); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

// TestDecryptRoundTrip: Decrypt reads what Encrypt writes, for every
// cipher, key type, identifier and size, in DER and re-encoded as BER.
func TestDecryptRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 15, 16, 17, 1000, chunkSize - 1, chunkSize, chunkSize + 3}
	for _, c := range allTestCiphers {
		for _, m := range encKeyModes {
			for _, ski := range []bool{false, true} {
				k := testKeys(t, m.kind, 1)[0]
				for _, size := range sizes {
					pt := randomBytes(size, byte(size))
					der := encryptFor(t, pt, []kindKey{k}, Options{Cipher: c, RSAOAEP: m.oaep, UseSKI: ski})
					for _, form := range []string{"DER", "BER"} {
						in := der
						if form == "BER" {
							in = toBER(t, der, 1000)
						}
						got, err := Decrypt(in, k.Key, k.Cert)
						if err != nil {
							t.Fatalf("%v/%s/ski=%v/size=%d/%s: %v", c, m.name, ski, size, form, err)
						}
						if !bytes.Equal(got, pt) {
							t.Fatalf("%v/%s/ski=%v/size=%d/%s: plaintext differs", c, m.name, ski, size, form)
						}
					}
				}
			}
		}
	}
}

// envVersion returns the version of the EnvelopedData or
// AuthEnvelopedData in der, and the versions of its RecipientInfos.
func envVersion(tb testing.TB, der []byte) (int, []int) {
	tb.Helper()
	env, err := parseEnveloped(der)
	if err != nil {
		tb.Fatal(err)
	}
	ci, _, _ := parseBER(der, 0)
	kids, _ := ci.children()
	inner, _ := kids[1].children()
	f, _ := inner[0].children()
	v, err := f[0].smallInt()
	if err != nil {
		tb.Fatal(err)
	}
	var rv []int
	for _, ri := range env.ris {
		rk, _ := ri.children()
		n, err := rk[0].smallInt()
		if err != nil {
			tb.Fatal(err)
		}
		rv = append(rv, n)
	}
	return v, rv
}

// TestVersions checks the version fields for every combination: RFC 5652
// §6.1 (EnvelopedData 0 only when all RecipientInfos are version 0, else
// 2), §6.2.1 (ktri 0 by issuer and serial, 2 by SKI), §6.2.2 (kari 3),
// RFC 5083 §2.1 (AuthEnvelopedData 0). A certificate without a
// SubjectKeyIdentifier falls back to issuer and serial under UseSKI.
func TestVersions(t *testing.T) {
	rsaK := testKeys(t, "rsa", 1)[0]
	ecK := testKeys(t, "p256", 1)[0]
	noSKI := testRecipients(t, 1)[0] // certificate without SubjectKeyIdentifier
	if len(noSKI.Cert.SubjectKeyId) != 0 {
		t.Fatal("testRecipients certificate has a SubjectKeyIdentifier")
	}
	noSKIKey := kindKey{"rsa", noSKI.Cert, noSKI.Key}
	tests := []struct {
		name    string
		ks      []kindKey
		ski     bool
		wantEnv int   // EnvelopedData version
		wantRI  []int // sorted RecipientInfo versions (DER order: ktri before kari)
	}{
		{"ktri by issuer", []kindKey{rsaK}, false, 0, []int{0}},
		{"ktri by SKI", []kindKey{rsaK}, true, 2, []int{2}},
		{"ktri SKI fallback", []kindKey{noSKIKey}, true, 0, []int{0}},
		{"kari by issuer", []kindKey{ecK}, false, 2, []int{3}},
		{"kari by SKI", []kindKey{ecK}, true, 2, []int{3}},
		{"ktri and kari", []kindKey{rsaK, ecK}, false, 2, []int{0, 3}},
		{"ktri SKI and fallback", []kindKey{rsaK, noSKIKey}, true, 2, nil},
	}
	for _, tt := range tests {
		for _, c := range allTestCiphers {
			der := encryptFor(t, []byte("x"), tt.ks, Options{Cipher: c, UseSKI: tt.ski})
			v, rv := envVersion(t, der)
			want := tt.wantEnv
			if c.authenticated() {
				want = 0
			}
			if v != want {
				t.Errorf("%s/%v: version %d, want %d", tt.name, c, v, want)
			}
			if tt.wantRI != nil && fmt.Sprint(rv) != fmt.Sprint(tt.wantRI) {
				t.Errorf("%s/%v: RecipientInfo versions %v, want %v", tt.name, c, rv, tt.wantRI)
			}
			for _, k := range tt.ks {
				if got, err := Decrypt(der, k.Key, k.Cert); err != nil || string(got) != "x" {
					t.Errorf("%s/%v: Decrypt: %v", tt.name, c, err)
				}
			}
		}
	}
}

// TestDecryptTamper: every change of the GCM ciphertext, tag, nonce or
// wrapped key is detected (ErrDecrypt), and so is a changed EC key wrap
// under CBC (the AES key-wrap integrity check).
func TestDecryptTamper(t *testing.T) {
	pt := randomBytes(100, 1)
	for _, c := range []Cipher{AES128GCM, AES256GCM} {
		for _, kind := range []string{"rsa", "p256"} {
			k := testKeys(t, kind, 1)[0]
			der := encryptFor(t, pt, []kindKey{k}, Options{Cipher: c})
			if _, err := Decrypt(der, k.Key, k.Cert); err != nil {
				t.Fatal(err)
			}
			ctStart := len(der) - macLen - len(pt)
			nonceAt := bytes.Index(der, []byte{0x30, 0x11, 0x04, 0x0c}) + 4
			for _, at := range []struct {
				name string
				i    int
			}{
				{"first ciphertext octet", ctStart},
				{"last ciphertext octet", ctStart + len(pt) - 1},
				{"first tag octet", len(der) - gcmTagSize},
				{"last tag octet", len(der) - 1},
				{"nonce", nonceAt},
			} {
				for _, bit := range []byte{0x01, 0x80} {
					bad := bytes.Clone(der)
					bad[at.i] ^= bit
					if got, err := Decrypt(bad, k.Key, k.Cert); !errors.Is(err, ErrDecrypt) || got != nil {
						t.Errorf("%v/%s: %s ^ %#x: err = %v, want ErrDecrypt", c, kind, at.name, bit, err)
					}
				}
			}
		}
	}
	// EC: the wrapped key is the 24- or 40-octet OCTET STRING at the end
	// of the KeyAgreeRecipientInfo.
	for _, c := range allTestCiphers {
		k := testKeys(t, "p384", 1)[0]
		der := encryptFor(t, pt, []kindKey{k}, Options{Cipher: c})
		keyLen, _ := keyIVLen(c)
		i := bytes.Index(der, []byte{tagOctetString, byte(keyLen + 8)})
		if i < 0 {
			t.Fatal("wrapped key not found")
		}
		bad := bytes.Clone(der)
		bad[i+2+5] ^= 4
		if _, err := Decrypt(bad, k.Key, k.Cert); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%v: changed wrapped key: err = %v, want ErrDecrypt", c, err)
		}
	}
}

// TestDecryptWrongKey: a certificate the message is not for gives
// ErrNoRecipientInfo; a key that does not belong to the certificate, or the
// key of an impostor certificate with the same issuer and serial number,
// gives ErrDecrypt.
func TestDecryptWrongKey(t *testing.T) {
	pt := []byte("for rcpt 0 only")
	for _, kind := range keyKinds {
		ks := testKeys(t, kind, 2)
		other := ks[1]
		// An impostor: same subject (= issuer) and serial as ks[0], other key.
		impostor, err := kindCert(ks[0].Cert.Subject.CommonName, ks[0].Cert.SerialNumber, other.Key, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range allTestCiphers {
			for _, oaep := range []bool{false, true} {
				for _, ski := range []bool{false, true} {
					name := fmt.Sprintf("%s/%v/oaep=%v/ski=%v", kind, c, oaep, ski)
					der := encryptFor(t, pt, ks[:1], Options{Cipher: c, RSAOAEP: oaep, UseSKI: ski})
					if _, err := Decrypt(der, other.Key, other.Cert); !errors.Is(err, ErrNoRecipientInfo) {
						t.Errorf("%s: other recipient: err = %v, want ErrNoRecipientInfo", name, err)
					}
					if _, err := Decrypt(der, other.Key, ks[0].Cert); !errors.Is(err, ErrDecrypt) {
						t.Errorf("%s: key not of the certificate: err = %v, want ErrDecrypt", name, err)
					}
					if ski {
						continue // the impostor has its own SKI
					}
					got, err := Decrypt(der, other.Key, impostor)
					if kind == "rsa" && !oaep && !c.authenticated() {
						// PKCS #1 v1.5 and CBC: a random key decrypts to
						// noise whose padding may pass (about 1 in 256).
						if err == nil && bytes.Equal(got, pt) {
							t.Errorf("%s: impostor read the message", name)
						}
						continue
					}
					if !errors.Is(err, ErrDecrypt) {
						t.Errorf("%s: impostor: err = %v, want ErrDecrypt", name, err)
					}
				}
			}
		}
	}
	// Key types Decrypt cannot use.
	k := testKeys(t, "rsa", 1)[0]
	der := encryptFor(t, pt, []kindKey{k}, Options{})
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, key := range []crypto.PrivateKey{edKey, nil, "key"} {
		if _, err := Decrypt(der, key, k.Cert); !errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("key %T: err = %v, want ErrUnsupportedKey", key, err)
		}
	}
	if _, err := Decrypt(der, k.Key, nil); !errors.Is(err, ErrNoRecipientInfo) {
		t.Errorf("nil certificate: err = %v, want ErrNoRecipientInfo", err)
	}
	// An EC key for a message with only an RSA recipient.
	ec := testKeys(t, "p256", 1)[0]
	if _, err := Decrypt(der, ec.Key, ec.Cert); !errors.Is(err, ErrNoRecipientInfo) {
		t.Errorf("EC key, RSA message: err = %v, want ErrNoRecipientInfo", err)
	}
}

// TestDecryptMalformed: broken input gives ErrMalformed or
// ErrUnsupportedAlgorithm, never a panic or a plaintext.
func TestDecryptMalformed(t *testing.T) {
	k := testKeys(t, "p256", 1)[0]
	pt := []byte("hello")
	der := encryptFor(t, pt, []kindKey{k}, Options{Cipher: AES128GCM})
	oidSigned, err := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2})
	if err != nil {
		t.Fatal(err)
	}
	signedBody := append(oidSigned, tagExplicit0, 2, tagSequence, 0)
	signedData := append(appendHeader(nil, tagSequence, int64(len(signedBody))), signedBody...)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"garbage", []byte("not a CMS message"), ErrMalformed},
		{"trailing octet", append(bytes.Clone(der), 0), ErrMalformed},
		{"truncated", der[:len(der)-1], ErrMalformed},
		{"header only", der[:40], ErrMalformed},
		{"signed-data", signedData, ErrUnsupportedAlgorithm},
		{"deep nesting", bytes.Repeat([]byte{0x30, 0x80}, 10000), ErrMalformed},
		{"primitive indefinite", []byte{0x04, 0x80, 0, 0}, ErrMalformed},
		{"huge length", []byte{0x30, 0x88, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrMalformed},
	}
	for _, tt := range tests {
		got, err := Decrypt(tt.in, k.Key, k.Cert)
		if !errors.Is(err, tt.want) || got != nil {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "smime: ") {
			t.Errorf("%s: error %q lacks the package prefix", tt.name, err)
		}
	}
	// Every truncation of a valid message fails cleanly.
	for n := range len(der) {
		if _, err := Decrypt(der[:n], k.Key, k.Cert); err == nil {
			t.Fatalf("truncated to %d octets: no error", n)
		}
	}
}

// TestDecryptAuthAttrs builds an AuthEnvelopedData with authAttrs (RFC
// 5083 §2.1), which Encrypt never writes: the GCM additional data is their
// DER with a SET OF tag (§2.2). Decrypt must authenticate them.
func TestDecryptAuthAttrs(t *testing.T) {
	r := testRecipients(t, 1)[0]
	k := kindKey{"rsa", r.Cert, r.Key}
	cek := randomBytes(16, 1)
	nonce := randomBytes(12, 2)
	rs, err := prepareRecipients([]*x509.Certificate{r.Cert}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ris, _, err := recipientInfos(cek, rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// One attribute: contentType id-data (RFC 5652 §11.1).
	attr, err := asn1.Marshal(struct {
		Type   asn1.ObjectIdentifier
		Values []asn1.ObjectIdentifier `asn1:"set"`
	}{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}, []asn1.ObjectIdentifier{oidData()}})
	if err != nil {
		t.Fatal(err)
	}
	aad := append(appendHeader(nil, tagSet, int64(len(attr))), attr...)
	pt := []byte("authenticated attributes")
	block, _ := aes.NewCipher(cek)
	aead, _ := cipher.NewGCM(block)
	sealed := aead.Seal(nil, nonce, pt, aad)
	ct, tag := sealed[:len(pt)], sealed[len(pt):]

	build := func(attrs []byte) []byte {
		params, _ := asn1.Marshal(gcmParameters{Nonce: nonce, ICVLen: 16})
		alg, _ := asn1.Marshal(algorithmIdentifier{Algorithm: oidAES128GCM(), Parameters: asn1.RawValue{FullBytes: params}})
		oidDat, _ := asn1.Marshal(oidData())
		var eci []byte
		eci = append(eci, oidDat...)
		eci = append(eci, alg...)
		eci = appendHeader(eci, tagImplicit0Raw, int64(len(ct)))
		eci = append(eci, ct...)
		var env []byte
		env = append(env, 0x02, 0x01, 0x00)
		env = appendHeader(env, tagSet, int64(len(ris[0])))
		env = append(env, ris[0]...)
		env = appendHeader(env, tagSequence, int64(len(eci)))
		env = append(env, eci...)
		env = appendHeader(env, 0xa1, int64(len(attrs))) // authAttrs [1] IMPLICIT
		env = append(env, attrs...)
		env = appendHeader(env, tagOctetString, int64(len(tag)))
		env = append(env, tag...)
		oidAuth, _ := asn1.Marshal(oidAuthEnvelopedData())
		seq := appendHeader(nil, tagSequence, int64(len(env)))
		seq = append(seq, env...)
		body := append(oidAuth, appendHeader(nil, tagExplicit0, int64(len(seq)))...)
		body = append(body, seq...)
		return append(appendHeader(nil, tagSequence, int64(len(body))), body...)
	}
	got, err := Decrypt(build(attr), k.Key, k.Cert)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
	other := bytes.Clone(attr)
	other[len(other)-1] ^= 1 // id-data -> another OID
	if _, err := Decrypt(build(other), k.Key, k.Cert); !errors.Is(err, ErrDecrypt) {
		t.Errorf("changed authAttrs: err = %v, want ErrDecrypt", err)
	}
}

// TestDecryptMIME reads the milter's own output, with LF line ends and
// stray blanks, and refuses what is not an enveloped entity.
func TestDecryptMIME(t *testing.T) {
	k := testKeys(t, "p256", 1)[0]
	entity := []byte("Content-Type: text/plain\r\n\r\nHi.\r\n")
	for _, c := range allTestCiphers {
		var body bytes.Buffer
		if err := EncryptBase64(&body, bytes.NewReader(entity), int64(len(entity)), kindCerts([]kindKey{k}), Options{Cipher: c}); err != nil {
			t.Fatal(err)
		}
		var msg strings.Builder
		msg.WriteString("From: a@example.test\r\nMIME-Version: 1.0\r\n")
		for _, f := range OuterFieldsFor(c) {
			msg.WriteString(f.Name + ": " + f.Value + "\r\n")
		}
		msg.WriteString("\r\n")
		head := msg.String()
		msg.Write(body.Bytes())
		for _, variant := range []string{
			msg.String(),
			strings.ReplaceAll(msg.String(), "\r\n", "\n"),
			head + strings.ReplaceAll(body.String(), "\r\n", " \t\r\n"),
		} {
			got, err := DecryptMIME(strings.NewReader(variant), k.Key, k.Cert)
			if err != nil || !bytes.Equal(got, entity) {
				t.Errorf("%v: DecryptMIME = %q, %v", c, got, err)
			}
		}
	}
	tests := []struct {
		name, msg string
		want      error
	}{
		{"text/plain", "Content-Type: text/plain\r\n\r\nhello\r\n", ErrMalformed},
		{"signed-data", "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMAA=\r\n", ErrUnsupportedAlgorithm},
		{"bad base64", "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n", ErrMalformed},
		{"quoted-printable", "Content-Type: application/pkcs7-mime\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=00\r\n", ErrMalformed},
		{"no header end", "Content-Type: application/pkcs7-mime", ErrMalformed},
		{"binary garbage", "Content-Type: application/x-pkcs7-mime; name=smime.p7m\r\n\r\ngarbage", ErrMalformed},
	}
	for _, tt := range tests {
		if _, err := DecryptMIME(strings.NewReader(tt.msg), k.Key, k.Cert); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestConcurrentOptions encrypts at once from many goroutines, each with
// its own Options (cipher, OAEP, SKI) and recipients of its own key types;
// run with -race. Every result must decrypt for each of its recipients.
func TestConcurrentOptions(t *testing.T) {
	var pool []kindKey
	for _, kind := range keyKinds {
		pool = append(pool, testKeys(t, kind, 2)...)
	}
	const workers, rounds = 8, 3
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				opts := Options{Cipher: allTestCiphers[(w+i)%4], RSAOAEP: w%2 == 1, UseSKI: w/2%2 == 1}
				ks := []kindKey{pool[(w+i)%len(pool)], pool[(w+3*i+1)%len(pool)]}
				pt := randomBytes(500*w+i, byte(w))
				var out bytes.Buffer
				if err := Encrypt(&out, bytes.NewReader(pt), int64(len(pt)), kindCerts(ks), opts); err != nil {
					errs <- err
					continue
				}
				for _, k := range ks {
					got, err := Decrypt(out.Bytes(), k.Key, k.Cert)
					if err != nil || !bytes.Equal(got, pt) {
						errs <- fmt.Errorf("worker %d round %d %+v: %s: %v", w, i, opts, k.Kind, err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDecryptSerialMatch: the issuer and serial number comparison is exact.
func TestDecryptSerialMatch(t *testing.T) {
	k := testKeys(t, "p256", 1)[0]
	der := encryptFor(t, []byte("x"), []kindKey{k}, Options{})
	c := *k.Cert
	c.SerialNumber = new(big.Int).Add(k.Cert.SerialNumber, big.NewInt(1))
	if _, err := Decrypt(der, k.Key, &c); !errors.Is(err, ErrNoRecipientInfo) {
		t.Errorf("other serial: err = %v, want ErrNoRecipientInfo", err)
	}
	c = *k.Cert
	c.RawIssuer = append(bytes.Clone(k.Cert.RawIssuer), 0)
	if _, err := Decrypt(der, k.Key, &c); !errors.Is(err, ErrNoRecipientInfo) {
		t.Errorf("other issuer: err = %v, want ErrNoRecipientInfo", err)
	}
}
