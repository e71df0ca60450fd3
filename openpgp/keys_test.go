package openpgp

import (
	"bytes"
	"crypto/dsa" // deprecated, but go-crypto builds DSA key packets from it
	"crypto/rsa"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"
)

const alice = "alice@example.org"

func TestSelectKeys(t *testing.T) {
	past := func() time.Time { return time.Now().Add(-48 * time.Hour) }
	future := func() time.Time { return time.Now().Add(48 * time.Hour) }
	fresh := &packet.Config{} // not cached: the test modifies the key

	signingOnly := newKey(t, kindCv25519, alice, fresh)
	signingOnly.Subkeys = nil

	subkeyExpired := newKey(t, kindCv25519, alice, fresh)
	subkeyExpired.Subkeys = nil
	cfg := kindConfig(kindCv25519)
	cfg.Time, cfg.KeyLifetimeSecs = past, 3600
	if err := subkeyExpired.AddEncryptionSubkey(cfg); err != nil {
		t.Fatal(err)
	}

	subkeyRevoked := newKey(t, kindCv25519, alice, fresh)
	if err := subkeyRevoked.RevokeSubkey(&subkeyRevoked.Subkeys[0], packet.KeyRetired, "", nil); err != nil {
		t.Fatal(err)
	}

	revoked := newKey(t, kindCv25519, alice, fresh)
	if err := revoked.RevokeKey(packet.KeyCompromised, "laptop stolen", nil); err != nil {
		t.Fatal(err)
	}

	var secret bytes.Buffer
	if err := newKey(t, kindCv25519, alice, nil).SerializePrivate(&secret, nil); err != nil {
		t.Fatal(err)
	}

	valid := newKey(t, kindCv25519, alice, nil)
	expired := newKey(t, kindCv25519, alice, &packet.Config{Time: past, KeyLifetimeSecs: 3600})
	validBytes := publicBytes(t, valid)

	tests := []struct {
		name    string
		addr    string
		rrs     func() []dns.RR
		algs    []string // of the keys, in order
		reasons []string // substrings of the rejections, in order
	}{
		{"rsa3072", alice, rrs(t, alice, newKey(t, kindRSA3072, alice, nil)), []string{"rsa3072"}, nil},
		{"cv25519", alice, rrs(t, alice, valid), []string{"cv25519"}, nil},
		{"p256", alice, rrs(t, alice, newKey(t, kindP256, alice, nil)), []string{"nistp256"}, nil},
		{"p384", alice, rrs(t, alice, newKey(t, kindP384, alice, nil)), []string{"nistp384"}, nil},
		{"v6 x25519", alice, rrs(t, alice, newKey(t, kindV6, alice, nil)), []string{"x25519"}, nil},
		{"address case and IDN", "ALICE@B\u00dcCHER.example", rrs(t, alice, newKey(t, kindCv25519, "alice@xn--bcher-kva.example", nil)), []string{"cv25519"}, nil},
		{"wrong user ID", alice, rrs(t, alice, newKey(t, kindCv25519, "bob@example.org", nil)), nil,
			[]string{"no user ID for alice@example.org (it names bob@example.org)"}},
		{"other domain", "alice@example.com", rrs(t, alice, valid), nil, []string{"no user ID for alice@example.com"}},
		{"expired", alice, rrs(t, alice, expired), nil, []string{"key expired " + expired.PrimaryKey.CreationTime.Add(time.Hour).UTC().Format(time.RFC3339)}},
		{"not yet valid", alice, rrs(t, alice, newKey(t, kindCv25519, alice, &packet.Config{Time: future})), nil, []string{"key not valid before"}},
		{"revoked", alice, rrs(t, alice, revoked), nil, []string{`revoked (key compromised: "laptop stolen")`}},
		{"signing only", alice, rrs(t, alice, signingOnly), nil, []string{"no encryption-capable subkey (signing only)"}},
		{"encryption subkey expired", alice, rrs(t, alice, subkeyExpired), nil, []string{"encryption subkey expired"}},
		{"encryption subkey revoked", alice, rrs(t, alice, subkeyRevoked), nil, []string{"encryption subkey revoked"}},
		{"rsa1024", alice, rrs(t, alice, newKey(t, kindRSA1024, alice, nil)), nil, []string{"RSA key of 1024 bits too weak"}},
		{"brainpool", alice, rrs(t, alice, newKey(t, kindBrainP, alice, nil)), nil, []string{"ECDH over BrainpoolP256 is not supported"}},
		{"garbage", alice, raw(t, alice, []byte("\x99\x01\x0dnot a key at all")), nil, []string{"does not parse"}},
		{"random bytes", alice, raw(t, alice, []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3}), nil, []string{"does not parse"}},
		{"truncated", alice, raw(t, alice, validBytes[:len(validBytes)/2]), nil, []string{"does not parse"}},
		{"not base64", alice, func() []dns.RR {
			r := recordOf(t, alice, nil)
			r.PublicKey = "!!not base64!!"
			return []dns.RR{r}
		}, nil, []string{"not valid base64"}},
		{"empty", alice, raw(t, alice, nil), nil, []string{"record is empty"}},
		{"secret key published", alice, raw(t, alice, secret.Bytes()), nil, []string{"secret key material"}},
		{"two keys in one record", alice, rrs(t, alice, expired, valid), []string{"cv25519"}, []string{"key expired"}},
		{"rollover: two records and a broken one", alice, func() []dns.RR {
			return []dns.RR{
				recordFor(t, alice, newKey(t, kindRSA3072, alice, nil)),
				recordOf(t, alice, []byte("junk")),
				recordFor(t, alice, valid),
			}
		}, []string{"rsa3072", "cv25519"}, []string{"does not parse"}},
		{"broken key before a good one in one record", alice, raw(t, alice, append(publicBytes(t, signingOnly), validBytes...)),
			[]string{"cv25519"}, []string{"signing only"}},
		{"duplicate", alice, func() []dns.RR {
			return []dns.RR{recordFor(t, alice, valid), recordFor(t, alice, valid)}
		}, []string{"cv25519"}, []string{"duplicate"}},
		{"other record types ignored", alice, func() []dns.RR {
			return []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA}}, nil, (*dns.OPENPGPKEY)(nil), recordFor(t, alice, valid)}
		}, []string{"cv25519"}, nil},
		{"bad address", "no-at-sign", rrs(t, alice, valid), nil, []string{"address is not usable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := tt.rrs()
			keys, rejected := SelectKeys(tt.addr, rs, time.Now())
			var algs []string
			for _, k := range keys {
				algs = append(algs, k.Algorithm)
				if k.Entity == nil || k.Record == nil || len(k.Fingerprint) != 2*len(k.Entity.PrimaryKey.Fingerprint) {
					t.Errorf("incomplete key %+v", k)
				}
				if !slices.ContainsFunc(rs, func(rr dns.RR) bool { r, ok := rr.(*dns.OPENPGPKEY); return ok && r == k.Record }) {
					t.Errorf("key %s points to a record not given", k.Fingerprint)
				}
			}
			if !slices.Equal(algs, tt.algs) {
				t.Errorf("algorithms = %v, want %v (rejected: %s)", algs, tt.algs, fmtReasons(rejected))
			}
			if len(rejected) != len(tt.reasons) {
				t.Fatalf("rejected %s, want %d matching %q", fmtReasons(rejected), len(tt.reasons), tt.reasons)
			}
			for i, r := range rejected {
				if !strings.Contains(r.Reason, tt.reasons[i]) {
					t.Errorf("reason %d = %q, want it to contain %q", i, r.Reason, tt.reasons[i])
				}
				if r.Record == nil {
					t.Errorf("reason %d has no record", i)
				}
			}
		})
	}
}

