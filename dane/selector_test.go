package dane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

type staticCerts []*x509.Certificate

func (s staticCerts) Certificates() []*x509.Certificate { return s }

// pki is a small hierarchy: root -> intermediate -> end entities.
type pki struct {
	root, inter, other *x509.Certificate
	ee, eeNext, eeOld  *x509.Certificate // for bosun@example.com
	selfSigned         *x509.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key := func() crypto.Signer {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(100)
	mk := func(tmpl *x509.Certificate, parent *x509.Certificate, pub any, signer crypto.Signer) *x509.Certificate {
		t.Helper()
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		if tmpl.NotBefore.IsZero() {
			tmpl.NotBefore = testNow.Add(-24 * time.Hour)
		}
		if tmpl.NotAfter.IsZero() {
			tmpl.NotAfter = testNow.AddDate(1, 0, 0)
		}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca := func(name string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	ee := func(notAfter time.Time) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: "Bosun"}, EmailAddresses: []string{"bosun@example.com"},
			KeyUsage: x509.KeyUsageKeyAgreement | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, NotAfter: notAfter}
	}
	p := &pki{}
	rootKey, interKey, otherKey := key(), key(), key()
	p.root = mk(ca("Test Root"), nil, rootKey.Public(), rootKey)
	p.inter = mk(ca("Test Intermediate"), p.root, interKey.Public(), rootKey)
	p.other = mk(ca("Unrelated CA"), nil, otherKey.Public(), otherKey)
	p.ee = mk(ee(time.Time{}), p.inter, key().Public(), interKey)
	p.eeNext = mk(ee(time.Time{}), p.inter, key().Public(), interKey)
	p.eeOld = mk(ee(testNow.Add(-time.Hour)), p.inter, key().Public(), interKey)
	sk := key()
	p.selfSigned = mk(ee(time.Time{}), nil, sk.Public(), sk)
	return p
}

func assoc(selector, matching uint8, c *x509.Certificate) string {
	content := c.Raw
	if selector == SelectorSPKI {
		content = c.RawSubjectPublicKeyInfo
	}
	switch matching {
	case MatchingSHA256:
		s := sha256.Sum256(content)
		return hex.EncodeToString(s[:])
	case MatchingSHA512:
		s := sha512.Sum512(content)
		return hex.EncodeToString(s[:])
	}
	return hex.EncodeToString(content)
}

