package dane

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestBindUsages(t *testing.T) {
	p := newPKI(t)
	roots := x509.NewCertPool()
	roots.AddCert(p.root)
	const addr = "bosun@example.com"
	msg := []*x509.Certificate{p.inter} // the certificates the message carries
	tests := []struct {
		name   string
		sel    *Selector
		signer *x509.Certificate
		inter  []*x509.Certificate
		rrs    []dns.RR
		addr   string    // default addr
		at     time.Time // default testNow
		want   int       // index of the binding record, -1 none
		reason string    // substring of the last rejection when want is -1
	}{
		{name: "3 0 0", rrs: []dns.RR{smimea(3, 0, 0, assoc(0, 0, p.ee))}},
		{name: "3 0 1", rrs: []dns.RR{smimea(3, 0, 1, assoc(0, 1, p.ee))}},
		{name: "3 0 2", rrs: []dns.RR{smimea(3, 0, 2, assoc(0, 2, p.ee))}},
		{name: "3 1 0", rrs: []dns.RR{smimea(3, 1, 0, assoc(1, 0, p.ee))}},
		{name: "3 1 1", rrs: []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}},
		{name: "3 1 2", rrs: []dns.RR{smimea(3, 1, 2, assoc(1, 2, p.ee))}},
		{name: "3 1 1 uppercase hex", rrs: []dns.RR{smimea(3, 1, 1, strings.ToUpper(assoc(1, 1, p.ee)))}},
		{name: "3 x x self-signed needs no chain", signer: p.selfSigned, inter: []*x509.Certificate{}, rrs: []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.selfSigned))}},
		{name: "3 1 1 of another certificate", rrs: []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.eeNext))}, want: -1, reason: "does not match the signer"},
		{name: "3 0 2 of another certificate", rrs: []dns.RR{smimea(3, 0, 2, assoc(0, 2, p.eeNext))}, want: -1, reason: "does not match"},
		{name: "second record binds (rollover)", rrs: []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.eeNext)), smimea(3, 1, 1, assoc(1, 1, p.ee))}, want: 1},
		{name: "other record types ignored", rrs: []dns.RR{&dns.TXT{Txt: []string{"x"}}, smimea(3, 1, 1, assoc(1, 1, p.ee))}, want: 1},
		{name: "1 0 1 chains to the root", sel: &Selector{Roots: roots}, rrs: []dns.RR{smimea(1, 0, 1, assoc(0, 1, p.ee))}},
		{name: "1 1 2 chains to the root", sel: &Selector{Roots: roots}, rrs: []dns.RR{smimea(1, 1, 2, assoc(1, 2, p.ee))}},
		{name: "1 0 1 without the intermediate", sel: &Selector{Roots: roots}, inter: []*x509.Certificate{}, rrs: []dns.RR{smimea(1, 0, 1, assoc(0, 1, p.ee))}, want: -1, reason: "PKIX-EE"},
		{name: "1 0 1 intermediate from the directory", sel: &Selector{Roots: roots, Certs: staticCerts{p.inter}}, inter: []*x509.Certificate{}, rrs: []dns.RR{smimea(1, 0, 1, assoc(0, 1, p.ee))}},
		{name: "1 0 1 untrusted root", sel: &Selector{Roots: x509.NewCertPool()}, rrs: []dns.RR{smimea(1, 0, 1, assoc(0, 1, p.ee))}, want: -1, reason: "PKIX-EE"},
		{name: "1 0 1 of another certificate", sel: &Selector{Roots: roots}, rrs: []dns.RR{smimea(1, 0, 1, assoc(0, 1, p.eeNext))}, want: -1, reason: "does not match"},
		{name: "0 0 1 matching the intermediate", sel: &Selector{Roots: roots}, rrs: []dns.RR{smimea(0, 0, 1, assoc(0, 1, p.inter))}},
		{name: "0 1 1 matching the root", sel: &Selector{Roots: roots}, rrs: []dns.RR{smimea(0, 1, 1, assoc(1, 1, p.root))}},
		{name: "0 0 0 matching the intermediate", sel: &Selector{Roots: roots}, rrs: []dns.RR{smimea(0, 0, 0, assoc(0, 0, p.inter))}},
		{name: "0 0 1 matching the signer itself is no CA", sel: &Selector{Roots: roots}, rrs: []dns.RR{smimea(0, 0, 1, assoc(0, 1, p.ee))}, want: -1, reason: "matches no CA"},
		{name: "0 0 1 unrelated CA", sel: &Selector{Roots: roots}, rrs: []dns.RR{smimea(0, 0, 1, assoc(0, 1, p.other))}, want: -1, reason: "matches no CA"},
		{name: "0 0 1 untrusted root", sel: &Selector{Roots: x509.NewCertPool()}, rrs: []dns.RR{smimea(0, 0, 1, assoc(0, 1, p.inter))}, want: -1, reason: "PKIX-TA"},
		{name: "2 0 0 intermediate in the record, no roots", sel: &Selector{Roots: x509.NewCertPool()}, inter: []*x509.Certificate{}, rrs: []dns.RR{smimea(2, 0, 0, assoc(0, 0, p.inter))}},
		{name: "2 0 0 root in the record, intermediate in the message", rrs: []dns.RR{smimea(2, 0, 0, assoc(0, 0, p.root))}},
		{name: "2 1 1 intermediate in the message", rrs: []dns.RR{smimea(2, 1, 1, assoc(1, 1, p.inter))}},
		{name: "2 0 2 root in the message", inter: []*x509.Certificate{p.inter, p.root}, rrs: []dns.RR{smimea(2, 0, 2, assoc(0, 2, p.root))}},
		{name: "2 1 0 root in the directory", sel: &Selector{Certs: staticCerts{p.root}}, rrs: []dns.RR{smimea(2, 1, 0, assoc(1, 0, p.root))}},
		{name: "2 1 1 no CA matches", inter: []*x509.Certificate{}, rrs: []dns.RR{smimea(2, 1, 1, assoc(1, 1, p.inter))}, want: -1, reason: "no CA certificate"},
		{name: "2 0 0 unrelated CA", rrs: []dns.RR{smimea(2, 0, 0, assoc(0, 0, p.other))}, want: -1, reason: "DANE-TA"},
		{name: "2 1 1 unrelated CA in the message", inter: []*x509.Certificate{p.inter, p.other}, rrs: []dns.RR{smimea(2, 1, 1, assoc(1, 1, p.other))}, want: -1, reason: "does not chain"},
		{name: "wrong address", addr: "mate@example.com", rrs: []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}, want: -1, reason: "not for mate@example.com (it names bosun@example.com)"},
		{name: "address case-insensitive", addr: "Bosun@Example.COM", rrs: []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}},
		{name: "expired signer", signer: p.eeOld, rrs: []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.eeOld))}, want: -1, reason: "expired"},
		{name: "not yet valid", at: testNow.AddDate(-1, 0, 0), rrs: []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}, want: -1, reason: "not valid before"},
		{name: "unknown usage", rrs: []dns.RR{smimea(4, 1, 1, assoc(1, 1, p.ee))}, want: -1, reason: "unknown parameters"},
		{name: "unknown matching type", rrs: []dns.RR{smimea(3, 1, 3, assoc(1, 1, p.ee))}, want: -1, reason: "unknown parameters"},
		{name: "bad hex", rrs: []dns.RR{smimea(3, 1, 1, "zz")}, want: -1, reason: "not valid hex"},
		{name: "short SHA-256", rrs: []dns.RR{smimea(3, 1, 1, "abcd")}, want: -1, reason: "does not fit"},
		{name: "2 0 0 garbage certificate", rrs: []dns.RR{smimea(2, 0, 0, "3003020101")}, want: -1, reason: "does not parse"},
		{name: "no records", rrs: nil, want: -1},
		{name: "no signer", signer: &x509.Certificate{}, rrs: []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}, want: -1, reason: "signer certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel, signer, inter, a, at := tc.sel, tc.signer, tc.inter, tc.addr, tc.at
			if sel == nil {
				sel = &Selector{}
			}
			if signer == nil {
				signer = p.ee
			}
			if inter == nil {
				inter = msg
			}
			if a == "" {
				a = addr
			}
			if at.IsZero() {
				at = testNow
			}
			rec, rejected := sel.Bind(a, tc.rrs, signer, inter, at)
			if tc.want < 0 {
				if rec != nil {
					t.Fatalf("bound by %v, want none", rec)
				}
				if tc.reason != "" && (len(rejected) == 0 || !strings.Contains(rejected[len(rejected)-1].Reason, tc.reason)) {
					t.Fatalf("rejected %+v, want a reason with %q", rejected, tc.reason)
				}
				if len(rejected) != len(tc.rrs) && tc.reason != "" && !strings.Contains(tc.name, "ignored") {
					t.Errorf("%d rejections for %d records", len(rejected), len(tc.rrs))
				}
				return
			}
			if rec == nil || rec != tc.rrs[tc.want] {
				t.Fatalf("bound by %v, want record %d; rejected %+v", rec, tc.want, rejected)
			}
		})
	}
}