// rrs returns a record set of one record holding the keys es.
func rrs(tb testing.TB, addr string, es ...*pgp.Entity) func() []dns.RR {
	r := recordFor(tb, addr, es...)
	return func() []dns.RR { return []dns.RR{r} }
}

// raw returns a record set of one record holding data.
func raw(tb testing.TB, addr string, data []byte) func() []dns.RR {
	r := recordOf(tb, addr, data)
	return func() []dns.RR { return []dns.RR{r} }
}

// The time given decides: a key valid now is expired later.
func TestSelectKeysTime(t *testing.T) {
	e := newKey(t, kindCv25519, alice, &packet.Config{KeyLifetimeSecs: 3600})
	r := rrs(t, alice, e)()
	if keys, rej := SelectKeys(alice, r, time.Now()); len(keys) != 1 {
		t.Fatalf("now: %s", fmtReasons(rej))
	}
	if keys, rej := SelectKeys(alice, r, time.Now().Add(2*time.Hour)); len(keys) != 0 || len(rej) != 1 || !strings.Contains(rej[0].Reason, "key expired") {
		t.Fatalf("later: %d keys, %s", len(keys), fmtReasons(rej))
	}
}

// A record's presentation form may hold blanks between base64 chunks, as a
// zone file writes it.
func TestSelectKeysPresentationForm(t *testing.T) {
	r := recordFor(t, alice, newKey(t, kindCv25519, alice, nil))
	orig := r.PublicKey
	var b strings.Builder
	for i := 0; i < len(r.PublicKey); i += 56 {
		b.WriteString(r.PublicKey[i:min(i+56, len(r.PublicKey))])
		b.WriteString(" \t\n")
	}
	r.PublicKey = b.String()
	if keys, rej := SelectKeys(alice, []dns.RR{r}, time.Now()); len(keys) != 1 {
		t.Fatalf("%s", fmtReasons(rej))
	}
	// And a record parsed from a zone file line.
	rr, err := dns.NewRR("x._openpgpkey.example.org. 3600 IN OPENPGPKEY " + orig[:40] + " " + orig[40:])
	if err != nil {
		t.Fatal(err)
	}
	if keys, rej := SelectKeys(alice, []dns.RR{rr}, time.Now()); len(keys) != 1 {
		t.Fatalf("zone file: %s", fmtReasons(rej))
	}
}

