package smime

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzEncrypt encrypts arbitrary plaintext with an announced size that may
// be off by up to two octets, a cipher selector that may be invalid, either
// output form, several reading patterns, RSA v1.5 or OAEP, issuer and
// serial or SKI, and RSA, P-256, P-384 or mixed recipients, then checks the
// documented error or decrypts with Decrypt for every recipient (and with
// the independent test-only CMS reader where it applies) and compares.
func FuzzEncrypt(f *testing.F) {
	for _, seed := range []struct {
		n     int
		delta int8
		sel   uint8
		b64   bool
		mode  uint8
	}{
		{0, 0, 0, false, 0}, {1, 0, 1, true, 0}, {15, 0, 0, true, 4}, {16, 0, 1, false, 8},
		{17, 0, 0, false, 12}, {111, 0, 0, true, 3}, {240, 0, 1, false, 0},
		{chunkSize + 1, 0, 4, true, 0}, {10, 1, 0, false, 0}, {10, -1, 0, true, 0}, {0, -1, 0, false, 0}, {5, 0, 4, false, 0},
		{0, 0, 2, false, 0}, {1, 0, 3, true, 1}, {16, 0, 2, false, 2}, {chunkSize + 1, 0, 3, true, 15},
		{100, 0, 7, false, 13}, {100, 0, 13, true, 6}, {33, 0, 18, false, 11},
	} {
		f.Add(randomBytes(seed.n, byte(seed.n)), seed.delta, seed.sel, seed.b64, seed.mode)
	}
	rcpt := testRecipients(f, 1)[0]
	sets := [][]kindKey{
		{{"rsa", rcpt.Cert, rcpt.Key}},
		testKeys(f, "p256", 1),
		testKeys(f, "p384", 1),
		{{"rsa", rcpt.Cert, rcpt.Key}, testKeys(f, "p256", 1)[0], testKeys(f, "p384", 1)[0], testKeys(f, "rsa", 1)[0]},
	}
	f.Fuzz(func(t *testing.T, data []byte, delta int8, sel uint8, b64 bool, mode uint8) {
		d := int64(delta % 3) // -2 .. 2
		size := int64(len(data)) + d
		c := Cipher(sel % 5) // 4 is not a cipher
		var r io.Reader = bytes.NewReader(data)
		switch sel / 5 % 4 {
		case 1:
			r = iotest.OneByteReader(r)
		case 2:
			r = iotest.HalfReader(r)
		case 3:
			r = iotest.DataErrReader(r) // io.EOF together with the last octets
		}
		opts := Options{Cipher: c, RSAOAEP: mode&1 != 0, UseSKI: mode&2 != 0}
		ks := sets[mode>>2%4]
		var out bytes.Buffer
		var err error
		if b64 {
			err = EncryptBase64(&out, r, size, kindCerts(ks), opts)
		} else {
			err = Encrypt(&out, r, size, kindCerts(ks), opts)
		}
		var want error
		switch {
		case size < 0:
			want = ErrSizeMismatch
		case c > AES256GCM:
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
			t.Fatalf("size %d, %+v: %v", size, opts, err)
		}
		der := out.Bytes()
		if b64 {
			if der, err = decodeBase64Body(der); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range ks {
			got, err := Decrypt(der, k.Key, k.Cert)
			if err != nil {
				t.Fatalf("%+v, %s recipient: %v", opts, k.Kind, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%+v, %s recipient: plaintext of %d octets differs after the round trip", opts, k.Kind, len(data))
			}
		}
		if len(ks) == 1 && ks[0].Kind == "rsa" && !opts.RSAOAEP && !opts.UseSKI {
			dec, err := decryptCMS(der, rcpt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dec.Plaintext, data) || dec.Cipher != c {
				t.Fatalf("test reader: plaintext or cipher %v differs", dec.Cipher)
			}
		}
	})
}

// FuzzDecrypt: Decrypt and DecryptMIME never panic on arbitrary input, and
// every error is one of the documented ones. The seeds are messages of
// every cipher and key type, in DER and as indefinite-length BER.
func FuzzDecrypt(f *testing.F) {
	rsaK := testKeys(f, "rsa", 1)[0]
	ecK := testKeys(f, "p256", 1)[0]
	for i, c := range allTestCiphers {
		for _, ks := range [][]kindKey{{rsaK}, {ecK}, {rsaK, ecK}} {
			der := encryptFor(f, randomBytes(40*i, byte(i)), ks, Options{Cipher: c, RSAOAEP: i%2 == 1, UseSKI: i/2 == 1})
			f.Add(der)
			f.Add(toBER(f, der, 7))
		}
	}
	f.Add([]byte{0x30, 0x80, 0x30, 0x80, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range []kindKey{rsaK, ecK} {
			_, err := Decrypt(data, k.Key, k.Cert)
			if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrDecrypt) &&
				!errors.Is(err, ErrNoRecipientInfo) && !errors.Is(err, ErrUnsupportedAlgorithm) {
				t.Fatalf("undocumented error %v", err)
			}
		}
		msg := append([]byte("Content-Type: application/pkcs7-mime\r\n\r\n"), data...)
		_, _ = DecryptMIME(bytes.NewReader(msg), ecK.Key, ecK.Cert)
	})
}
