package dane

import (
	"crypto/x509"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestSelectWith: harvested certificates are candidates for hashed records
// exactly like the directory's, and grant no trust of their own: one that
// no secure record matches is never used (issue 14).
func TestSelectWith(t *testing.T) {
	p := newPKI(t)
	const addr = "bosun@example.com"
	tests := []struct {
		name   string
		sel    *Selector
		rrs    []dns.RR
		more   []*x509.Certificate
		want   []*x509.Certificate
		reason string
	}{
		{"3 1 1 matched by a harvested certificate", &Selector{}, []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}, []*x509.Certificate{p.ee}, []*x509.Certificate{p.ee}, ""},
		{"3 0 1 with the directory too", &Selector{Certs: staticCerts{p.inter}}, []dns.RR{smimea(3, 0, 1, assoc(0, 1, p.ee))}, []*x509.Certificate{p.ee}, []*x509.Certificate{p.ee}, ""},
		{"harvested certificate the record does not match", &Selector{}, []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.eeNext))}, []*x509.Certificate{p.ee}, nil, "does not match"},
		{"harvested certificate without any record", &Selector{}, nil, []*x509.Certificate{p.ee}, nil, ""},
		{"3 0 0 record: the record's certificate, not the harvested one", &Selector{}, []dns.RR{smimea(3, 0, 0, assoc(0, 0, p.selfSigned))}, []*x509.Certificate{p.ee}, []*x509.Certificate{p.selfSigned}, ""},
		{"harvested and in the directory: once", &Selector{Certs: staticCerts{p.ee}}, []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}, []*x509.Certificate{p.ee}, []*x509.Certificate{p.ee}, ""},
		{"expired harvested certificate", &Selector{}, []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.eeOld))}, []*x509.Certificate{p.eeOld}, nil, "expired"},
		{"harvested CA certificate is not an end entity", &Selector{}, []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.inter))}, []*x509.Certificate{p.inter}, nil, "nor harvested"},
		{"2 0 0 anchor, harvested end entity chains to it", &Selector{Certs: staticCerts{}}, []dns.RR{smimea(2, 0, 0, assoc(0, 0, p.inter))}, []*x509.Certificate{p.ee}, []*x509.Certificate{p.ee}, ""},
		{"no harvested certificate", &Selector{}, []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}, []*x509.Certificate{}, nil, "nor harvested"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, rejected := tc.sel.SelectWith(addr, tc.rrs, testNow, tc.more)
			if len(keys) != len(tc.want) {
				t.Fatalf("%d keys, want %d; rejected %+v", len(keys), len(tc.want), rejected)
			}
			for i, k := range keys {
				if !k.Cert.Equal(tc.want[i]) {
					t.Errorf("key %d is %s, want %s", i, k.Cert.Subject, tc.want[i].Subject)
				}
			}
			if tc.reason != "" && (len(rejected) != 1 || !strings.Contains(rejected[0].Reason, tc.reason)) {
				t.Errorf("rejected %+v, want one mentioning %q", rejected, tc.reason)
			}
		})
	}
}
