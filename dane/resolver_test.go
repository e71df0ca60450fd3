package dane

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testServer is an in-process DNS server on 127.0.0.1, UDP and TCP on the
// same port, that answers with canned responses and records the queries.
type testServer struct {
	addr string

	mu      sync.Mutex
	queries []testQuery
}

type testQuery struct {
	msg *dns.Msg
	tcp bool
}

// answerFunc returns the response to q, or nil to send none.
type answerFunc func(q *dns.Msg, tcp bool) *dns.Msg

func startServer(t *testing.T, answer answerFunc) *testServer {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	ts := &testServer{addr: pc.LocalAddr().String()}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		_, tcp := w.RemoteAddr().(*net.TCPAddr)
		ts.mu.Lock()
		ts.queries = append(ts.queries, testQuery{msg: q.Copy(), tcp: tcp})
		ts.mu.Unlock()
		if resp := answer(q, tcp); resp != nil {
			if err := w.WriteMsg(resp); err != nil {
				t.Errorf("test server: %v", err)
			}
		}
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				t.Errorf("test server: %v", err)
			}
		}()
		<-started
		t.Cleanup(func() {
			if err := srv.Shutdown(); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
	return ts
}

func (ts *testServer) Queries() []testQuery {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]testQuery(nil), ts.queries...)
}

// startDeadServer returns the address of a UDP socket that reads queries
// and never answers.
func startDeadServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc.LocalAddr().String()
}

func smimeaRR(name string, ttl uint32, cert string) *dns.SMIMEA {
	return &dns.SMIMEA{
		Hdr:   dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: ttl},
		Usage: 3, Selector: 0, MatchingType: 0, Certificate: cert,
	}
}

func soaRR(zone string, ttl, minttl uint32) *dns.SOA {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:  "ns." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: minttl,
	}
}

// reply builds a response to q with rcode, AD and optional EDE codes.
func reply(q *dns.Msg, rcode int, ad bool, ede ...uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	m.RecursionAvailable = true
	m.AuthenticatedData = ad
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(1232)
	opt.SetDo()
	for _, c := range ede {
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: c, ExtraText: "test"})
	}
	m.Extra = append(m.Extra, opt)
	return m
}

const testCert = "308201" // hex; the Stub does not parse certificates

// zone answers the names of the resolver tests.
func zone(q *dns.Msg, tcp bool) *dns.Msg {
	name := strings.ToLower(q.Question[0].Name)
	switch name {
	case "secure.example.":
		m := reply(q, dns.RcodeSuccess, true)
		m.Answer = []dns.RR{smimeaRR(name, 300, testCert+"01"), smimeaRR(name, 600, testCert+"02")}
		return m
	case "insecure.example.":
		m := reply(q, dns.RcodeSuccess, false)
		m.Answer = []dns.RR{smimeaRR(name, 300, testCert)}
		return m
	case "nx.example.":
		m := reply(q, dns.RcodeNameError, true)
		m.Ns = []dns.RR{soaRR("example.", 3600, 600)}
		return m
	case "nx-insecure.example.":
		m := reply(q, dns.RcodeNameError, false)
		m.Ns = []dns.RR{soaRR("example.", 3600, 600)}
		return m
	case "nodata.example.":
		m := reply(q, dns.RcodeSuccess, true)
		m.Ns = []dns.RR{soaRR("example.", 300, 900)}
		return m
	case "bogus.example.":
		return reply(q, dns.RcodeServerFailure, false, dns.ExtendedErrorCodeDNSBogus)
	case "expired.example.":
		return reply(q, dns.RcodeServerFailure, false, dns.ExtendedErrorCodeSignatureExpired)
	case "servfail.example.":
		return reply(q, dns.RcodeServerFailure, false)
	case "noreach.example.":
		return reply(q, dns.RcodeServerFailure, false, dns.ExtendedErrorCodeNoReachableAuthority)
	case "refused.example.":
		return reply(q, dns.RcodeRefused, false)
	case "tc.example.":
		if !tcp {
			m := reply(q, dns.RcodeSuccess, false)
			m.Truncated = true
			m.Answer = []dns.RR{smimeaRR(name, 300, "ff")} // must not be used
			return m
		}
		m := reply(q, dns.RcodeSuccess, true)
		m.Answer = []dns.RR{smimeaRR(name, 300, testCert+"01"), smimeaRR(name, 300, testCert+"02"), smimeaRR(name, 300, testCert+"03")}
		return m
	case "cname.example.":
		m := reply(q, dns.RcodeSuccess, true)
		m.Answer = []dns.RR{
			&dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 120}, Target: "middle.example."},
			smimeaRR("elsewhere.example.", 300, testCert+"ee"),
			&dns.CNAME{Hdr: dns.RR_Header{Name: "middle.example.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 900}, Target: "target.example."},
			smimeaRR("target.example.", 300, testCert+"01"),
		}
		return m
	case "wrongname.example.":
		m := reply(q, dns.RcodeSuccess, true)
		m.Answer = []dns.RR{smimeaRR("other.example.", 300, testCert)}
		m.Ns = []dns.RR{soaRR("example.", 3600, 600)}
		return m
	case "wrongname-insecure.example.":
		m := reply(q, dns.RcodeSuccess, false)
		m.Answer = []dns.RR{smimeaRR("other.example.", 300, testCert)}
		return m
	case "wrongquestion.example.":
		m := reply(q, dns.RcodeSuccess, true)
		m.Question[0].Name = "other.example."
		m.Answer = []dns.RR{smimeaRR("other.example.", 300, testCert)}
		return m
	case "silent.example.":
		return nil
	}
	m := reply(q, dns.RcodeNameError, true)
	m.Ns = []dns.RR{soaRR("example.", 3600, 600)}
	return m
}

