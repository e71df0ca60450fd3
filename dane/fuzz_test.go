package dane

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/address"
)

func FuzzSMIMEAName(f *testing.F) {
	for _, s := range []string{
		"bosun@example.com", "hugh@example.com", "Hugh@EXAMPLE.com.", "user@bücher.example",
		"a@b..c", "@example.com", "user@", "\xff@example.com", "a@b@c", "x@-y.example", "x@xn--bcher-kva.example",
		"x@" + strings.Repeat("a.", 100) + "com", "x@exa mple.com", "x@ex_ample.com", "x@..",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, addr string, lowercase bool) {
		name, err := SMIMEAName(addr, lowercase)
		if err != nil {
			if !errors.Is(err, ErrBadAddress) || name != "" {
				t.Fatalf("%q: %q, %v", addr, name, err)
			}
			return
		}
		_, domain, err := address.Split(addr)
		if err != nil {
			t.Fatalf("%q: SMIMEAName succeeds, address.Split fails: %v", addr, err)
		}
		if !strings.HasSuffix(name, "._smimecert."+domain+".") {
			t.Fatalf("%q: name %q does not end in domain %q", addr, name, domain)
		}
		label, _, _ := strings.Cut(name, ".")
		if len(label) != 56 || strings.Trim(label, "0123456789abcdef") != "" {
			t.Fatalf("%q: first label %q is not 56 lowercase hex digits", addr, label)
		}
		if _, ok := dns.IsDomainName(name); !ok {
			t.Fatalf("%q: %q is not a domain name", addr, name)
		}
		if len(name) > 254 {
			t.Fatalf("%q: %q is too long", addr, name)
		}
		pgp, err := OPENPGPKEYName(addr, lowercase)
		if err != nil || pgp != label+"._openpgpkey."+domain+"." {
			t.Fatalf("%q: OPENPGPKEYName %q, %v", addr, pgp, err)
		}
	})
}

func FuzzSelectSMIMEA(f *testing.F) {
	const addr = "bosun@example.com"
	valid := makeCert(f, certSpec{emails: []string{addr}})
	subject := makeCert(f, certSpec{subjectEmail: addr})
	f.Add(uint8(3), uint8(0), uint8(0), valid, hex.EncodeToString(subject), addr)
	f.Add(uint8(3), uint8(0), uint8(0), subject, "zz", "BOSUN@example.com")
	f.Add(uint8(3), uint8(1), uint8(1), valid[:32], "", addr)
	f.Add(uint8(0), uint8(0), uint8(0), valid, hex.EncodeToString(valid), addr)
	f.Add(uint8(4), uint8(2), uint8(3), []byte{0x30, 0x03, 0x02, 0x01, 0x00}, "deadbeef", "")
	f.Fuzz(func(t *testing.T, usage, selector, matching uint8, der []byte, rawHex, addr string) {
		rrs := []dns.RR{
			smimea(usage, selector, matching, hex.EncodeToString(der)),
			&dns.TXT{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeTXT}, Txt: []string{rawHex}},
			smimea(3, 0, 0, rawHex),
		}
		keys, rejected := (&Selector{}).Select(addr, rrs, testNow)
		if len(keys)+len(rejected) != 2 {
			t.Fatalf("%d keys and %d rejected of 2 SMIMEA records", len(keys), len(rejected))
		}
		for _, k := range keys {
			if k.Record.Usage != 3 || k.Record.Selector != 0 || k.Record.MatchingType != 0 {
				t.Fatalf("usable key from a %d %d %d record", k.Record.Usage, k.Record.Selector, k.Record.MatchingType)
			}
			if k.Cert == nil {
				t.Fatal("key without certificate")
			}
			if r := CheckCertificate(addr, k.Cert, testNow); r != "" {
				t.Fatalf("usable key fails CheckCertificate: %s", r)
			}
		}
		for _, r := range rejected {
			if r.Reason == "" || r.Record == nil {
				t.Fatalf("rejected %+v without reason", r)
			}
		}
	})
}

func FuzzClassify(f *testing.F) {
	// Seeds: the answers of the resolver tests.
	for _, name := range []string{
		"secure.example.", "insecure.example.", "nx.example.", "nodata.example.", "bogus.example.",
		"expired.example.", "servfail.example.", "noreach.example.", "refused.example.", "cname.example.",
		"wrongname.example.", "tc.example.",
	} {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeSMIMEA)
		q.SetEdns0(1232, true)
		for _, tcp := range []bool{false, true} {
			m := zone(q, tcp)
			if m == nil {
				continue
			}
			b, err := m.Pack()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	// Regression: NXDOMAIN with AD and the records asked for was secure.
	q := new(dns.Msg)
	q.SetQuestion("a.example.", dns.TypeSMIMEA)
	m := reply(q, dns.RcodeNameError, true)
	m.Answer = []dns.RR{smimeaRR("a.example.", 30, testCert)}
	b, err := m.Pack()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m dns.Msg
		if err := m.Unpack(data); err != nil {
			return
		}
		name, qtype := "a.example.", dns.TypeSMIMEA
		if len(m.Question) > 0 {
			name, qtype = m.Question[0].Name, m.Question[0].Qtype
		}
		res := classify(name, qtype, &m)
		if res.Name != name || res.Type != qtype || res.Rcode != m.Rcode {
			t.Fatalf("result for %s %d rcode %d", res.Name, res.Type, res.Rcode)
		}
		if m.Truncated && (res.Status != StatusIndeterminate || !errors.Is(res.Err, ErrTruncated)) {
			t.Fatalf("truncated answer classified %v (%v)", res.Status, res.Err)
		}
		if res.TTL >= 1<<31*time.Second {
			t.Fatalf("TTL %v has the most significant bit set (RFC 2181 §8)", res.TTL)
		}
		switch res.Status {
		case StatusSecure:
			if m.Rcode != dns.RcodeSuccess || !m.AuthenticatedData || len(res.Records) == 0 {
				t.Fatalf("secure with rcode %d, AD %v, %d records", m.Rcode, m.AuthenticatedData, len(res.Records))
			}
		case StatusSecureDenial:
			if !m.AuthenticatedData || len(res.Records) != 0 {
				t.Fatalf("secure denial with AD %v, %d records", m.AuthenticatedData, len(res.Records))
			}
		case StatusBogus:
			if !errors.Is(res.Err, ErrBogus) || len(res.Records) != 0 {
				t.Fatalf("bogus with %v, %d records", res.Err, len(res.Records))
			}
		case StatusIndeterminate:
			if res.Err == nil || len(res.Records) != 0 {
				t.Fatalf("indeterminate with %v, %d records", res.Err, len(res.Records))
			}
		case StatusInsecure:
			if m.AuthenticatedData {
				t.Fatal("insecure with AD")
			}
		default:
			t.Fatalf("status %v", res.Status)
		}
		for _, rr := range res.Records {
			if rr.Header().Rrtype != qtype {
				t.Fatalf("record %v is not of type %d", rr, qtype)
			}
		}
		if res.TTL < 0 {
			t.Fatalf("TTL %v", res.TTL)
		}
	})
}
