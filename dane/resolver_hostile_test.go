package dane

import (
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// hostileZone answers the names of the TC and TTL tests (issue 9, item 6).
func hostileZone(q *dns.Msg, tcp bool) *dns.Msg {
	name := q.Question[0].Name
	switch name {
	// Truncated over UDP and over TCP, AD set, empty answer section: was
	// taken for a secure NODATA.
	case "tc-nodata.example.":
		m := reply(q, dns.RcodeSuccess, true)
		m.Truncated = true
		m.Ns = []dns.RR{soaRR("example.", 300, 300)}
		return m
	// The same as NXDOMAIN.
	case "tc-nx.example.":
		m := reply(q, dns.RcodeNameError, true)
		m.Truncated = true
		m.Ns = []dns.RR{soaRR("example.", 300, 300)}
		return m
	// Truncated over both, AD set, with records: part of an RRset is
	// not the RRset.
	case "tc-tcp-records.example.":
		m := reply(q, dns.RcodeSuccess, true)
		m.Truncated = true
		m.Answer = []dns.RR{smimeaRR(name, 300, testCert)}
		return m
	case "ttl-msb.example.":
		m := reply(q, dns.RcodeSuccess, true)
		m.Answer = []dns.RR{smimeaRR(name, 1<<31, testCert)}
		return m
	case "ttl-max.example.":
		m := reply(q, dns.RcodeSuccess, true)
		m.Answer = []dns.RR{smimeaRR(name, 1<<31-1, testCert)}
		return m
	case "ttl-msb-denial.example.":
		m := reply(q, dns.RcodeNameError, true)
		m.Ns = []dns.RR{soaRR("example.", 1<<31, 1<<32-1)}
		return m
	}
	m := reply(q, dns.RcodeNameError, true)
	m.Ns = []dns.RR{soaRR("example.", 3600, 600)}
	return m
}

// TestStubTruncated: an answer with TC set is never used, whatever its
// AD bit and rcode, and over TCP as over UDP (RFC 2181 §9).
func TestStubTruncated(t *testing.T) {
	for _, name := range []string{"tc-nodata.example.", "tc-nx.example.", "tc-tcp-records.example."} {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, hostileZone)
			s := newTestStub(t, 2*time.Second, ts.addr)
			res := s.Lookup(t.Context(), name, dns.TypeSMIMEA)
			if res.Status != StatusIndeterminate || len(res.Records) != 0 {
				t.Fatalf("status %v with %d records, want indeterminate and none (err %v)", res.Status, len(res.Records), res.Err)
			}
			if !errors.Is(res.Err, ErrTruncated) {
				t.Errorf("err %v, want ErrTruncated", res.Err)
			}
			// Asked over UDP, then again over TCP; the TCP answer was
			// truncated too, so the stub gave up on this server.
			qs := ts.Queries()
			if len(qs) != 2 || qs[0].tcp || !qs[1].tcp {
				t.Errorf("queries %+v, want one over UDP then one over TCP", qs)
			}
		})
	}
}

// TestStubTruncatedNextServer: a server whose TCP answer is truncated is
// skipped like one that does not answer; the next server's answer counts.
func TestStubTruncatedNextServer(t *testing.T) {
	bad := startServer(t, hostileZone)
	good := startServer(t, func(q *dns.Msg, tcp bool) *dns.Msg {
		m := reply(q, dns.RcodeSuccess, true)
		m.Answer = []dns.RR{smimeaRR(q.Question[0].Name, 300, testCert)}
		return m
	})
	s := newTestStub(t, 2*time.Second, bad.addr, good.addr)
	res := s.Lookup(t.Context(), "tc-nodata.example.", dns.TypeSMIMEA)
	if res.Status != StatusSecure || res.Resolver != good.addr {
		t.Fatalf("status %v from %s, want secure from %s (err %v)", res.Status, res.Resolver, good.addr, res.Err)
	}
}

// TestStubTTLMostSignificantBit: RFC 2181 §8, a TTL of 2^31 or more is 0.
func TestStubTTLMostSignificantBit(t *testing.T) {
	ts := startServer(t, hostileZone)
	s := newTestStub(t, 2*time.Second, ts.addr)
	tests := []struct {
		name   string
		status Status
		ttl    time.Duration
	}{
		{"ttl-msb.example.", StatusSecure, 0},
		{"ttl-max.example.", StatusSecure, (1<<31 - 1) * time.Second},
		{"ttl-msb-denial.example.", StatusSecureDenial, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := s.Lookup(t.Context(), tc.name, dns.TypeSMIMEA)
			if res.Status != tc.status || res.TTL != tc.ttl {
				t.Errorf("status %v TTL %v, want %v TTL %v (err %v)", res.Status, res.TTL, tc.status, tc.ttl, res.Err)
			}
		})
	}
}