func TestSelectKeysTooLarge(t *testing.T) {
	r := recordOf(t, alice, make([]byte, maxRecordLength+1))
	_, rej := SelectKeys(alice, []dns.RR{r}, time.Now())
	if len(rej) != 1 || !strings.Contains(rej[0].Reason, "too long") {
		t.Fatalf("%s", fmtReasons(rej))
	}
}

func TestUIDAddress(t *testing.T) {
	for _, tt := range []struct{ uid, want string }{
		{"Alice <alice@example.org>", "alice@example.org"},
		{"Alice (work) <alice@example.org>", "alice@example.org"},
		{"<alice@example.org>", "alice@example.org"},
		{"alice@example.org", "alice@example.org"},
		{"  alice@example.org ", "alice@example.org"},
		{"Alice <a@b> <alice@example.org>", "alice@example.org"},
		{"Alice <alice@example.org", ""},
		{"Alice Example", ""},
		{"Alice at alice@example.org", ""},
		{"", ""},
	} {
		if got := uidAddress(tt.uid); got != tt.want {
			t.Errorf("uidAddress(%q) = %q, want %q", tt.uid, got, tt.want)
		}
	}
}

// Keys GnuPG makes parse and select: RSA with one key that signs and
// encrypts, Curve25519 with an encryption subkey, NIST P-256; and a user ID
// GnuPG revoked is refused while the key's other user ID is accepted.
func TestSelectKeysGnuPG(t *testing.T) {
	g := newGPG(t)
	for _, tt := range []struct{ uid, algo, usage, want string }{
		{"Test <rsa@x.test>", "rsa3072", "encrypt,sign", "rsa3072"},
		{"Test <cv@x.test>", "future-default", "default", "cv25519"},
		{"Test <p256@x.test>", "nistp256", "default", "nistp256"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			fpr := g.genKey(t, tt.uid, tt.algo, tt.usage)
			if tt.want == "nistp256" {
				// A nistp256 primary key only signs; add the subkey.
				g.run(t, nil, "--quick-add-key", fpr, "nistp256", "encr", "never")
			}
			data := g.run(t, nil, "--export", fpr)
			addr := uidAddress(tt.uid)
			keys, rej := SelectKeys(addr, []dns.RR{recordOf(t, addr, data)}, time.Now())
			if len(keys) != 1 || len(rej) != 0 {
				t.Fatalf("keys %d, rejected %s", len(keys), fmtReasons(rej))
			}
			if keys[0].Fingerprint != fpr || keys[0].Algorithm != tt.want {
				t.Errorf("got %s %s, want %s %s", keys[0].Fingerprint, keys[0].Algorithm, fpr, tt.want)
			}
		})
	}
	t.Run("revoked user ID", func(t *testing.T) {
		fpr := g.genKey(t, "Test <old@x.test>", "future-default", "default")
		g.run(t, nil, "--quick-add-uid", fpr, "Test <new@x.test>")
		g.run(t, nil, "--quick-revoke-uid", fpr, "Test <old@x.test>")
		data := g.run(t, nil, "--export", fpr)
		// GnuPG dates each new signature after the last one, which within
		// a second of key generation is a few seconds ahead.
		later := time.Now().Add(time.Minute)
		if keys, rej := SelectKeys("new@x.test", []dns.RR{recordOf(t, "new@x.test", data)}, later); len(keys) != 1 {
			t.Errorf("new@x.test: %s", fmtReasons(rej))
		}
		keys, rej := SelectKeys("old@x.test", []dns.RR{recordOf(t, "old@x.test", data)}, later)
		if len(keys) != 0 || len(rej) != 1 || !strings.Contains(rej[0].Reason, `user ID "Test <old@x.test>" revoked`) {
			t.Errorf("old@x.test: %d keys, %s", len(keys), fmtReasons(rej))
		}
	})
	t.Run("expired", func(t *testing.T) {
		fpr := g.genKey(t, "Test <exp@x.test>", "future-default", "default")
		g.run(t, nil, "--quick-set-expire", fpr, "1d")
		data := g.run(t, nil, "--export", fpr)
		r := []dns.RR{recordOf(t, "exp@x.test", data)}
		if keys, rej := SelectKeys("exp@x.test", r, time.Now()); len(keys) != 1 {
			t.Errorf("now: %s", fmtReasons(rej))
		}
		keys, rej := SelectKeys("exp@x.test", r, time.Now().Add(72*time.Hour))
		if len(keys) != 0 || len(rej) != 1 || !strings.Contains(rej[0].Reason, "key expired") {
			t.Errorf("in three days: %d keys, %s", len(keys), fmtReasons(rej))
		}
	})
}