func TestSelectorUsages(t *testing.T) {
	p := newPKI(t)
	roots := x509.NewCertPool()
	roots.AddCert(p.root)
	dir := staticCerts{p.inter, p.ee, p.other}
	const addr = "bosun@example.com"
	tests := []struct {
		name   string
		sel    *Selector
		rrs    []dns.RR
		want   []*x509.Certificate
		reason string // for a single rejected record
	}{
		{"3 1 1 with the certificate in the directory", &Selector{Certs: dir}, []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}, []*x509.Certificate{p.ee}, ""},
		{"3 0 1", &Selector{Certs: dir}, []dns.RR{smimea(3, 0, 1, assoc(0, 1, p.ee))}, []*x509.Certificate{p.ee}, ""},
		{"3 0 2", &Selector{Certs: dir}, []dns.RR{smimea(3, 0, 2, assoc(0, 2, p.ee))}, []*x509.Certificate{p.ee}, ""},
		{"3 1 0", &Selector{Certs: dir}, []dns.RR{smimea(3, 1, 0, assoc(1, 0, p.ee))}, []*x509.Certificate{p.ee}, ""},
		{"3 1 2", &Selector{Certs: dir}, []dns.RR{smimea(3, 1, 2, assoc(1, 2, p.ee))}, []*x509.Certificate{p.ee}, ""},
		{"3 1 1 without the certificate", &Selector{Certs: staticCerts{p.inter}}, []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}, nil, "no certificate for bosun@example.com"},
		{"3 1 1 of another key", &Selector{Certs: dir}, []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.eeNext))}, nil, "does not match"},
		{"3 0 0 self-signed (no chain needed)", &Selector{}, []dns.RR{smimea(3, 0, 0, assoc(0, 0, p.selfSigned))}, []*x509.Certificate{p.selfSigned}, ""},
		{"1 0 1 chains to the root", &Selector{Roots: roots, Certs: dir}, []dns.RR{smimea(1, 0, 1, assoc(0, 1, p.ee))}, []*x509.Certificate{p.ee}, ""},
		{"1 0 0 chains to the root", &Selector{Roots: roots, Certs: dir}, []dns.RR{smimea(1, 0, 0, assoc(0, 0, p.ee))}, []*x509.Certificate{p.ee}, ""},
		{"1 0 1 untrusted root", &Selector{Roots: x509.NewCertPool(), Certs: dir}, []dns.RR{smimea(1, 0, 1, assoc(0, 1, p.ee))}, nil, "PKIX-EE"},
		{"1 0 0 self-signed is not PKIX", &Selector{Roots: roots}, []dns.RR{smimea(1, 0, 0, assoc(0, 0, p.selfSigned))}, nil, "PKIX-EE"},
		{"0 0 1 matching the intermediate", &Selector{Roots: roots, Certs: dir}, []dns.RR{smimea(0, 0, 1, assoc(0, 1, p.inter))}, []*x509.Certificate{p.ee}, ""},
		{"0 1 1 matching the root", &Selector{Roots: roots, Certs: dir}, []dns.RR{smimea(0, 1, 1, assoc(1, 1, p.root))}, []*x509.Certificate{p.ee}, ""},
		{"0 0 1 matching an unrelated CA", &Selector{Roots: roots, Certs: dir}, []dns.RR{smimea(0, 0, 1, assoc(0, 1, p.other))}, nil, "matches no CA"},
		{"0 0 1 untrusted root", &Selector{Roots: x509.NewCertPool(), Certs: dir}, []dns.RR{smimea(0, 0, 1, assoc(0, 1, p.inter))}, nil, "PKIX-TA"},
		{"2 0 0 intermediate in the record, no roots needed", &Selector{Roots: x509.NewCertPool(), Certs: staticCerts{p.ee}}, []dns.RR{smimea(2, 0, 0, assoc(0, 0, p.inter))}, []*x509.Certificate{p.ee}, ""},
		{"2 1 1 intermediate in the directory", &Selector{Roots: x509.NewCertPool(), Certs: dir}, []dns.RR{smimea(2, 1, 1, assoc(1, 1, p.inter))}, []*x509.Certificate{p.ee}, ""},
		{"2 0 1 root in the directory", &Selector{Roots: x509.NewCertPool(), Certs: staticCerts{p.root, p.inter, p.ee}}, []dns.RR{smimea(2, 0, 1, assoc(0, 1, p.root))}, []*x509.Certificate{p.ee}, ""},
		{"2 0 0 unrelated CA", &Selector{Certs: dir}, []dns.RR{smimea(2, 0, 0, assoc(0, 0, p.other))}, nil, "DANE-TA"},
		{"2 1 1 no CA matches", &Selector{Certs: staticCerts{p.ee}}, []dns.RR{smimea(2, 1, 1, assoc(1, 1, p.inter))}, nil, "no CA certificate"},
		{"rollover: full old record and hashed new one", &Selector{Certs: staticCerts{p.inter, p.eeNext}},
			[]dns.RR{smimea(3, 0, 0, assoc(0, 0, p.selfSigned)), smimea(3, 1, 1, assoc(1, 1, p.eeNext))}, []*x509.Certificate{p.selfSigned, p.eeNext}, ""},
		{"DANE-TA picks the valid of two certificates", &Selector{Certs: staticCerts{p.eeOld, p.ee}}, []dns.RR{smimea(2, 0, 0, assoc(0, 0, p.inter))}, []*x509.Certificate{p.ee}, ""},
		{"expired certificate behind a hashed record", &Selector{Certs: staticCerts{p.eeOld}}, []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.eeOld))}, nil, "expired"},
		{"same certificate twice", &Selector{Certs: dir}, []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee)), smimea(3, 0, 1, assoc(0, 1, p.ee))}, []*x509.Certificate{p.ee}, "duplicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, rejected := tc.sel.Select(addr, tc.rrs, testNow)
			if len(keys) != len(tc.want) {
				t.Fatalf("%d keys, want %d; rejected %+v", len(keys), len(tc.want), rejected)
			}
			for i, k := range keys {
				if !k.Cert.Equal(tc.want[i]) {
					t.Errorf("key %d is %s, want %s", i, k.Cert.Subject, tc.want[i].Subject)
				}
			}
			if tc.reason != "" {
				if len(rejected) != 1 || !strings.Contains(rejected[0].Reason, tc.reason) {
					t.Errorf("rejected %+v, want one mentioning %q", rejected, tc.reason)
				}
			}
		})
	}
}

func writePEM(t *testing.T, path string, certs ...*x509.Certificate) {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCertDir(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	writePEM(t, filepath.Join(dir, "chain.pem"), p.ee, p.inter)
	if err := os.WriteFile(filepath.Join(dir, "garbage.crt"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := NewCertDir(dir, nil)
	var fe *CertFileError
	if !errors.As(err, &fe) || fe.Files["garbage.crt"] == nil || fe.Files["notes.txt"] == nil || len(fe.Files) != 2 {
		t.Fatalf("NewCertDir error %v, want both bad files named", err)
	}
	if d == nil || len(d.Certificates()) != 2 {
		t.Fatalf("certificates loaded despite a bad file: %v", d)
	}
	// The directory works as a CertSource for hashed records.
	keys, _ := (&Selector{Certs: d}).Select("bosun@example.com", []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}, testNow)
	if len(keys) != 1 {
		t.Fatal("hashed record not resolved through the directory")
	}
	// The directory's index and pool serve address lookups in any case and
	// chains through its CA certificates.
	keys, rej := (&Selector{Certs: d}).Select("BOSUN@Example.com", []dns.RR{smimea(3, 1, 1, assoc(1, 1, p.ee))}, testNow)
	if len(keys) != 1 {
		t.Errorf("address index is case-sensitive: %+v", rej)
	}
	keys, rej = (&Selector{Certs: d, Roots: x509.NewCertPool()}).Select("bosun@example.com", []dns.RR{smimea(2, 0, 1, assoc(0, 1, p.inter))}, testNow)
	if len(keys) != 1 || !keys[0].Cert.Equal(p.ee) {
		t.Errorf("DANE-TA through the directory's pool: %+v", rej)
	}
	if changed, _ := d.Reload(); changed {
		t.Error("unchanged directory reported as changed")
	}
	writePEM(t, filepath.Join(dir, "next.pem"), p.eeNext)
	if changed, _ := d.Reload(); !changed || len(d.Certificates()) != 3 {
		t.Errorf("added file: changed=%v, %d certificates", changed, len(d.Certificates()))
	}
	if _, err := NewCertDir(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("missing directory accepted")
	}
}
