package dane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testNow is the time the SMIMEA tests check certificates at.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// Keys are generated once per test binary: RSA generation is slow.
var testKeys = sync.OnceValue(func() map[string]crypto.Signer {
	keys := map[string]crypto.Signer{}
	for name, bits := range map[string]int{"rsa2048": 2048, "rsa2048b": 2048, "rsa1024": 1024} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		keys[name] = k
	}
	for _, name := range []string{"p256", "issuer"} {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		keys[name] = k
	}
	return keys
})

type certSpec struct {
	key          string // in testKeys; default rsa2048
	emails       []string
	subjectEmail string
	notBefore    time.Time // default testNow - 24h
	notAfter     time.Time // default testNow + 1 year
	keyUsage     x509.KeyUsage
	extKeyUsage  []x509.ExtKeyUsage
	unknownEKU   []asn1.ObjectIdentifier
}

var certSerial struct {
	sync.Mutex
	n int64
}

// makeCert returns the DER of a certificate for spec, issued by a test CA.
func makeCert(tb testing.TB, spec certSpec) []byte {
	tb.Helper()
	keys := testKeys()
	if spec.key == "" {
		spec.key = "rsa2048"
	}
	if spec.notBefore.IsZero() {
		spec.notBefore = testNow.Add(-24 * time.Hour)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = testNow.AddDate(1, 0, 0)
	}
	certSerial.Lock()
	certSerial.n++
	serial := big.NewInt(certSerial.n)
	certSerial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		Subject:            pkix.Name{CommonName: "Test Recipient"},
		NotBefore:          spec.notBefore,
		NotAfter:           spec.notAfter,
		EmailAddresses:     spec.emails,
		KeyUsage:           spec.keyUsage,
		ExtKeyUsage:        spec.extKeyUsage,
		UnknownExtKeyUsage: spec.unknownEKU,
	}
	if spec.subjectEmail != "" {
		tmpl.Subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: oidEmailAddress, Value: spec.subjectEmail}}
	}
	issuer := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, keys[spec.key].Public(), keys["issuer"])
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

func smimea(usage, selector, matching uint8, certHex string) *dns.SMIMEA {
	return &dns.SMIMEA{
		Hdr:   dns.RR_Header{Name: "f10e7de079689f55c0cdd6782e4dd1448c84006962a4bd832e8eff73._smimecert.example.com.", Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 300},
		Usage: usage, Selector: selector, MatchingType: matching, Certificate: certHex,
	}
}