// Keys whose self-signatures would be slow to verify are refused before
// any verification.
func TestSelectKeysHugeKeys(t *testing.T) {
	odd := func(bits int) *big.Int {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		return n.Add(n, big.NewInt(1))
	}
	dsaKey := &dsa.PublicKey{Parameters: dsa.Parameters{P: odd(4096), Q: odd(256), G: big.NewInt(2)}, Y: big.NewInt(3)}
	rsaKey := &rsa.PublicKey{N: odd(20000), E: 65537}
	for _, tt := range []struct {
		pk   *packet.PublicKey
		want string
	}{
		{packet.NewDSAPublicKey(time.Now(), dsaKey), "DSA key of 4096 bits is too large"},
		{packet.NewRSAPublicKey(time.Now(), rsaKey), "RSA key of 20000 bits is too large"},
	} {
		var b bytes.Buffer
		if err := tt.pk.Serialize(&b); err != nil {
			t.Fatal(err)
		}
		// A user ID and a bogus signature follow, as in a real key.
		_, rej := SelectKeys(alice, []dns.RR{recordOf(t, alice, append(b.Bytes(), 0xb4, 0x03, 'a', '@', 'b'))}, time.Now())
		if len(rej) != 1 || !strings.Contains(rej[0].Reason, tt.want) {
			t.Errorf("%s", fmtReasons(rej))
		}
	}
}
