package openpgp

import (
	"bytes"
	"errors"
	"testing"
	"testing/iotest"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
)

// FuzzParseMIME: ParseMIME never panics and returns only its documented
// errors; reading one octet at a time changes nothing; what it accepts
// with the closing delimiter cut off, or with text appended, it refuses.
func FuzzParseMIME(f *testing.F) {
	const boundary = "fuzz.boundary=="
	for _, k := range []keyKind{kindCv25519, kindV6AEAD} {
		var out bytes.Buffer
		if _, err := EncryptMIME(&out, bytes.NewReader(testEntity()), []*pgp.Entity{newKey(f, k, alice, nil)}, Options{Boundary: boundary}); err != nil {
			f.Fatal(err)
		}
		f.Add(out.Bytes())
	}
	f.Add(pgpMIME(boundary, []byte("-----BEGIN PGP MESSAGE-----\r\n\r\nplaintext\r\n-----END PGP MESSAGE-----")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMIME(bytes.NewReader(data), boundary)
		_, err1 := ParseMIME(iotest.OneByteReader(bytes.NewReader(data)), boundary)
		if (err == nil) != (err1 == nil) {
			t.Fatalf("one octet at a time: %v, at once: %v", err1, err)
		}
		if err != nil {
			if m != nil {
				t.Fatal("a message with an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotCiphertext) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if len(m.Recipients) == 0 || m.Data == "" {
			t.Fatalf("accepted without recipients or data: %+v", m)
		}
		if _, err := ParseMIME(bytes.NewReader(append(bytes.Clone(data), "\r\nplaintext\r\n"...)), boundary); err == nil {
			t.Fatal("text after the body accepted")
		}
		if i := bytes.LastIndex(data, []byte("--"+boundary+"--")); i >= 0 {
			if _, err := ParseMIME(bytes.NewReader(data[:i]), boundary); err == nil {
				t.Fatal("accepted without the closing delimiter")
			}
		}
	})
}

// FuzzParseMessage: ParseMessage never panics on binary packets, returns
// only its documented errors, and refuses what it accepts with its last
// octet cut off.
func FuzzParseMessage(f *testing.F) {
	var out bytes.Buffer
	if _, err := EncryptMIME(&out, bytes.NewReader(testEntity()), []*pgp.Entity{newKey(f, kindCv25519, alice, nil)}, Options{}); err != nil {
		f.Fatal(err)
	}
	b := out.Bytes()
	b = b[bytes.Index(b, []byte("-----BEGIN PGP MESSAGE-----")):]
	f.Add(dearmor(f, b[:bytes.Index(b, []byte("-----END PGP MESSAGE-----"))+25]))
	f.Add(newPacket(18, []byte{1, 2, 3}))
	f.Add([]byte{0x84, 0x01, 0x03})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMessage(bytes.NewReader(data))
		if err != nil {
			if m != nil || (!errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotCiphertext)) {
				t.Fatalf("%v, %v", m, err)
			}
			return
		}
		if _, err := ParseMessage(bytes.NewReader(data[:len(data)-1])); err == nil {
			t.Fatal("a proper prefix is accepted")
		}
	})
}
