package openpgp

import (
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"
)

func TestSigningKeys(t *testing.T) {
	const addr = "bosun@example.com"
	now := time.Now()
	revoked := func() *pgp.Entity {
		e := newKey(t, kindCv25519, addr, &packet.Config{Time: func() time.Time { return now.Add(-time.Hour) }})
		if err := e.RevokeKey(packet.KeyCompromised, "", nil); err != nil {
			t.Fatal(err)
		}
		return e
	}()
	expired := newKey(t, kindCv25519, addr, &packet.Config{Time: func() time.Time { return now.Add(-48 * time.Hour) }, KeyLifetimeSecs: 3600})
	tests := []struct {
		name   string
		rrs    []dns.RR
		addr   string
		alg    string // algorithm of the one key wanted; "" none
		reason string // substring of a rejection
	}{
		{name: "Ed25519 legacy", rrs: []dns.RR{recordFor(t, addr, newKey(t, kindCv25519, addr, nil))}, alg: "ed25519"},
		{name: "RSA-3072", rrs: []dns.RR{recordFor(t, addr, newKey(t, kindRSA3072, addr, nil))}, alg: "rsa3072"},
		{name: "ECDSA P-256", rrs: []dns.RR{recordFor(t, addr, newKey(t, kindP256, addr, nil))}, alg: "nistp256"},
		{name: "v6 Ed25519", rrs: []dns.RR{recordFor(t, addr, newKey(t, kindV6, addr, nil))}, alg: "ed25519"},
		{name: "address case-insensitive", addr: "Bosun@EXAMPLE.com", rrs: []dns.RR{recordFor(t, addr, newKey(t, kindCv25519, addr, nil))}, alg: "ed25519"},
		{name: "RSA-1024 too weak", rrs: []dns.RR{recordFor(t, addr, newKey(t, kindRSA1024, addr, nil))}, reason: "too weak"},
		{name: "Brainpool refused", rrs: []dns.RR{recordFor(t, addr, newKey(t, kindBrainP, addr, nil))}, reason: "BrainpoolP256"},
		{name: "other user ID", rrs: []dns.RR{recordFor(t, addr, newKey(t, kindCv25519, "mate@example.com", nil))}, reason: "no user ID for bosun@example.com (it names mate@example.com)"},
		{name: "revoked", rrs: []dns.RR{recordFor(t, addr, revoked)}, reason: "revoked"},
		{name: "expired", rrs: []dns.RR{recordFor(t, addr, expired)}, reason: "expired"},
		{name: "not base64", rrs: []dns.RR{&dns.OPENPGPKEY{PublicKey: "!!"}}, reason: "base64"},
		{name: "garbage", rrs: []dns.RR{recordOf(t, addr, []byte("not a key at all"))}, reason: "does not parse"},
		{name: "bad address", addr: "nobody", rrs: []dns.RR{recordFor(t, addr, newKey(t, kindCv25519, addr, nil))}, reason: "address is not usable"},
		{name: "other types ignored", rrs: []dns.RR{&dns.TXT{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.addr
			if a == "" {
				a = addr
			}
			keys, rejected := SigningKeys(a, tc.rrs, time.Now())
			if tc.alg != "" {
				if len(keys) != 1 || keys[0].Algorithm != tc.alg {
					t.Fatalf("keys %+v, want one %s; rejected: %s", keys, tc.alg, fmtReasons(rejected))
				}
				if keys[0].Fingerprint != fingerprint(keys[0].Entity) || len(Keyring(keys)) != 1 {
					t.Error("fingerprint or keyring")
				}
				return
			}
			if len(keys) != 0 {
				t.Fatalf("keys %+v, want none", keys)
			}
			if tc.reason != "" && !strings.Contains(fmtReasons(rejected), tc.reason) {
				t.Errorf("rejected %s, want %q", fmtReasons(rejected), tc.reason)
			}
		})
	}
}

// A signing key found by SigningKeys verifies that key's PGP/MIME
// signature; a key found for another address is not in the keyring.
func TestSigningKeysVerify(t *testing.T) {
	const addr = "bosun@example.com"
	e := newKey(t, kindCv25519, addr, nil)
	keys, rej := SigningKeys(addr, []dns.RR{recordFor(t, addr, e, newKey(t, kindP256, "mate@example.com", nil))}, time.Now())
	if len(keys) != 1 || len(rej) != 1 {
		t.Fatalf("keys %d, rejected %s", len(keys), fmtReasons(rej))
	}
	entity := wrapSigned("pgp-sha256", "Content-Type: text/plain\r\n\r\nHello.\r\n", goSign(t, e, "Content-Type: text/plain\r\n\r\nHello.\r\n", false, nil))
	if v := VerifyMIME(entity, Keyring(keys), time.Now()); v.Err != nil || v.Fingerprint != keys[0].Fingerprint {
		t.Fatalf("VerifyMIME: %v", v.Err)
	}
}
