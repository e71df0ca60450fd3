package milter

import (
	"crypto/x509"
	"encoding/asn1"
	"testing"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/recipient"
	"github.com/danemilter/danemilter/smime"
)

// TestChooseCipher: "auto" reads the stored capabilities of the
// certificates the copy is encrypted to; for several recipients the
// strongest all can read; explicit ciphers keep their rule.
func TestChooseCipher(t *testing.T) {
	gcm256 := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	gcm128 := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}
	cbc256 := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oaep := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	rcpt := func(name, domain string, oids ...asn1.ObjectIdentifier) *recipient.Recipient {
		u := newUser(t, name+"@"+domain)
		c, err := x509.ParseCertificate(u.der)
		if err != nil {
			t.Fatal(err)
		}
		r := &recipient.Recipient{Address: u.addr, Domain: domain}
		r.SMIMEA.Result.Status = dane.StatusSecure
		r.SMIMEA.Keys = []dane.Key{{Cert: c}}
		if oids != nil {
			r.Harvested = []harvest.Entry{{Address: u.addr, Certificate: u.der, Capabilities: capsDER(t, oids...)}}
		}
		return r
	}
	gcmOAEP := rcpt("a", "gcm.example", gcm256, gcm128, oaep)
	gcm := rcpt("b", "gcm.example", gcm256, gcm128)
	only128 := rcpt("c", "gcm.example", gcm128)
	cbc := rcpt("d", "cbc.example", cbc256)
	unknown := rcpt("e", "unknown.example")
	explicit := rcpt("f", "old.example", gcm256)
	cipherFor := func(d string) (smime.Cipher, bool) {
		if d == "old.example" {
			return smime.AES128CBC, true
		}
		return 0, false
	}
	for _, tc := range []struct {
		name       string
		configured smime.Cipher
		rcpts      []*recipient.Recipient
		want       smime.Cipher
		oaep       []bool // per recipient's certificate
	}{
		{"explicit GCM unchanged", smime.AES256GCM, []*recipient.Recipient{cbc}, smime.AES256GCM, []bool{false}},
		{"auto, GCM and OAEP announced", smime.CipherAuto, []*recipient.Recipient{gcmOAEP}, smime.AES256GCM, []bool{true}},
		{"auto, GCM without OAEP", smime.CipherAuto, []*recipient.Recipient{gcm}, smime.AES256GCM, []bool{false}},
		{"auto, strongest all announce", smime.CipherAuto, []*recipient.Recipient{gcmOAEP, only128}, smime.AES128GCM, []bool{true, false}},
		{"auto, one without GCM", smime.CipherAuto, []*recipient.Recipient{gcmOAEP, cbc}, smime.AES256CBC, []bool{true, false}},
		{"auto, one unknown", smime.CipherAuto, []*recipient.Recipient{gcm, unknown}, smime.AES256CBC, []bool{false, false}},
		{"auto and a domain forced to CBC", smime.CipherAuto, []*recipient.Recipient{gcm, explicit}, smime.AES128CBC, []bool{false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, oaepFor := ChooseCipher(tc.configured, false, cipherFor, tc.rcpts)
			if c != tc.want {
				t.Errorf("cipher %v, want %v", c, tc.want)
			}
			for i, r := range tc.rcpts {
				got := oaepFor != nil && oaepFor(r.SMIMEA.Keys[0].Cert)
				if got != tc.oaep[i] {
					t.Errorf("%s: OAEP %v, want %v", r.Address, got, tc.oaep[i])
				}
			}
		})
	}
}