// TestCacheTTLMostSignificantBit: a record with a TTL of 2^31 is used once
// and not cached (it was cached for MaxTTL, an hour).
func TestCacheTTLMostSignificantBit(t *testing.T) {
	ts := startServer(t, hostileZone)
	c := NewCache(newTestStub(t, 2*time.Second, ts.addr), CacheOptions{})
	for i := range 2 {
		res := c.Lookup(t.Context(), "ttl-msb.example.", dns.TypeSMIMEA)
		if res.Status != StatusSecure || res.TTL != 0 {
			t.Fatalf("lookup %d: status %v TTL %v, want secure with TTL 0", i+1, res.Status, res.TTL)
		}
	}
	if n := len(ts.Queries()); n != 2 {
		t.Errorf("%d queries for two lookups, want 2 (the answer must not be cached)", n)
	}
	if c.Len() != 0 {
		t.Errorf("cache holds %d entries, want 0", c.Len())
	}
}

// TestClassifyTruncated covers TC answers the stub does not ask twice for.
func TestClassifyTruncated(t *testing.T) {
	const name = "a.example."
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeSMIMEA)
	tests := []struct {
		name string
		resp func() *dns.Msg
	}{
		{"records with AD", func() *dns.Msg {
			m := reply(q, dns.RcodeSuccess, true)
			m.Truncated = true
			m.Answer = []dns.RR{smimeaRR(name, 30, testCert)}
			return m
		}},
		{"empty with AD", func() *dns.Msg {
			m := reply(q, dns.RcodeSuccess, true)
			m.Truncated = true
			return m
		}},
		{"nxdomain with AD", func() *dns.Msg {
			m := reply(q, dns.RcodeNameError, true)
			m.Truncated = true
			return m
		}},
		{"records without AD", func() *dns.Msg {
			m := reply(q, dns.RcodeSuccess, false)
			m.Truncated = true
			m.Answer = []dns.RR{smimeaRR(name, 30, testCert)}
			return m
		}},
		{"servfail with DNSSEC EDE", func() *dns.Msg {
			m := reply(q, dns.RcodeServerFailure, false, dns.ExtendedErrorCodeDNSBogus)
			m.Truncated = true
			return m
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := classify(name, dns.TypeSMIMEA, tc.resp())
			if res.Status != StatusIndeterminate || len(res.Records) != 0 || !errors.Is(res.Err, ErrTruncated) {
				t.Errorf("got %v with %d records, err %v; want indeterminate, none, ErrTruncated", res.Status, len(res.Records), res.Err)
			}
		})
	}
}

// TestClassifyTTLMostSignificantBit: every TTL that sets the result's TTL
// is read per RFC 2181 §8.
func TestClassifyTTLMostSignificantBit(t *testing.T) {
	const name = "a.example."
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeSMIMEA)
	cname := func(ttl uint32) dns.RR {
		return &dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl}, Target: "b.example."}
	}
	tests := []struct {
		name string
		resp func() *dns.Msg
		ttl  time.Duration
	}{
		{"record 2^32-1", func() *dns.Msg {
			m := reply(q, dns.RcodeSuccess, true)
			m.Answer = []dns.RR{smimeaRR(name, 1<<32-1, testCert)}
			return m
		}, 0},
		{"one of two records 2^31", func() *dns.Msg {
			m := reply(q, dns.RcodeSuccess, true)
			m.Answer = []dns.RR{smimeaRR(name, 300, testCert), smimeaRR(name, 1<<31, testCert+"01")}
			return m
		}, 0},
		{"cname 2^31", func() *dns.Msg {
			m := reply(q, dns.RcodeSuccess, true)
			m.Answer = []dns.RR{cname(1 << 31), smimeaRR("b.example.", 300, testCert)}
			return m
		}, 0},
		{"soa ttl 2^31", func() *dns.Msg {
			m := reply(q, dns.RcodeNameError, true)
			m.Ns = []dns.RR{soaRR("example.", 1<<31, 600)}
			return m
		}, 0},
		{"soa minimum 2^31", func() *dns.Msg {
			m := reply(q, dns.RcodeSuccess, true)
			m.Ns = []dns.RR{soaRR("example.", 600, 1<<31)}
			return m
		}, 0},
		{"soa 2^31-1", func() *dns.Msg {
			m := reply(q, dns.RcodeSuccess, true)
			m.Ns = []dns.RR{soaRR("example.", 1<<31-1, 1<<31-1)}
			return m
		}, (1<<31 - 1) * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := classify(name, dns.TypeSMIMEA, tc.resp())
			if res.TTL != tc.ttl {
				t.Errorf("TTL %v, want %v (status %v)", res.TTL, tc.ttl, res.Status)
			}
		})
	}
}