func TestCheckSigningCertificate(t *testing.T) {
	const addr = "bosun@example.com"
	parse := func(der []byte) *x509.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name   string
		spec   certSpec
		reason string // "" usable
	}{
		{"RSA-2048 no extensions", certSpec{emails: []string{addr}}, ""},
		{"P-256", certSpec{key: "p256", emails: []string{addr}}, ""},
		{"subject emailAddress", certSpec{subjectEmail: addr}, ""},
		{"digitalSignature", certSpec{emails: []string{addr}, keyUsage: x509.KeyUsageDigitalSignature}, ""},
		{"nonRepudiation", certSpec{emails: []string{addr}, keyUsage: x509.KeyUsageContentCommitment}, ""},
		{"keyEncipherment only", certSpec{emails: []string{addr}, keyUsage: x509.KeyUsageKeyEncipherment}, "digital signatures"},
		{"emailProtection", certSpec{emails: []string{addr}, extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, ""},
		{"anyExtendedKeyUsage", certSpec{emails: []string{addr}, extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}, ""},
		{"serverAuth only", certSpec{emails: []string{addr}, extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, "emailProtection"},
		{"RSA-1024", certSpec{key: "rsa1024", emails: []string{addr}}, "too weak"},
		{"other address", certSpec{emails: []string{"mate@example.com"}}, "mate@example.com"},
		{"no address", certSpec{}, "no email address"},
		{"expired", certSpec{emails: []string{addr}, notBefore: testNow.AddDate(-1, 0, 0), notAfter: testNow.Add(-time.Second)}, "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckSigningCertificate(addr, parse(makeCert(t, tc.spec)), testNow)
			if (tc.reason == "") != (got == "") || !strings.Contains(got, tc.reason) {
				t.Errorf("got %q, want %q", got, tc.reason)
			}
		})
	}
	// Ed25519 is a signing key (RFC 8419), though it cannot encrypt.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(4242), EmailAddresses: []string{addr}, NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	if got := CheckSigningCertificate(addr, parse(der), testNow); got != "" {
		t.Errorf("Ed25519: %q", got)
	}
	if got := CheckCertificate(addr, parse(der), testNow); got == "" {
		t.Error("Ed25519 accepted for encryption")
	}
	c := parse(makeCert(t, certSpec{emails: []string{"A@example.com"}, subjectEmail: "b@example.com"}))
	if got := CertAddresses(c); len(got) != 2 || got[0] != "A@example.com" || got[1] != "b@example.com" {
		t.Errorf("CertAddresses = %q", got)
	}
	if !HasAddress(c, "a@EXAMPLE.com") || HasAddress(c, "c@example.com") {
		t.Error("HasAddress")
	}
}