func TestSelectSMIMEAOne(t *testing.T) {
	const addr = "bosun@example.com"
	valid := hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}}))
	tests := []struct {
		name   string
		rr     *dns.SMIMEA
		addr   string    // default addr
		now    time.Time // default testNow
		reason string    // substring; "" means usable
	}{
		{name: "valid 3 0 0 RSA-2048", rr: smimea(3, 0, 0, valid)},
		{name: "uppercase hex", rr: smimea(3, 0, 0, strings.ToUpper(valid))},
		{name: "address case-insensitive", rr: smimea(3, 0, 0, valid), addr: "Bosun@EXAMPLE.com"},
		{name: "SAN case-insensitive", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{"BOSUN@Example.Com"}})))},
		{name: "one of several SANs", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{"other@example.com", addr}})))},
		{name: "subject emailAddress only", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{subjectEmail: addr})))},
		{name: "wrong address", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{"other@example.com"}}))), reason: addr},
		{name: "wrong address names the certificate's", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{"other@example.com"}}))), reason: "other@example.com"},
		{name: "wrong subject address", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{subjectEmail: "other@example.com"}))), reason: addr},
		{name: "no address", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{}))), reason: "no email address"},
		{name: "same local part other domain", rr: smimea(3, 0, 0, valid), addr: "bosun@example.org", reason: "bosun@example.org"},
		{name: "expired", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}, notBefore: testNow.AddDate(-2, 0, 0), notAfter: testNow.Add(-time.Hour)}))), reason: "expired"},
		{name: "expired later", rr: smimea(3, 0, 0, valid), now: testNow.AddDate(2, 0, 0), reason: "expired"},
		{name: "not yet valid", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}, notBefore: testNow.Add(time.Hour)}))), reason: "not valid before"},
		{name: "valid at NotAfter", rr: smimea(3, 0, 0, valid), now: testNow.AddDate(1, 0, 0)},
		{name: "valid at NotBefore", rr: smimea(3, 0, 0, valid), now: testNow.Add(-24 * time.Hour)},
		{name: "RSA-1024", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{key: "rsa1024", emails: []string{addr}}))), reason: "too weak"},
		{name: "ECDSA P-256", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{key: "p256", emails: []string{addr}})))},
		{name: "ECDSA P-256 KU keyAgreement", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{key: "p256", emails: []string{addr}, keyUsage: x509.KeyUsageKeyAgreement})))},
		{name: "ECDSA P-256 KU digitalSignature only", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{key: "p256", emails: []string{addr}, keyUsage: x509.KeyUsageDigitalSignature}))), reason: "key agreement"},
		{name: "KU digitalSignature only", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}, keyUsage: x509.KeyUsageDigitalSignature}))), reason: "key encipherment"},
		{name: "KU keyEncipherment", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}, keyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment})))},
		{name: "EKU serverAuth only", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}, extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}))), reason: "emailProtection"},
		{name: "EKU emailProtection", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}, extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageEmailProtection}})))},
		{name: "EKU any", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}, extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})))},
		{name: "EKU unknown only", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}, unknownEKU: []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 99999, 1}}}))), reason: "emailProtection"},
		{name: "no KU no EKU", rr: smimea(3, 0, 0, hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}})))},
		{name: "garbage hex", rr: smimea(3, 0, 0, "zz"+valid), reason: "not valid hex"},
		{name: "odd hex", rr: smimea(3, 0, 0, valid[:len(valid)-1]), reason: "not valid hex"},
		{name: "empty", rr: smimea(3, 0, 0, ""), reason: "not valid hex"},
		{name: "hex not a certificate", rr: smimea(3, 0, 0, "deadbeef"), reason: "does not parse"},
		{name: "truncated certificate", rr: smimea(3, 0, 0, valid[:len(valid)-20]), reason: "does not parse"},
		{name: "too long", rr: smimea(3, 0, 0, strings.Repeat("00", maxRecordLength+1)), reason: "too long"},
		{name: "usage 4", rr: smimea(4, 0, 0, valid), reason: "unknown parameters"},
		{name: "usage 255", rr: smimea(255, 0, 0, valid), reason: "unknown parameters"},
		{name: "selector 2", rr: smimea(3, 2, 0, valid), reason: "unknown parameters"},
		{name: "matching 3", rr: smimea(3, 0, 3, valid), reason: "unknown parameters"},
		{name: "3 1 1", rr: smimea(3, 1, 1, "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1"), reason: "3 1 1"},
		{name: "3 0 1 without certificate directory", rr: smimea(3, 0, 1, "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1"), reason: "certificate directory"},
		{name: "3 0 1 with short hash", rr: smimea(3, 0, 1, "a0b1"), reason: "want 32"},
		{name: "3 0 2 with short hash", rr: smimea(3, 0, 2, "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1"), reason: "want 64"},
		{name: "3 1 0 without certificate directory", rr: smimea(3, 1, 0, valid), reason: "certificate directory"},
		{name: "0 0 0 without certificate directory", rr: smimea(0, 0, 0, valid), reason: "certificate directory"},
		{name: "1 0 0 not chaining to a root", rr: smimea(1, 0, 0, valid), reason: "PKIX-EE"},
		{name: "2 0 0 without certificate directory", rr: smimea(2, 0, 0, valid), reason: "certificate directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, now := tc.addr, tc.now
			if a == "" {
				a = addr
			}
			if now.IsZero() {
				now = testNow
			}
			keys, rejected := (&Selector{}).Select(a, []dns.RR{tc.rr}, now)
			if tc.reason == "" {
				if len(keys) != 1 || len(rejected) != 0 {
					t.Fatalf("got %d keys, rejected %+v; want usable", len(keys), rejected)
				}
				if keys[0].Record != tc.rr || keys[0].Cert == nil {
					t.Errorf("key %+v does not carry its record", keys[0])
				}
				switch keys[0].Cert.PublicKey.(type) {
				case *rsa.PublicKey, *ecdsa.PublicKey:
				default:
					t.Errorf("key is %T", keys[0].Cert.PublicKey)
				}
				return
			}
			if len(keys) != 0 || len(rejected) != 1 {
				t.Fatalf("got %d keys, %d rejected; want rejected for %q", len(keys), len(rejected), tc.reason)
			}
			if rejected[0].Record != tc.rr {
				t.Errorf("rejected record %v, want %v", rejected[0].Record, tc.rr)
			}
			if !strings.Contains(rejected[0].Reason, tc.reason) {
				t.Errorf("reason %q, want it to mention %q", rejected[0].Reason, tc.reason)
			}
		})
	}
}

