package recipient

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/policy"
)

// fakeStore is a harvest.Store in memory that can fail or hang.
type fakeStore struct {
	entries map[string][]harvest.Entry
	err     error
	hang    bool
	gets    atomic.Int32
}

func (f *fakeStore) Put(_ context.Context, e harvest.Entry) error {
	f.entries[e.Address] = append(f.entries[e.Address], e)
	return nil
}

func (f *fakeStore) Get(ctx context.Context, addr string) ([]harvest.Entry, error) {
	f.gets.Add(1)
	if f.hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.entries[harvest.NormalizeAddress(addr)], nil
}

func (f *fakeStore) List(context.Context, func(harvest.Entry) error) error { return nil }
func (f *fakeStore) Forget(context.Context, string) (int, error)           { return 0, nil }
func (f *fakeStore) Expire(context.Context, time.Time) (int, error)        { return 0, nil }
func (f *fakeStore) Close() error                                          { return nil }

func rsaCert(t *testing.T, email string) *x509.Certificate {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: email},
		EmailAddresses: []string{email}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHarvestedCertificates: a stored certificate serves a 3 1 1 record
// that matches it, never one that does not; a store that fails or hangs is
// "not known" within StoreTimeout; without records the store is not asked.
func TestHarvestedCertificates(t *testing.T) {
	const addr = "partner@partner.example"
	cert, other := rsaCert(t, addr), rsaCert(t, addr)
	spki := func(c *x509.Certificate) string {
		s := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		return hex.EncodeToString(s[:])
	}
	name, _ := dane.SMIMEAName(addr, false)
	record := func(c *x509.Certificate) dane.Result {
		return dane.Result{Name: name, Type: dns.TypeSMIMEA, Status: dane.StatusSecure, TTL: time.Hour, Records: []dns.RR{&dns.SMIMEA{
			Hdr:   dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 3600},
			Usage: 3, Selector: 1, MatchingType: 1, Certificate: spki(c)}}}
	}
	caps := []byte{0x30, 0x0b, 0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01} // opaque here
	stored := func() *fakeStore {
		return &fakeStore{entries: map[string][]harvest.Entry{addr: {{Address: addr, Certificate: cert.Raw, Capabilities: caps}}}}
	}
	tests := []struct {
		name    string
		answer  dane.Result
		store   *fakeStore
		usable  bool
		asked   bool
		errWant bool
	}{
		{"3 1 1 matching the stored certificate", record(cert), stored(), true, true, false},
		{"3 1 1 of another certificate", record(other), stored(), false, true, false},
		{"store fails", record(cert), &fakeStore{err: errors.New("connection refused")}, false, true, true},
		{"store hangs", record(cert), &fakeStore{hang: true}, false, true, true},
		{"no record: store not asked", dane.Result{Name: name, Type: dns.TypeSMIMEA, Status: dane.StatusSecureDenial}, stored(), false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &dane.Fake{}
			fake.Set(name, dns.TypeSMIMEA, tc.answer)
			c := &Config{Resolver: fake, Levels: policy.NewTable(policy.LevelDane), Store: tc.store, StoreTimeout: 50 * time.Millisecond}
			start := time.Now()
			r := c.Evaluate(context.Background(), addr, "")
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("evaluation took %v", d)
			}
			if got := len(r.SMIMEA.Usable()) > 0; got != tc.usable {
				t.Fatalf("usable %v, want %v; rejected %+v", got, tc.usable, r.SMIMEA.Rejected)
			}
			if tc.usable {
				if !r.SMIMEA.Usable()[0].Cert.Equal(cert) || r.Decision.Action != policy.Encrypt {
					t.Errorf("key %v, decision %v", r.SMIMEA.Usable()[0].Cert.Subject, r.Decision.Action)
				}
				if string(r.HarvestedCapabilities(cert)) != string(caps) || r.HarvestedCapabilities(other) != nil {
					t.Errorf("capabilities %x", r.HarvestedCapabilities(cert))
				}
			} else if r.Decision.Action != policy.Plain {
				t.Errorf("decision %v (the store must never fail a message)", r.Decision.Action)
			}
			if asked := tc.store.gets.Load() > 0; asked != tc.asked {
				t.Errorf("store asked %v, want %v", asked, tc.asked)
			}
			if (r.StoreErr != nil) != tc.errWant {
				t.Errorf("StoreErr %v", r.StoreErr)
			}
		})
	}
}

// TestHarvestedParsedOnce: a stored certificate, asked for every message to
// the address, is parsed once (through the Selector's cache) and yields the
// same certificate every time.
func TestHarvestedParsedOnce(t *testing.T) {
	const addr = "partner@partner.example"
	cert := rsaCert(t, addr)
	s := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	name, _ := dane.SMIMEAName(addr, false)
	fake := &dane.Fake{}
	fake.Set(name, dns.TypeSMIMEA, dane.Result{Name: name, Type: dns.TypeSMIMEA, Status: dane.StatusSecure, TTL: time.Hour, Records: []dns.RR{&dns.SMIMEA{
		Hdr:   dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 3600},
		Usage: 3, Selector: 1, MatchingType: 1, Certificate: hex.EncodeToString(s[:])}}})
	store := &fakeStore{entries: map[string][]harvest.Entry{addr: {{Address: addr, Certificate: cert.Raw}}}}
	c := &Config{Resolver: fake, Selector: &dane.Selector{}, Levels: policy.NewTable(policy.LevelDane), Store: store}
	first := c.Evaluate(context.Background(), addr, "")
	second := c.Evaluate(context.Background(), addr, "")
	if len(first.SMIMEA.Keys) != 1 || len(second.SMIMEA.Keys) != 1 {
		t.Fatalf("keys: %d and %d, want 1 each", len(first.SMIMEA.Keys), len(second.SMIMEA.Keys))
	}
	if first.SMIMEA.Keys[0].Cert != second.SMIMEA.Keys[0].Cert {
		t.Fatal("the stored certificate was parsed again for the second message")
	}
}