func newTestStub(t *testing.T, timeout time.Duration, servers ...string) *Stub {
	t.Helper()
	s, err := NewStub(StubOptions{Servers: servers, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStubLookup(t *testing.T) {
	ts := startServer(t, zone)
	s := newTestStub(t, 2*time.Second, ts.addr)
	tests := []struct {
		name    string
		status  Status
		records int
		owner   string // of the records, when not name
		ttl     time.Duration
		rcode   int
		err     error  // wanted in Result.Err via errors.Is
		ede     uint16 // wanted among Result.EDE, when non-zero
	}{
		{name: "secure.example", status: StatusSecure, records: 2, ttl: 300 * time.Second},
		{name: "SECURE.example.", status: StatusSecure, records: 2, owner: "secure.example.", ttl: 300 * time.Second},
		{name: "insecure.example.", status: StatusInsecure, records: 1, ttl: 300 * time.Second},
		{name: "nx.example.", status: StatusSecureDenial, ttl: 600 * time.Second, rcode: dns.RcodeNameError},
		{name: "nx-insecure.example.", status: StatusInsecure, ttl: 600 * time.Second, rcode: dns.RcodeNameError},
		{name: "nodata.example.", status: StatusSecureDenial, ttl: 300 * time.Second},
		{name: "bogus.example.", status: StatusBogus, rcode: dns.RcodeServerFailure, err: ErrBogus, ede: dns.ExtendedErrorCodeDNSBogus},
		{name: "expired.example.", status: StatusBogus, rcode: dns.RcodeServerFailure, err: ErrBogus, ede: dns.ExtendedErrorCodeSignatureExpired},
		{name: "servfail.example.", status: StatusIndeterminate, rcode: dns.RcodeServerFailure, err: ErrServFail},
		{name: "noreach.example.", status: StatusIndeterminate, rcode: dns.RcodeServerFailure, err: ErrServFail, ede: dns.ExtendedErrorCodeNoReachableAuthority},
		{name: "refused.example.", status: StatusIndeterminate, rcode: dns.RcodeRefused, err: ErrUnreachable},
		{name: "tc.example.", status: StatusSecure, records: 3, ttl: 300 * time.Second},
		{name: "cname.example.", status: StatusSecure, records: 1, owner: "target.example.", ttl: 120 * time.Second},
		{name: "wrongname.example.", status: StatusSecureDenial, ttl: 600 * time.Second},
		{name: "wrongname-insecure.example.", status: StatusInsecure},
		{name: "wrongquestion.example.", status: StatusIndeterminate, rcode: -1, err: ErrUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := s.Lookup(t.Context(), tc.name, dns.TypeSMIMEA)
			if res.Status != tc.status {
				t.Fatalf("status %v, want %v (err %v)", res.Status, tc.status, res.Err)
			}
			if res.Name != dns.Fqdn(tc.name) || res.Type != dns.TypeSMIMEA {
				t.Errorf("result for %s %d", res.Name, res.Type)
			}
			if len(res.Records) != tc.records {
				t.Errorf("%d records, want %d: %v", len(res.Records), tc.records, res.Records)
			}
			owner := tc.owner
			if owner == "" {
				owner = dns.Fqdn(tc.name)
			}
			for _, rr := range res.Records {
				if _, ok := rr.(*dns.SMIMEA); !ok || rr.Header().Name != owner {
					t.Errorf("record %v, want SMIMEA at %s", rr, owner)
				}
				if rr.(*dns.SMIMEA).Certificate == "ff" {
					t.Errorf("record of the truncated UDP answer used")
				}
			}
			if res.TTL != tc.ttl {
				t.Errorf("TTL %v, want %v", res.TTL, tc.ttl)
			}
			if res.Rcode != tc.rcode {
				t.Errorf("rcode %d, want %d", res.Rcode, tc.rcode)
			}
			if tc.err == nil && res.Err != nil {
				t.Errorf("err %v, want none", res.Err)
			}
			if tc.err != nil && !errors.Is(res.Err, tc.err) {
				t.Errorf("err %v, want %v", res.Err, tc.err)
			}
			if tc.ede != 0 {
				found := false
				for _, e := range res.EDE {
					found = found || e.Code == tc.ede
				}
				if !found {
					t.Errorf("EDE %v, want code %d", res.EDE, tc.ede)
				}
			}
			if !errors.Is(res.Err, ErrUnreachable) && res.Resolver != ts.addr {
				t.Errorf("resolver %q, want %q", res.Resolver, ts.addr)
			}
		})
	}

	// Every query asks for DNSSEC and validation (RFC 8162 §6).
	qs := ts.Queries()
	if len(qs) == 0 {
		t.Fatal("server got no queries")
	}
	var udp, tcp int
	for _, q := range qs {
		if q.tcp {
			tcp++
		} else {
			udp++
		}
		m := q.msg
		if !m.RecursionDesired {
			t.Errorf("%s: RD clear", m.Question[0].Name)
		}
		if m.CheckingDisabled {
			t.Errorf("%s: CD set", m.Question[0].Name)
		}
		opt := m.IsEdns0()
		if opt == nil {
			t.Errorf("%s: no EDNS0", m.Question[0].Name)
			continue
		}
		if !opt.Do() {
			t.Errorf("%s: DO clear", m.Question[0].Name)
		}
		if opt.UDPSize() != 1232 {
			t.Errorf("%s: UDP size %d, want 1232", m.Question[0].Name, opt.UDPSize())
		}
		if len(m.Question) != 1 || m.Question[0].Qtype != dns.TypeSMIMEA {
			t.Errorf("question %v", m.Question)
		}
	}
	if tcp != 1 {
		t.Errorf("%d TCP queries, want 1 (after truncation)", tcp)
	}
	if udp != len(tests) {
		t.Errorf("%d UDP queries, want %d", udp, len(tests))
	}
}

func TestStubEDE(t *testing.T) {
	ts := startServer(t, zone)
	s := newTestStub(t, 2*time.Second, ts.addr)
	res := s.Lookup(t.Context(), "bogus.example.", dns.TypeSMIMEA)
	if len(res.EDE) != 1 || res.EDE[0].Code != 6 || res.EDE[0].Text != "test" {
		t.Fatalf("EDE %+v, want code 6", res.EDE)
	}
	if !res.EDE[0].IsDNSSEC() {
		t.Error("EDE 6 is not a DNSSEC error")
	}
	if got := res.EDE[0].String(); !strings.Contains(got, "6") || !strings.Contains(got, "DNSSEC Bogus") {
		t.Errorf("EDE string %q", got)
	}
}

func TestStubServerOrder(t *testing.T) {
	refused := startServer(t, func(q *dns.Msg, tcp bool) *dns.Msg { return reply(q, dns.RcodeRefused, false) })
	servfail := startServer(t, func(q *dns.Msg, tcp bool) *dns.Msg { return reply(q, dns.RcodeServerFailure, false) })
	good := startServer(t, zone)
	dead := startDeadServer(t)

	t.Run("refused then secure", func(t *testing.T) {
		s := newTestStub(t, 2*time.Second, refused.addr, good.addr)
		res := s.Lookup(t.Context(), "secure.example.", dns.TypeSMIMEA)
		if res.Status != StatusSecure || len(res.Records) != 2 {
			t.Fatalf("got %v with %d records (%v)", res.Status, len(res.Records), res.Err)
		}
		if res.Resolver != good.addr {
			t.Errorf("answer from %s, want %s", res.Resolver, good.addr)
		}
	})
	t.Run("first answers", func(t *testing.T) {
		before := len(refused.Queries())
		s := newTestStub(t, 2*time.Second, good.addr, refused.addr)
		res := s.Lookup(t.Context(), "secure.example.", dns.TypeSMIMEA)
		if res.Status != StatusSecure || res.Resolver != good.addr {
			t.Fatalf("got %v from %s", res.Status, res.Resolver)
		}
		if n := len(refused.Queries()) - before; n != 0 {
			t.Errorf("second server asked %d times", n)
		}
	})
	t.Run("servfail is final", func(t *testing.T) {
		before := len(good.Queries())
		s := newTestStub(t, 2*time.Second, servfail.addr, good.addr)
		res := s.Lookup(t.Context(), "secure.example.", dns.TypeSMIMEA)
		if res.Status != StatusIndeterminate || !errors.Is(res.Err, ErrServFail) || res.Resolver != servfail.addr {
			t.Fatalf("got %v from %s: %v", res.Status, res.Resolver, res.Err)
		}
		if n := len(good.Queries()) - before; n != 0 {
			t.Errorf("second server asked %d times after SERVFAIL", n)
		}
	})
	t.Run("all refused", func(t *testing.T) {
		s := newTestStub(t, 2*time.Second, refused.addr, refused.addr)
		res := s.Lookup(t.Context(), "secure.example.", dns.TypeSMIMEA)
		if res.Status != StatusIndeterminate || !errors.Is(res.Err, ErrUnreachable) {
			t.Fatalf("got %v: %v", res.Status, res.Err)
		}
		if res.Rcode != dns.RcodeRefused || len(res.Records) != 0 {
			t.Errorf("rcode %d, %d records", res.Rcode, len(res.Records))
		}
	})
	t.Run("dead", func(t *testing.T) {
		s := newTestStub(t, 200*time.Millisecond, dead)
		start := time.Now()
		res := s.Lookup(t.Context(), "secure.example.", dns.TypeSMIMEA)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("lookup took %v with a 200ms timeout", d)
		}
		if res.Status != StatusIndeterminate || !errors.Is(res.Err, ErrUnreachable) {
			t.Fatalf("got %v: %v", res.Status, res.Err)
		}
		if res.Rcode != -1 {
			t.Errorf("rcode %d, want -1", res.Rcode)
		}
	})
	t.Run("dead then secure", func(t *testing.T) {
		s := newTestStub(t, 200*time.Millisecond, dead, good.addr)
		res := s.Lookup(t.Context(), "secure.example.", dns.TypeSMIMEA)
		if res.Status != StatusSecure || res.Resolver != good.addr {
			t.Fatalf("got %v from %s: %v", res.Status, res.Resolver, res.Err)
		}
	})
	t.Run("silent", func(t *testing.T) {
		s := newTestStub(t, 200*time.Millisecond, good.addr)
		res := s.Lookup(t.Context(), "silent.example.", dns.TypeSMIMEA)
		if res.Status != StatusIndeterminate || !errors.Is(res.Err, ErrUnreachable) {
			t.Fatalf("got %v: %v", res.Status, res.Err)
		}
	})
}

func TestStubContext(t *testing.T) {
	ts := startServer(t, zone)
	s := newTestStub(t, 2*time.Second, ts.addr)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res := s.Lookup(ctx, "secure.example.", dns.TypeSMIMEA)
	if res.Status != StatusIndeterminate || !errors.Is(res.Err, context.Canceled) || len(res.Records) != 0 {
		t.Fatalf("got %v with %d records: %v", res.Status, len(res.Records), res.Err)
	}
	if n := len(ts.Queries()); n != 0 {
		t.Errorf("server asked %d times with a cancelled context", n)
	}

	dead := startDeadServer(t)
	s = newTestStub(t, 10*time.Second, dead)
	ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res = s.Lookup(ctx, "secure.example.", dns.TypeSMIMEA)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("lookup took %v with a 100ms context", d)
	}
	if res.Status != StatusIndeterminate {
		t.Fatalf("got %v: %v", res.Status, res.Err)
	}
}