func TestSelectSMIMEAMany(t *testing.T) {
	const addr = "bosun@example.com"
	old := hex.EncodeToString(makeCert(t, certSpec{emails: []string{addr}}))
	next := hex.EncodeToString(makeCert(t, certSpec{key: "rsa2048b", emails: []string{addr}}))
	weak := hex.EncodeToString(makeCert(t, certSpec{key: "rsa1024", emails: []string{addr}}))
	txt := &dns.TXT{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{old}}
	tlsa := &dns.TLSA{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeTLSA, Class: dns.ClassINET}, Usage: 3, Certificate: old}

	tests := []struct {
		name     string
		rrs      []dns.RR
		keys     []int // indexes in rrs of the records that yield keys
		rejected []int // and of those rejected
		reason   string
	}{
		{name: "none", rrs: nil},
		{name: "rollover", rrs: []dns.RR{smimea(3, 0, 0, old), smimea(3, 0, 0, next)}, keys: []int{0, 1}},
		{name: "broken then valid", rrs: []dns.RR{smimea(3, 0, 0, "zz"), smimea(3, 0, 0, next)}, keys: []int{1}, rejected: []int{0}, reason: "hex"},
		{name: "valid then weak", rrs: []dns.RR{smimea(3, 0, 0, old), smimea(3, 0, 0, weak)}, keys: []int{0}, rejected: []int{1}, reason: "too weak"},
		{name: "hashed and full", rrs: []dns.RR{smimea(3, 1, 1, "00"), smimea(3, 0, 0, old)}, keys: []int{1}, rejected: []int{0}, reason: "association data"},
		{name: "duplicate", rrs: []dns.RR{smimea(3, 0, 0, old), smimea(3, 0, 0, strings.ToUpper(old))}, keys: []int{0}, rejected: []int{1}, reason: "duplicate"},
		{name: "other types ignored", rrs: []dns.RR{txt, tlsa, smimea(3, 0, 0, old), nil}, keys: []int{2}},
		{name: "only other types", rrs: []dns.RR{txt, tlsa}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, rejected := (&Selector{}).Select(addr, tc.rrs, testNow)
			if len(keys) != len(tc.keys) {
				t.Fatalf("%d keys, want %d (rejected %+v)", len(keys), len(tc.keys), rejected)
			}
			for i, k := range keys {
				if k.Record != tc.rrs[tc.keys[i]] {
					t.Errorf("key %d from %v, want record %d", i, k.Record, tc.keys[i])
				}
			}
			if len(rejected) != len(tc.rejected) {
				t.Fatalf("%d rejected, want %d: %+v", len(rejected), len(tc.rejected), rejected)
			}
			for i, r := range rejected {
				if r.Record != tc.rrs[tc.rejected[i]] {
					t.Errorf("rejected %d is %v, want record %d", i, r.Record, tc.rejected[i])
				}
				if !strings.Contains(r.Reason, tc.reason) {
					t.Errorf("reason %q, want it to mention %q", r.Reason, tc.reason)
				}
			}
		})
	}
}

func TestCheckCertificate(t *testing.T) {
	der := makeCert(t, certSpec{emails: []string{"bosun@example.com"}})
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if r := CheckCertificate("bosun@example.com", cert, testNow); r != "" {
		t.Errorf("usable certificate rejected: %s", r)
	}
	if r := CheckCertificate("hugh@example.com", cert, testNow); !strings.Contains(r, "hugh@example.com") {
		t.Errorf("reason %q", r)
	}
}
