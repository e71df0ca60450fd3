package openpgp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"
)

// FuzzSelectKeys: arbitrary record data never makes SelectKeys panic; every
// record is accounted for by a key or a reason; every key it selects has a
// user ID for the address, passes EncryptMIME's own check and can really be
// encrypted to.
func FuzzSelectKeys(f *testing.F) {
	cv := newKey(f, kindCv25519, alice, nil)
	p256 := newKey(f, kindP256, alice, nil)
	v6 := newKey(f, kindV6, alice, nil)
	bob := newKey(f, kindCv25519, "bob@example.org", nil)
	signingOnly := newKey(f, kindCv25519, alice, &packet.Config{})
	signingOnly.Subkeys = nil
	var secret bytes.Buffer
	if err := cv.SerializePrivate(&secret, nil); err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		publicBytes(f, cv),
		publicBytes(f, p256),
		publicBytes(f, v6),
		publicBytes(f, bob, cv),
		publicBytes(f, signingOnly, p256),
		secret.Bytes(),
		publicBytes(f, cv)[:40],
		{0x99, 0x01, 0x0d},
		{0xc6, 0xff, 0xff, 0xff, 0xff},
		{},
	} {
		f.Add(seed)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		r := recordOf(t, alice, data)
		keys, rejected := SelectKeys(alice, []dns.RR{r}, now)
		if len(keys)+len(rejected) == 0 {
			t.Fatal("a record yields neither a key nor a reason")
		}
		for _, rj := range rejected {
			if rj.Record != r || rj.Reason == "" {
				t.Errorf("bad rejection %+v", rj)
			}
		}
		for _, k := range keys {
			if k.Record != r || k.Algorithm == "" || k.Fingerprint != fingerprint(k.Entity) {
				t.Errorf("bad key %+v", k)
			}
			ok := false
			for name := range k.Entity.Identities {
				if a := uidAddress(name); a != "" && strings.EqualFold(a, alice) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("key %s has no user ID for %s", k.Fingerprint, alice)
			}
			if err := checkRecipient(k.Entity, now); err != nil {
				t.Errorf("selected key %s fails EncryptMIME's check: %v", k.Fingerprint, err)
			}
			if _, err := EncryptMIME(io.Discard, strings.NewReader("\r\nx"), []*pgp.Entity{k.Entity}, Options{Now: now}); err != nil {
				t.Errorf("selected key %s cannot be encrypted to: %v", k.Fingerprint, err)
			}
		}
	})
}

// FuzzEncryptMIMEProtect: header protection never panics on an arbitrary
// entity and header field, keeps the body, and the output always has the
// RFC 3156 structure and decrypts.
func FuzzEncryptMIMEProtect(f *testing.F) {
	key := newKey(f, kindCv25519, alice, nil)
	f.Add([]byte("Content-Type: text/plain\r\n\r\nbody\r\n"), "Subject", "hello")
	f.Add([]byte("\r\nbody"), "From", "a@b")
	f.Add([]byte("Content-Type: text/plain; hp=cipher\r\n\r\n"), "Subject", "x")
	f.Add([]byte("X: y\n z\nContent-Type: multipart/mixed;\n boundary=b\n\n--b--\n"), "subject", "a\r\nb")
	f.Add([]byte("no header at all"), "Subject", "")
	f.Fuzz(func(t *testing.T, entity []byte, name, value string) {
		var out bytes.Buffer
		boundary, err := EncryptMIME(&out, bytes.NewReader(entity), []*pgp.Entity{key}, Options{Protect: []Field{{Name: name, Value: value}}})
		if errors.Is(err, ErrHeaderTooLong) {
			return
		}
		if err != nil {
			t.Fatalf("EncryptMIME: %v", err)
		}
		checkStructure(t, boundary, out.Bytes())
		_, _, armored := encryptParts(t, entity, []*pgp.Entity{key}, Options{Protect: []Field{{Name: name, Value: value}}})
		plain := readMessage(t, armored, key)
		// The body, after the first empty line (CRLF or LF), is kept.
		var body []byte
		for rest := entity; len(rest) > 0; {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			line := rest[:i+1]
			rest = rest[i+1:]
			if string(line) == "\r\n" || string(line) == "\n" {
				body = rest
				break
			}
		}
		if !bytes.HasSuffix(plain, body) {
			t.Errorf("body %q lost in %q", body, plain)
		}
	})
}
