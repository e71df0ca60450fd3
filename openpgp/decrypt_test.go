package openpgp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
)

// wrapMIME puts an armored OpenPGP message in an RFC 3156 §4 body.
func wrapMIME(boundary string, armored []byte) []byte {
	return []byte("--" + boundary + "\r\n" + versionPart + "\r\n--" + boundary + "\r\n" + dataPartHeader +
		string(armored) + "\r\n--" + boundary + "--\r\n")
}

func TestDecryptMIMERoundTrip(t *testing.T) {
	for _, k := range []keyKind{kindRSA3072, kindCv25519, kindP256, kindV6AEAD} {
		t.Run(string(k), func(t *testing.T) {
			key := newKey(t, k, "bob@example.org", nil)
			entity := testEntity()
			boundary, out, _ := encryptParts(t, entity, []*pgp.Entity{key}, Options{})
			got, err := DecryptMIME(bytes.NewReader(out), boundary, pgp.EntityList{key}, 1<<20)
			if err != nil {
				t.Fatalf("DecryptMIME: %v", err)
			}
			if !bytes.Equal(got, entity) {
				t.Fatalf("plaintext differs:\n%q\nwant\n%q", got, entity)
			}
		})
	}
}

func TestDecryptMIMEErrors(t *testing.T) {
	key := newKey(t, kindCv25519, "bob@example.org", nil)
	other := newKey(t, kindCv25519, "eve@example.org", nil)
	entity := testEntity()
	boundary, out, armored := encryptParts(t, entity, []*pgp.Entity{key}, Options{})

	if _, err := DecryptMIME(bytes.NewReader(out), boundary, pgp.EntityList{other}, 1<<20); !errors.Is(err, ErrNoKey) {
		t.Errorf("wrong key: %v, want ErrNoKey", err)
	}
	if _, err := DecryptMIME(bytes.NewReader(out), boundary, pgp.EntityList{key}, 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit 10: %v, want ErrTooLarge", err)
	}
	if got, err := DecryptMIME(bytes.NewReader(out), boundary, pgp.EntityList{key}, int64(len(entity))); err != nil || !bytes.Equal(got, entity) {
		t.Errorf("limit exactly the plaintext: %v", err)
	}
	if _, err := DecryptMIME(bytes.NewReader(out), "other", pgp.EntityList{key}, 1<<20); !errors.Is(err, ErrMalformed) {
		t.Errorf("wrong boundary: %v, want ErrMalformed", err)
	}

	// Tampered ciphertext: a flipped bit in the last octets of the
	// encrypted data (the MDC) fails the integrity check.
	block := decodeArmor(t, armored)
	block[len(block)-5] ^= 0x01
	tampered := wrapMIME(boundary, armorMessage(t, block))
	if got, err := DecryptMIME(bytes.NewReader(tampered), boundary, pgp.EntityList{key}, 1<<20); err == nil || got != nil {
		t.Errorf("tampered: %v, %d octets; want an error and nothing", err, len(got))
	} else if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) {
		t.Errorf("tampered: %v, want ErrDecrypt", err)
	}

	for name, body := range map[string]string{
		"empty":      "",
		"one part":   "--" + boundary + "\r\n" + versionPart + "\r\n--" + boundary + "--\r\n",
		"not armor":  "--" + boundary + "\r\n" + versionPart + "\r\n--" + boundary + "\r\n" + dataPartHeader + "hello\r\n--" + boundary + "--\r\n",
		"no version": strings.Replace(string(out), "Version: 1", "Version: 2", 1),
	} {
		if _, err := DecryptMIME(strings.NewReader(body), boundary, pgp.EntityList{key}, 1<<20); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestDecryptMIMEGnuPG decrypts what gpg --encrypt made (compressed, as
// gpg does by default), and refuses a compressed plaintext past the limit.
func TestDecryptMIMEGnuPG(t *testing.T) {
	g := newGPG(t)
	key := newKey(t, kindRSA3072, "bob@example.org", nil)
	g.importSecret(t, key)
	entity := testEntity()
	armored := g.run(t, entity, "--trust-model", "always", "--armor", "--encrypt", "-r", "bob@example.org")
	got, err := DecryptMIME(bytes.NewReader(wrapMIME("b1", armored)), "b1", pgp.EntityList{key}, 1<<20)
	if err != nil {
		t.Fatalf("DecryptMIME: %v", err)
	}
	if !bytes.Equal(got, entity) {
		t.Fatalf("plaintext differs:\n%q\nwant\n%q", got, entity)
	}
	big := append([]byte("Content-Type: text/plain\r\n\r\n"), bytes.Repeat([]byte("A"), 4<<20)...)
	armored = g.run(t, big, "--trust-model", "always", "--compress-algo", "zlib", "--armor", "--encrypt", "-r", "bob@example.org")
	if len(armored) > 64<<10 {
		t.Fatalf("gpg did not compress: %d octets", len(armored))
	}
	if _, err := DecryptMIME(bytes.NewReader(wrapMIME("b1", armored)), "b1", pgp.EntityList{key}, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("compressed 4 MiB with a 1 MiB limit: %v, want ErrTooLarge", err)
	}
}

func FuzzDecryptMIME(f *testing.F) {
	key := newKey(f, kindCv25519, "bob@example.org", nil)
	var buf bytes.Buffer
	if _, err := EncryptMIME(&buf, bytes.NewReader(testEntity()), []*pgp.Entity{key}, Options{Boundary: "fuzz_b"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("--fuzz_b\r\n" + versionPart + "\r\n--fuzz_b\r\n" + dataPartHeader + "-----BEGIN PGP MESSAGE-----\r\n\r\nwcBMA\r\n-----END PGP MESSAGE-----\r\n--fuzz_b--\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := DecryptMIME(bytes.NewReader(body), "fuzz_b", pgp.EntityList{key}, 1<<16)
		if err == nil && got == nil {
			t.Fatal("nil plaintext without an error")
		}
		if err != nil && got != nil {
			t.Fatal("plaintext with an error")
		}
		if len(got) > 1<<16 {
			t.Fatalf("%d octets past the limit", len(got))
		}
	})
}

func decodeArmor(t *testing.T, armored []byte) []byte {
	t.Helper()
	b, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(b.Body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func armorMessage(t *testing.T, bin []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, "PGP MESSAGE", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