func TestNewStub(t *testing.T) {
	tests := []struct {
		name    string
		opts    StubOptions
		wantErr bool
		errIs   error
	}{
		{name: "loopback v4", opts: StubOptions{Servers: []string{"127.0.0.1:53"}}},
		{name: "loopback v4 other", opts: StubOptions{Servers: []string{"127.0.0.53:53"}}},
		{name: "loopback v6", opts: StubOptions{Servers: []string{"[::1]:53"}}},
		{name: "several", opts: StubOptions{Servers: []string{"127.0.0.1:53", "[::1]:5353"}}},
		{name: "remote", opts: StubOptions{Servers: []string{"192.0.2.1:53"}}, wantErr: true, errIs: ErrUntrustedResolver},
		{name: "remote after loopback", opts: StubOptions{Servers: []string{"127.0.0.1:53", "192.0.2.1:53"}}, wantErr: true, errIs: ErrUntrustedResolver},
		{name: "remote v6", opts: StubOptions{Servers: []string{"[2001:db8::1]:53"}}, wantErr: true, errIs: ErrUntrustedResolver},
		{name: "remote trusted", opts: StubOptions{Servers: []string{"192.0.2.1:53"}, Trusted: true}},
		{name: "hostname", opts: StubOptions{Servers: []string{"localhost:53"}}, wantErr: true},
		{name: "hostname trusted", opts: StubOptions{Servers: []string{"localhost:53"}, Trusted: true}, wantErr: true},
		{name: "no port", opts: StubOptions{Servers: []string{"127.0.0.1"}}, wantErr: true},
		{name: "empty string", opts: StubOptions{Servers: []string{""}}, wantErr: true},
		{name: "no servers", opts: StubOptions{}, wantErr: true},
		{name: "empty list", opts: StubOptions{Servers: []string{}, Trusted: true}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewStub(tc.opts)
			if !tc.wantErr {
				if err != nil || s == nil {
					t.Fatalf("got %v, %v", s, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error for %v", tc.opts.Servers)
			}
			if s != nil {
				t.Errorf("stub with error")
			}
			if tc.errIs != nil && !errors.Is(err, tc.errIs) {
				t.Errorf("error %v, want %v", err, tc.errIs)
			}
			if tc.errIs == nil && errors.Is(err, ErrUntrustedResolver) {
				t.Errorf("error %v is ErrUntrustedResolver", err)
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	tests := []struct {
		s    Status
		want string
	}{
		{StatusIndeterminate, "indeterminate"},
		{StatusSecure, "secure"},
		{StatusSecureDenial, "secure-denial"},
		{StatusInsecure, "insecure"},
		{StatusBogus, "bogus"},
		{Status(99), "status(99)"},
		{Status(-1), "status(-1)"},
	}
	for _, tc := range tests {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("Status(%d).String() = %q, want %q", int(tc.s), got, tc.want)
		}
	}
	var zero Result
	if zero.Status != StatusIndeterminate {
		t.Errorf("zero Result has status %v", zero.Status)
	}
}

func TestEDEIsDNSSEC(t *testing.T) {
	tests := []struct {
		code uint16
		want bool
	}{
		{dns.ExtendedErrorCodeOther, false},
		{dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm, true},
		{dns.ExtendedErrorCodeUnsupportedDSDigestType, true},
		{dns.ExtendedErrorCodeStaleAnswer, false},
		{dns.ExtendedErrorCodeDNSSECIndeterminate, true},
		{dns.ExtendedErrorCodeDNSBogus, true},
		{dns.ExtendedErrorCodeSignatureExpired, true},
		{dns.ExtendedErrorCodeSignatureNotYetValid, true},
		{dns.ExtendedErrorCodeDNSKEYMissing, true},
		{dns.ExtendedErrorCodeRRSIGsMissing, true},
		{dns.ExtendedErrorCodeNoZoneKeyBitSet, true},
		{dns.ExtendedErrorCodeNSECMissing, true},
		{dns.ExtendedErrorCodeCachedError, false},
		{dns.ExtendedErrorCodeNoReachableAuthority, false},
		{dns.ExtendedErrorCodeNetworkError, false},
		{9999, false},
	}
	for _, tc := range tests {
		if got := (EDE{Code: tc.code}).IsDNSSEC(); got != tc.want {
			t.Errorf("EDE %d: IsDNSSEC %v, want %v", tc.code, got, tc.want)
		}
	}
	if got := (EDE{Code: 9999}).String(); got != "9999 (EDE 9999)" {
		t.Errorf("unknown EDE string %q", got)
	}
}

// TestClassify covers answers the test server does not produce.
func TestClassify(t *testing.T) {
	const name = "a.example."
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeSMIMEA)
	tests := []struct {
		name   string
		resp   func() *dns.Msg
		status Status
		nrec   int
		ttl    time.Duration
	}{
		{"nxdomain without soa", func() *dns.Msg { return reply(q, dns.RcodeNameError, true) }, StatusSecureDenial, 0, 0},
		{"no edns", func() *dns.Msg {
			m := new(dns.Msg)
			m.SetReply(q)
			m.AuthenticatedData = true
			m.Answer = []dns.RR{smimeaRR(name, 30, testCert)}
			return m
		}, StatusSecure, 1, 30 * time.Second},
		{"case-insensitive owner", func() *dns.Msg {
			m := reply(q, dns.RcodeSuccess, true)
			m.Answer = []dns.RR{smimeaRR("A.Example.", 30, testCert)}
			return m
		}, StatusSecure, 1, 30 * time.Second},
		{"other type at name", func() *dns.Msg {
			m := reply(q, dns.RcodeSuccess, true)
			m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 30}, Txt: []string{"x"}}}
			return m
		}, StatusSecureDenial, 0, 0},
		{"cname loop", func() *dns.Msg {
			m := reply(q, dns.RcodeSuccess, true)
			m.Answer = []dns.RR{
				&dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 30}, Target: "b.example."},
				&dns.CNAME{Hdr: dns.RR_Header{Name: "b.example.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 30}, Target: name},
			}
			return m
		}, StatusSecureDenial, 0, 0},
		{"cname to nxdomain", func() *dns.Msg {
			m := reply(q, dns.RcodeNameError, true)
			m.Answer = []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 30}, Target: "b.example."}}
			m.Ns = []dns.RR{soaRR("example.", 100, 50)}
			return m
		}, StatusSecureDenial, 0, 50 * time.Second},
		// An NXDOMAIN that carries the records asked for contradicts
		// itself: never secure.
		{"nxdomain with records", func() *dns.Msg {
			m := reply(q, dns.RcodeNameError, true)
			m.Answer = []dns.RR{smimeaRR(name, 30, testCert)}
			return m
		}, StatusIndeterminate, 0, 0},
		{"notimp", func() *dns.Msg { return reply(q, dns.RcodeNotImplemented, true) }, StatusIndeterminate, 0, 0},
		{"servfail with non-DNSSEC and DNSSEC EDE", func() *dns.Msg {
			return reply(q, dns.RcodeServerFailure, false, dns.ExtendedErrorCodeNoReachableAuthority, dns.ExtendedErrorCodeRRSIGsMissing)
		}, StatusBogus, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := classify(name, dns.TypeSMIMEA, tc.resp())
			if res.Status != tc.status || len(res.Records) != tc.nrec || res.TTL != tc.ttl {
				t.Errorf("got %v, %d records, TTL %v; want %v, %d, %v (err %v)", res.Status, len(res.Records), res.TTL, tc.status, tc.nrec, tc.ttl, res.Err)
			}
			if (res.Status == StatusIndeterminate || res.Status == StatusBogus) && res.Err == nil {
				t.Errorf("%v without Err", res.Status)
			}
		})
	}
}
