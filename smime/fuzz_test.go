package smime

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io"
	"mime"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzIsEncrypted: IsEncrypted never panics, agrees with mime.ParseMediaType
// wherever that parses the value, and ignores leading whitespace.
func FuzzIsEncrypted(f *testing.F) {
	for _, s := range []string{
		`multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"`,
		`application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"`,
		`application/x-pkcs7-mime; smime-type=authEnveloped-data`,
		`application/pkcs7-mime; smime-type=signed-data; name=smime.p7m`,
		`application/pkcs7-mime; name="smime.p7m"`,
		`application/pkcs7-mime; name*0="smime"; name*1=".p7m"`,
		`application/pkcs7-mime; name*=utf-8''smime.p7m`,
		"application/pkcs7-mime;\r\n\tsmime-type=enveloped-data",
		`multipart/encrypted (comment); boundary="`,
		`application/pkcs7-mime; smime-type=enveloped-data; smime-type=signed-data`,
		`text/plain; charset=us-ascii`,
		``,
		`;`,
		`"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := IsEncrypted(s)
		if IsEncrypted(" \t"+s) != got {
			t.Errorf("IsEncrypted(%q) changes with leading whitespace", s)
		}
		mt, params, err := mime.ParseMediaType(s)
		if err != nil {
			return
		}
		switch mt {
		case "multipart/encrypted":
			if !got {
				t.Errorf("IsEncrypted(%q) = false for multipart/encrypted", s)
			}
		case "application/pkcs7-mime", "application/x-pkcs7-mime":
			st, ok := params["smime-type"]
			if !ok {
				if want := strings.HasSuffix(strings.ToLower(strings.TrimSpace(params["name"])), ".p7m"); got != want {
					t.Errorf("IsEncrypted(%q) = %v without smime-type, name %q", s, got, params["name"])
				}
				return
			}
			st = strings.ToLower(strings.TrimSpace(st))
			if want := st == "enveloped-data" || st == "authenveloped-data"; got != want {
				t.Errorf("IsEncrypted(%q) = %v for smime-type %q", s, got, st)
			}
		default:
			if got {
				t.Errorf("IsEncrypted(%q) = true for %s", s, mt)
			}
		}
	})
}

// FuzzEncrypt encrypts arbitrary plaintext with an announced size that may
// be off by up to two octets, a cipher selector that may be invalid, either
// output form and several reading patterns, then checks the documented
// error or decrypts with the test-only CMS reader and compares.
func FuzzEncrypt(f *testing.F) {
	for _, seed := range []struct {
		n     int
		delta int8
		sel   uint8
		b64   bool
	}{
		{0, 0, 0, false}, {1, 0, 1, true}, {15, 0, 0, true}, {16, 0, 1, false},
		{17, 0, 0, false}, {111, 0, 0, true}, {240, 0, 1, false},
		{chunkSize + 1, 0, 4, true}, {10, 1, 0, false}, {10, -1, 0, true}, {0, -1, 0, false}, {5, 0, 2, false},
	} {
		f.Add(randomBytes(seed.n, byte(seed.n)), seed.delta, seed.sel, seed.b64)
	}
	rcpt := testRecipients(f, 1)[0]
	certs := []*x509.Certificate{rcpt.Cert}
	f.Fuzz(func(t *testing.T, data []byte, delta int8, sel uint8, b64 bool) {
		d := int64(delta % 3) // -2 .. 2
		size := int64(len(data)) + d
		c := Cipher(sel % 3) // 2 is not a cipher
		var r io.Reader = bytes.NewReader(data)
		switch sel / 3 % 4 {
		case 1:
			r = iotest.OneByteReader(r)
		case 2:
			r = iotest.HalfReader(r)
		case 3:
			r = iotest.DataErrReader(r) // io.EOF together with the last octets
		}
		var out bytes.Buffer
		var err error
		if b64 {
			err = EncryptBase64(&out, r, size, certs, Options{Cipher: c})
		} else {
			err = Encrypt(&out, r, size, certs, Options{Cipher: c})
		}
		var want error
		switch {
		case size < 0:
			want = ErrSizeMismatch
		case c != AES256CBC && c != AES128CBC:
			want = ErrUnsupportedCipher
		case d != 0:
			want = ErrSizeMismatch
		}
		if want != nil {
			if !errors.Is(err, want) {
				t.Fatalf("size %d for %d octets, cipher %v: err = %v, want %v", size, len(data), c, err, want)
			}
			return
		}
		if err != nil {
			t.Fatalf("size %d, cipher %v: %v", size, c, err)
		}
		der := out.Bytes()
		if b64 {
			if der, err = decodeBase64Body(der); err != nil {
				t.Fatal(err)
			}
		}
		dec, err := decryptCMS(der, rcpt)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dec.Plaintext, data) {
			t.Fatalf("plaintext of %d octets differs after the round trip", len(data))
		}
		if dec.Cipher != c {
			t.Fatalf("cipher %v, want %v", dec.Cipher, c)
		}
	})
}
