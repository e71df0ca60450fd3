package dane

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestFake(t *testing.T) {
	var f Fake // the zero value is ready
	rec := smimeaRR("secure.example.", 300, testCert)
	f.Set("Secure.Example", dns.TypeSMIMEA, Result{Status: StatusSecure, TTL: 300 * time.Second, Records: []dns.RR{rec}})
	f.SetStatus("bogus.example.", dns.TypeSMIMEA, StatusBogus, ErrBogus)
	f.SetStatus("servfail.example.", dns.TypeSMIMEA, StatusIndeterminate, ErrServFail)
	f.SetStatus("insecure.example.", dns.TypeSMIMEA, StatusInsecure, nil)
	f.Set("named.example.", dns.TypeSMIMEA, Result{Name: "given.example.", Type: dns.TypeTXT, Status: StatusSecure, Resolver: "mine"})

	tests := []struct {
		name     string
		qtype    uint16
		status   Status
		records  int
		err      error
		resName  string
		resType  uint16
		resolver string
	}{
		{name: "secure.example.", qtype: dns.TypeSMIMEA, status: StatusSecure, records: 1},
		{name: "SECURE.EXAMPLE.", qtype: dns.TypeSMIMEA, status: StatusSecure, records: 1, resName: "secure.example."},
		{name: "secure.example", qtype: dns.TypeSMIMEA, status: StatusSecure, records: 1, resName: "secure.example."},
		{name: "secure.example.", qtype: dns.TypeOPENPGPKEY, status: StatusSecureDenial},
		{name: "unknown.example.", qtype: dns.TypeSMIMEA, status: StatusSecureDenial},
		{name: "unknown.example", qtype: dns.TypeSMIMEA, status: StatusSecureDenial, resName: "unknown.example."},
		{name: "bogus.example.", qtype: dns.TypeSMIMEA, status: StatusBogus, err: ErrBogus},
		{name: "Bogus.Example", qtype: dns.TypeSMIMEA, status: StatusBogus, err: ErrBogus, resName: "bogus.example."},
		{name: "servfail.example.", qtype: dns.TypeSMIMEA, status: StatusIndeterminate, err: ErrServFail},
		{name: "insecure.example.", qtype: dns.TypeSMIMEA, status: StatusInsecure},
		{name: "named.example.", qtype: dns.TypeSMIMEA, status: StatusSecure, resName: "given.example.", resType: dns.TypeTXT, resolver: "mine"},
	}
	for i, tc := range tests {
		res := f.Lookup(t.Context(), tc.name, tc.qtype)
		if res.Status != tc.status || len(res.Records) != tc.records {
			t.Errorf("%s %d: got %v with %d records, want %v with %d", tc.name, tc.qtype, res.Status, len(res.Records), tc.status, tc.records)
		}
		if tc.err != nil && !errors.Is(res.Err, tc.err) || tc.err == nil && res.Err != nil {
			t.Errorf("%s: err %v, want %v", tc.name, res.Err, tc.err)
		}
		wantName, wantType, wantResolver := tc.resName, tc.resType, tc.resolver
		if wantName == "" {
			wantName = tc.name
		}
		if wantType == 0 {
			wantType = tc.qtype
		}
		if wantResolver == "" {
			wantResolver = "fake"
		}
		if res.Name != wantName || res.Type != wantType || res.Resolver != wantResolver {
			t.Errorf("%s: result for %s %d from %s, want %s %d from %s", tc.name, res.Name, res.Type, res.Resolver, wantName, wantType, wantResolver)
		}
		if res.Status == StatusSecureDenial && (res.TTL <= 0 || res.Rcode != dns.RcodeNameError) {
			t.Errorf("%s: denial with TTL %v, rcode %d", tc.name, res.TTL, res.Rcode)
		}
		if got := f.Calls(); got != i+1 {
			t.Errorf("Calls %d after %d lookups", got, i+1)
		}
	}
}

func TestFakeSetReplaces(t *testing.T) {
	var f Fake
	f.SetStatus("x.example.", dns.TypeSMIMEA, StatusBogus, ErrBogus)
	f.SetStatus("X.EXAMPLE", dns.TypeSMIMEA, StatusInsecure, nil)
	if res := f.Lookup(t.Context(), "x.example.", dns.TypeSMIMEA); res.Status != StatusInsecure || res.TTL != 60*time.Second {
		t.Errorf("got %v, TTL %v", res.Status, res.TTL)
	}
}

func TestFakeRecordsCopied(t *testing.T) {
	var f Fake
	f.Set("x.example.", dns.TypeSMIMEA, Result{Status: StatusSecure, Records: []dns.RR{smimeaRR("x.example.", 60, testCert)}})
	res := f.Lookup(t.Context(), "x.example.", dns.TypeSMIMEA)
	res.Records[0] = nil
	res.Records = append(res.Records, smimeaRR("y.example.", 60, testCert))
	again := f.Lookup(t.Context(), "x.example.", dns.TypeSMIMEA)
	if len(again.Records) != 1 || again.Records[0] == nil {
		t.Fatalf("stored answer changed by a caller: %v", again.Records)
	}
}

func TestFakeContext(t *testing.T) {
	var f Fake
	f.SetStatus("x.example.", dns.TypeSMIMEA, StatusSecure, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res := f.Lookup(ctx, "x.example.", dns.TypeSMIMEA)
	if res.Status != StatusIndeterminate || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("got %v: %v", res.Status, res.Err)
	}
	if f.Calls() != 1 {
		t.Errorf("Calls %d", f.Calls())
	}
}

func TestFakeConcurrent(t *testing.T) {
	var f Fake
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := string(rune('a'+i)) + ".example."
			for range 50 {
				f.SetStatus(name, dns.TypeSMIMEA, StatusInsecure, nil)
				f.Lookup(t.Context(), name, dns.TypeSMIMEA)
			}
		})
	}
	wg.Wait()
	if f.Calls() != 8*50 {
		t.Errorf("Calls %d, want %d", f.Calls(), 8*50)
	}
}

// Fake and Cache are Resolvers.
var (
	_ Resolver = (*Fake)(nil)
	_ Resolver = (*Cache)(nil)
	_ Resolver = (*Stub)(nil)
)
