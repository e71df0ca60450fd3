package milter

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"strings"
	"testing"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	gomilter "github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/smime"

	"github.com/danemilter/danemilter/milter/miltertest"
)

// countWriter counts what is written to it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// TestEncryptedBodyBound checks the bound against what the encoders really
// write: never below, and close enough (0.5 % plus the fixed slack) that a
// message Postfix would take is not refused.
func TestEncryptedBodyBound(t *testing.T) {
	fake := &dane.Fake{}
	var certs []*x509.Certificate
	for i := range 3 {
		u := newUser(t, fmt.Sprintf("bound%d@partner.example", i))
		c, err := x509.ParseCertificate(u.der)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	var keys []*pgp.Entity
	for i := range 3 {
		keys = append(keys, pgpUser(t, fake, fmt.Sprintf("pbound%d@pgp.example", i)))
	}
	boundary, err := openpgp.NewBoundary(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{0, 1, 1000, 1 << 20, 5_000_000} {
		entity := make([]byte, size)
		if _, err := rand.Read(entity); err != nil {
			t.Fatal(err)
		}
		for _, nkeys := range []int{1, 3} {
			for _, tc := range []struct {
				name   string
				format Format
				write  func(w io.Writer) error
			}{
				{"smime-cbc", FormatSMIME, func(w io.Writer) error {
					return smime.EncryptBase64(w, bytes.NewReader(entity), size, certs[:nkeys], smime.Options{Cipher: smime.AES256CBC})
				}},
				{"smime-gcm", FormatSMIME, func(w io.Writer) error {
					return smime.EncryptBase64(w, bytes.NewReader(entity), size, certs[:nkeys], smime.Options{Cipher: smime.AES256GCM, RSAOAEP: true})
				}},
				{"openpgp", FormatOpenPGP, func(w io.Writer) error {
					_, err := openpgp.EncryptMIME(w, bytes.NewReader(entity), keys[:nkeys], openpgp.Options{Boundary: boundary})
					return err
				}},
			} {
				var c countWriter
				if err := tc.write(&c); err != nil {
					t.Fatalf("%s %d bytes: %v", tc.name, size, err)
				}
				bound := encryptedBodyBound(tc.format, size, nkeys, 0)
				if bound < c.n {
					t.Errorf("%s, %d bytes, %d keys: bound %d below the real %d", tc.name, size, nkeys, bound, c.n)
				}
				if slack := c.n/200 + 2*fixedBound + int64(nkeys)*perKeyBound*2; bound > c.n+slack {
					t.Errorf("%s, %d bytes, %d keys: bound %d is %d over the real %d", tc.name, size, nkeys, bound, bound-c.n, c.n)
				}
			}
		}
	}
}

// TestTooBigOnceEncrypted: a message whose encrypted copy would not fit in
// the MTA's queue file is refused with 552 5.3.4 before any copy leaves
// (Postfix would refuse it only after the plaintext copy of a split had been
// re-injected); one that fits is encrypted; a negative limit turns the
// check off.
func TestTooBigOnceEncrypted(t *testing.T) {
	fake := &dane.Fake{}
	alice := newUser(t, "alice@partner.example")
	alice.publish(t, fake)
	// 8 MB: fits Postfix's default 10,240,000 bytes, but not once encrypted.
	var b bytes.Buffer
	b.WriteString("From: s@local.example\r\nTo: alice@partner.example\r\nSubject: big\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	line := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 3)[:76] + "\r\n"
	for b.Len() < 8_000_000 {
		b.WriteString(line)
	}
	msg := b.Bytes()
	rcpts := []string{"alice@partner.example", "carol@partner.example"} // carol: no key, a split

	for _, tc := range []struct {
		name  string
		limit int64
		want  gomilter.ActionType
	}{
		{"default limit", 0, gomilter.ActionRejectWithCode},
		{"raised limit", 11_500_000, gomilter.ActionAccept},
		{"check off", -1, gomilter.ActionAccept},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			addr := start(t, Options{Resolver: fake, Levels: policy.NewTable(policy.LevelDane), Reinjector: rec,
				MemoryThreshold: 1 << 20, SpoolDir: t.TempDir(), MaxEncryptedSize: tc.limit})
			res, err := miltertest.Simulate("tcp", addr, "QB1", "s@local.example", rcpts, msg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Final.Type != tc.want {
				t.Fatalf("final %+v, want %v", res.Final, tc.want)
			}
			if tc.want == gomilter.ActionRejectWithCode {
				if res.Final.SMTPCode != 552 || !strings.Contains(res.Final.SMTPReply, "5.3.4") || !strings.Contains(res.Final.SMTPReply, "too big once encrypted") {
					t.Errorf("reply %d %q, want 552 5.3.4 ... too big once encrypted", res.Final.SMTPCode, res.Final.SMTPReply)
				}
				if len(rec.calls) != 0 || len(res.Modifications) != 0 {
					t.Errorf("refused message still re-injected %d copies and asked for %d changes", len(rec.calls), len(res.Modifications))
				}
				return
			}
			if len(rec.calls) != 1 || len(deleted(res.Modifications)) != 1 {
				t.Fatalf("%d re-injections and %v removed, want the split", len(rec.calls), deleted(res.Modifications))
			}
			if got := alice.decrypt(t, res.Message); !bytes.Equal(got, entity(t, msg)) {
				t.Errorf("encrypted copy does not decrypt to the original (%d vs %d bytes)", len(got), len(entity(t, msg)))
			}
		})
	}
}
