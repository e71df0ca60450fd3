package dane

import (
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestSelectorParsesOnce: the same record, in two answers (as the DNS cache
// hands out), is parsed once and yields the same *x509.Certificate.
func TestSelectorParsesOnce(t *testing.T) {
	const addr = "bosun@example.com"
	der := hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}}))
	s := &Selector{}
	k1, rej := s.Select(addr, []dns.RR{smimea(3, 0, 0, der)}, testNow)
	if len(k1) != 1 {
		t.Fatalf("first Select: %d keys, rejected %+v", len(k1), rej)
	}
	k2, rej := s.Select(addr, []dns.RR{smimea(3, 0, 0, strings.ToUpper(der))}, testNow)
	if len(k2) != 1 {
		t.Fatalf("second Select: %d keys, rejected %+v", len(k2), rej)
	}
	if k1[0].Cert != k2[0].Cert {
		t.Error("the same record gave two certificates")
	}
	if s.parsed.parses != 1 {
		t.Errorf("%d parses, want 1", s.parsed.parses)
	}
	// Another Selector has its own cache.
	k3, _ := (&Selector{}).Select(addr, []dns.RR{smimea(3, 0, 0, der)}, testNow)
	if len(k3) != 1 || k3[0].Cert == k1[0].Cert {
		t.Error("two Selectors share a parsed certificate")
	}
}

// TestSelectorCachedChecked: a cached certificate is still checked on every
// Select: expired, not yet valid and for another address are refused, and
// the same certificate is usable again at a time it is valid.
func TestSelectorCachedChecked(t *testing.T) {
	const addr = "bosun@example.com"
	der := hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}, notAfter: testNow.Add(time.Hour)}))
	rrs := []dns.RR{smimea(3, 0, 0, der)}
	s := &Selector{}
	for _, tc := range []struct {
		addr   string
		now    time.Time
		reason string
	}{
		{addr, testNow, ""},
		{addr, testNow.Add(2 * time.Hour), "expired"},
		{addr, testNow.Add(-48 * time.Hour), "not valid before"},
		{"other@example.com", testNow, "not for other@example.com"},
		{addr, testNow, ""},
	} {
		keys, rejected := s.Select(tc.addr, rrs, tc.now)
		switch {
		case tc.reason == "" && len(keys) != 1:
			t.Errorf("%s at %v: %d keys, rejected %+v", tc.addr, tc.now, len(keys), rejected)
		case tc.reason != "" && (len(keys) != 0 || len(rejected) != 1 || !strings.Contains(rejected[0].Reason, tc.reason)):
			t.Errorf("%s at %v: keys %d, rejected %+v, want %q", tc.addr, tc.now, len(keys), rejected, tc.reason)
		}
	}
	if s.parsed.parses != 1 {
		t.Errorf("%d parses, want 1", s.parsed.parses)
	}
}

// TestSelectorParsedBound: at most MaxParsed certificates are kept, the
// least recently used goes first; a negative MaxParsed keeps none; a record
// that does not parse is refused every time, parsed once.
func TestSelectorParsedBound(t *testing.T) {
	const addr = "bosun@example.com"
	var recs []string
	for range 3 {
		recs = append(recs, hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}})))
	}
	sel := func(s *Selector, rec string) {
		t.Helper()
		if keys, rej := s.Select(addr, []dns.RR{smimea(3, 0, 0, rec)}, testNow); len(keys) != 1 {
			t.Fatalf("%d keys, rejected %+v", len(keys), rej)
		}
	}
	s := &Selector{MaxParsed: 2}
	sel(s, recs[0])
	sel(s, recs[1])
	sel(s, recs[0]) // recs[1] is now the least recently used
	sel(s, recs[2]) // evicts recs[1]
	if n := s.parsed.lru.Len(); n != 2 {
		t.Errorf("%d certificates kept, want 2", n)
	}
	sel(s, recs[0])
	if s.parsed.parses != 3 {
		t.Errorf("%d parses, want 3 (recs[0] kept)", s.parsed.parses)
	}
	sel(s, recs[1])
	if s.parsed.parses != 4 {
		t.Errorf("%d parses, want 4 (recs[1] evicted)", s.parsed.parses)
	}

	off := &Selector{MaxParsed: -1}
	sel(off, recs[0])
	sel(off, recs[0])
	if off.parsed.parses != 2 || off.parsed.lru.Len() != 0 {
		t.Errorf("MaxParsed -1: %d parses, %d kept; want 2, 0", off.parsed.parses, off.parsed.lru.Len())
	}

	bad := &Selector{}
	for range 2 {
		_, rej := bad.Select(addr, []dns.RR{smimea(3, 0, 0, "3082010a")}, testNow)
		if len(rej) != 1 || !strings.Contains(rej[0].Reason, "does not parse") {
			t.Fatalf("garbage record: rejected %+v", rej)
		}
	}
	if bad.parsed.parses != 1 {
		t.Errorf("garbage record parsed %d times, want 1", bad.parsed.parses)
	}
}

// TestSelectorParsedConcurrent: concurrent Selects of the same records all
// get the one certificate per record (run with -race).
func TestSelectorParsedConcurrent(t *testing.T) {
	const addr = "bosun@example.com"
	recs := []string{
		hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}})),
		hex.EncodeToString(makeCert(t, certSpec{key: "p256", emails: []string{addr}})),
	}
	s := &Selector{MaxParsed: 1} // evictions race with lookups too
	want, _ := (&Selector{}).Select(addr, []dns.RR{smimea(3, 0, 0, recs[0]), smimea(3, 0, 0, recs[1])}, testNow)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				rec := recs[(g+i)%2]
				keys, rej := s.Select(addr, []dns.RR{smimea(3, 0, 0, rec)}, testNow)
				if len(keys) != 1 || !keys[0].Cert.Equal(want[(g+i)%2].Cert) {
					t.Errorf("keys %v, rejected %+v", keys, rej)
					return
				}
			}
		})
	}
	wg.Wait()
}
