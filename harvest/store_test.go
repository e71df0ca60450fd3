package harvest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"slices"
	"testing"
	"time"
)

// newCert makes a self-signed certificate for addr, DER.
func newCert(t testing.TB, addr string) []byte {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: addr},
		EmailAddresses: []string{addr},
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Capability OIDs used in the tests (RFC 5084, RFC 3565, RFC 4055).
var (
	oidAES256GCM = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	oidAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidRSAOAEP   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
)

func capsDER(t testing.TB, oids ...asn1.ObjectIdentifier) []byte {
	t.Helper()
	caps := make([]smimeCapability, len(oids))
	for i, o := range oids {
		caps[i].ID = o
	}
	der, err := asn1.Marshal(caps)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// opener opens a fresh, empty store of one backend.
type opener func(t *testing.T, o Options) Store

func getAll(t *testing.T, s Store, addr string) []Entry {
	t.Helper()
	es, err := s.Get(context.Background(), addr)
	if err != nil {
		t.Fatalf("Get(%s): %v", addr, err)
	}
	return es
}

func listAll(t *testing.T, s Store) []Entry {
	t.Helper()
	var es []Entry
	if err := s.List(context.Background(), func(e Entry) error { es = append(es, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return es
}

func mustPut(t *testing.T, s Store, e Entry) {
	t.Helper()
	if err := s.Put(context.Background(), e); err != nil {
		t.Fatalf("Put(%s): %v", e.Address, err)
	}
}

// testBehaviour is the behaviour every backend shares.
func testBehaviour(t *testing.T, open opener) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	day := 24 * time.Hour

	t.Run("put get", func(t *testing.T) {
		s := open(t, Options{})
		cert := newCert(t, "alice@partner.example")
		caps := capsDER(t, oidAES256GCM, oidAES256CBC)
		mustPut(t, s, Entry{Address: " Alice@Partner.Example", Certificate: cert, Capabilities: caps, LastSeen: now})
		es := getAll(t, s, "ALICE@partner.example")
		if len(es) != 1 {
			t.Fatalf("Get = %d entries, want 1", len(es))
		}
		e := es[0]
		if e.Address != "alice@partner.example" || e.Fingerprint != Fingerprint(cert) || !bytes.Equal(e.Certificate, cert) ||
			!bytes.Equal(e.Capabilities, caps) || !e.FirstSeen.Equal(now) || !e.LastSeen.Equal(now) {
			t.Errorf("Get = %+v", e)
		}
		if es := getAll(t, s, "bob@partner.example"); len(es) != 0 {
			t.Errorf("unknown address: %d entries", len(es))
		}
		if es := getAll(t, s, "alice@partner.exampl"); len(es) != 0 {
			t.Errorf("prefix of an address matched: %d entries", len(es))
		}
	})

	t.Run("upsert", func(t *testing.T) {
		s := open(t, Options{})
		cert := newCert(t, "carol@partner.example")
		cbc, gcm := capsDER(t, oidAES256CBC), capsDER(t, oidAES256GCM, oidRSAOAEP)
		mustPut(t, s, Entry{Address: "carol@partner.example", Certificate: cert, Capabilities: cbc, FirstSeen: now.Add(-10 * day), LastSeen: now.Add(-5 * day)})
		// Newer sighting: LastSeen and capabilities move, FirstSeen stays.
		mustPut(t, s, Entry{Address: "carol@partner.example", Certificate: cert, Capabilities: gcm, LastSeen: now.Add(-day)})
		// Newer sighting without the attribute keeps the capabilities.
		mustPut(t, s, Entry{Address: "carol@partner.example", Certificate: cert, LastSeen: now})
		// An older sighting (a retried Put) moves nothing back.
		mustPut(t, s, Entry{Address: "carol@partner.example", Certificate: cert, Capabilities: cbc, LastSeen: now.Add(-3 * day)})
		es := getAll(t, s, "carol@partner.example")
		if len(es) != 1 {
			t.Fatalf("Get = %d entries, want 1", len(es))
		}
		if e := es[0]; !e.FirstSeen.Equal(now.Add(-10*day)) || !e.LastSeen.Equal(now) || !bytes.Equal(e.Capabilities, gcm) {
			t.Errorf("after upserts: first %v last %v caps %x", e.FirstSeen, e.LastSeen, e.Capabilities)
		}
		// An earlier FirstSeen (another host saw it before) wins.
		mustPut(t, s, Entry{Address: "carol@partner.example", Certificate: cert, FirstSeen: now.Add(-20 * day), LastSeen: now.Add(-20 * day)})
		if e := getAll(t, s, "carol@partner.example")[0]; !e.FirstSeen.Equal(now.Add(-20*day)) || !e.LastSeen.Equal(now) {
			t.Errorf("earlier first seen: first %v last %v", e.FirstSeen, e.LastSeen)
		}
	})

	t.Run("newest first", func(t *testing.T) {
		s := open(t, Options{})
		old, mid, newest := newCert(t, "d@x.example"), newCert(t, "d@x.example"), newCert(t, "d@x.example")
		mustPut(t, s, Entry{Address: "d@x.example", Certificate: mid, LastSeen: now.Add(-2 * day)})
		mustPut(t, s, Entry{Address: "d@x.example", Certificate: newest, LastSeen: now})
		mustPut(t, s, Entry{Address: "d@x.example", Certificate: old, LastSeen: now.Add(-30 * day)})
		mustPut(t, s, Entry{Address: "e@x.example", Certificate: newCert(t, "e@x.example"), LastSeen: now})
		es := getAll(t, s, "d@x.example")
		if len(es) != 3 || !bytes.Equal(es[0].Certificate, newest) || !bytes.Equal(es[1].Certificate, mid) || !bytes.Equal(es[2].Certificate, old) {
			t.Errorf("order wrong: %d entries", len(es))
		}
		list := listAll(t, s)
		if len(list) != 4 || !slices.IsSortedFunc(list, func(a, b Entry) int { return cmpString(a.Address, b.Address) }) {
			t.Errorf("List: %d entries, sorted by address: %v", len(list), list)
		}
	})

	t.Run("refused", func(t *testing.T) {
		s := open(t, Options{MaxCertificateSize: 1000})
		big := bytes.Repeat([]byte{0x30}, 1001)
		if err := s.Put(ctx, Entry{Address: "f@x.example", Certificate: big}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("large certificate: %v", err)
		}
		cert := newCert(t, "f@x.example")
		if err := s.Put(ctx, Entry{Address: "f@x.example", Certificate: cert, Capabilities: big}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("large capabilities: %v", err)
		}
		for _, e := range []Entry{
			{Address: "", Certificate: cert},
			{Address: "no-at-sign", Certificate: cert},
			{Address: "f@x.example"},
			{Address: "f@x.example", Certificate: cert, Fingerprint: Fingerprint([]byte("other"))},
		} {
			if err := s.Put(ctx, e); !errors.Is(err, ErrInvalidEntry) {
				t.Errorf("Put(%q, fp %q): %v, want ErrInvalidEntry", e.Address, e.Fingerprint, err)
			}
		}
		if list := listAll(t, s); len(list) != 0 {
			t.Errorf("refused entries stored: %d", len(list))
		}
	})

	t.Run("forget", func(t *testing.T) {
		s := open(t, Options{})
		mustPut(t, s, Entry{Address: "g@x.example", Certificate: newCert(t, "g@x.example")})
		mustPut(t, s, Entry{Address: "g@x.example", Certificate: newCert(t, "g@x.example")})
		mustPut(t, s, Entry{Address: "g@x.example.org", Certificate: newCert(t, "g@x.example.org")})
		n, err := s.Forget(ctx, "G@X.example")
		if err != nil || n != 2 {
			t.Errorf("Forget = %d, %v; want 2", n, err)
		}
		if es := getAll(t, s, "g@x.example"); len(es) != 0 {
			t.Errorf("after Forget: %d entries", len(es))
		}
		if es := getAll(t, s, "g@x.example.org"); len(es) != 1 {
			t.Errorf("Forget took another address: %d entries left", len(es))
		}
		if n, err := s.Forget(ctx, "nobody@x.example"); err != nil || n != 0 {
			t.Errorf("Forget(unknown) = %d, %v", n, err)
		}
	})

	t.Run("expire", func(t *testing.T) {
		s := open(t, Options{ExpireAfter: 100 * day})
		for i, age := range []time.Duration{0, 10 * day, 50 * day, 99 * day, 150 * day} {
			addr := string(rune('a'+i)) + "@old.example"
			mustPut(t, s, Entry{Address: addr, Certificate: newCert(t, addr), LastSeen: now.Add(-age)})
		}
		// Past ExpireAfter an entry is not returned even before Expire.
		if es := getAll(t, s, "e@old.example"); len(es) != 0 {
			t.Errorf("entry seen 150 days ago returned with ExpireAfter 100 days")
		}
		n, err := s.Expire(ctx, now.Add(-30*day))
		if err != nil || n != 3 {
			t.Errorf("Expire = %d, %v; want 3", n, err)
		}
		var got []string
		for _, e := range listAll(t, s) {
			got = append(got, e.Address)
		}
		if !slices.Equal(got, []string{"a@old.example", "b@old.example"}) {
			t.Errorf("after Expire: %v", got)
		}
		// The count stays right: MaxEntries below still works after it.
	})

	t.Run("max entries", func(t *testing.T) {
		s := open(t, Options{MaxEntries: 3})
		for i := range 6 {
			addr := string(rune('a'+i)) + "@many.example"
			// Put out of order: c is the newest.
			mustPut(t, s, Entry{Address: addr, Certificate: newCert(t, addr), LastSeen: now.Add(-time.Duration((i+3)%6) * time.Hour)})
		}
		var got []string
		for _, e := range listAll(t, s) {
			got = append(got, e.Address)
		}
		// Ages: a 3h, b 4h, c 5h, d 0h, e 1h, f 2h: the newest three stay.
		if !slices.Equal(got, []string{"d@many.example", "e@many.example", "f@many.example"}) {
			t.Errorf("kept %v", got)
		}
		// Updating an entry does not count it twice.
		mustPut(t, s, Entry{Address: "d@many.example", Certificate: listAll(t, s)[0].Certificate, LastSeen: now})
		if n := len(listAll(t, s)); n != 3 {
			t.Errorf("after an update: %d entries", n)
		}
		if _, err := s.Forget(ctx, "d@many.example"); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, Entry{Address: "z@many.example", Certificate: newCert(t, "z@many.example"), LastSeen: now})
		if n := len(listAll(t, s)); n != 3 {
			t.Errorf("after Forget and Put: %d entries, want 3", n)
		}
	})

	t.Run("list stops", func(t *testing.T) {
		s := open(t, Options{})
		mustPut(t, s, Entry{Address: "h@x.example", Certificate: newCert(t, "h@x.example")})
		mustPut(t, s, Entry{Address: "i@x.example", Certificate: newCert(t, "i@x.example")})
		stop := errors.New("stop")
		calls := 0
		err := s.List(ctx, func(Entry) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("List = %v after %d calls", err, calls)
		}
	})
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestParseCapabilities(t *testing.T) {
	der := capsDER(t, oidAES256GCM, oidAES256CBC, oidRSAOAEP)
	got, err := ParseCapabilities(der)
	if err != nil || len(got) != 3 || !got[0].Equal(oidAES256GCM) || !got[2].Equal(oidRSAOAEP) {
		t.Errorf("ParseCapabilities = %v, %v", got, err)
	}
	// With parameters (RC2 key length, as old clients send) and inside the
	// attribute's SET.
	withParams, _ := asn1.Marshal([]smimeCapability{
		{ID: asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 2}, Parameters: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagInteger, Bytes: []byte{0x00, 0x80}}},
		{ID: oidAES256CBC},
	})
	set, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: withParams})
	for _, in := range [][]byte{withParams, set} {
		got, err := ParseCapabilities(in)
		if err != nil || len(got) != 2 || !got[1].Equal(oidAES256CBC) {
			t.Errorf("ParseCapabilities(%x) = %v, %v", in, got, err)
		}
	}
	if got, err := ParseCapabilities(nil); got != nil || err != nil {
		t.Errorf("nil: %v, %v", got, err)
	}
	for _, bad := range [][]byte{{0x30}, {0x30, 0x03, 0x06, 0x01}, append(slices.Clone(der), 0), {0x02, 0x01, 0x00}} {
		if _, err := ParseCapabilities(bad); err == nil {
			t.Errorf("ParseCapabilities(%x) accepted", bad)
		}
	}
}

func TestExpiryDue(t *testing.T) {
	var x expiry
	now := time.Now()
	if !x.due(now) || x.due(now.Add(time.Minute)) || !x.due(now.Add(expireEvery)) {
		t.Error("expiry not due once an hour")
	}
}
