package smime

import (
	"bytes"
	"errors"
	"testing"
	"testing/iotest"
)

// FuzzParseEnvelope: ParseEnvelope never panics; what it accepts, Decrypt's
// in-memory parser accepts too, and no proper prefix of it, nor it with an
// octet appended, is accepted; reading one octet at a time changes nothing.
func FuzzParseEnvelope(f *testing.F) {
	k := testKeys(f, "rsa", 1)[0]
	ec := testKeys(f, "p256", 1)[0]
	for _, opts := range []Options{{}, {Cipher: AES128GCM}, {UseSKI: true}, {RSAOAEP: true, Cipher: AES256GCM}} {
		der := encryptFor(f, randomBytes(100, 1), []kindKey{k, ec}, opts)
		f.Add(der)
		f.Add(toBER(f, der, 40))
	}
	f.Add(fakeEnveloped())
	f.Add([]byte{0x30, 0x80, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(bytes.NewReader(data))
		env1, err1 := ParseEnvelope(iotest.OneByteReader(bytes.NewReader(data)))
		if (err == nil) != (err1 == nil) {
			t.Fatalf("one octet at a time: %v, at once: %v", err1, err)
		}
		if err != nil {
			if env != nil {
				t.Fatal("an envelope with an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedAlgorithm) && !errors.Is(err, ErrNotCiphertext) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if len(env.Recipients) != len(env1.Recipients) || env.ContentLength != env1.ContentLength {
			t.Fatal("one octet at a time gives another envelope")
		}
		if _, err := parseEnveloped(data); err != nil {
			t.Fatalf("accepted, but Decrypt's parser says %v", err)
		}
		if len(env.Recipients) == 0 || env.ContentLength == 0 {
			t.Fatal("accepted without recipients or content")
		}
		if _, err := ParseEnvelope(bytes.NewReader(data[:len(data)-1])); err == nil {
			t.Fatal("a proper prefix is accepted")
		}
		if _, err := ParseEnvelope(bytes.NewReader(append(bytes.Clone(data), 0))); err == nil {
			t.Fatal("trailing octet accepted")
		}
	})
}
