package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/harvest"
)

// TestLookupShowsStore: `danemilter lookup` lists what the store holds
// for an address, whether each certificate serves (only when a secure
// record matches it), and the cipher "auto" picks from its capabilities.
func TestLookupShowsStore(t *testing.T) {
	mk := func(addr string) []byte {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: addr}, EmailAddresses: []string{addr},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	publish := func(f *dane.Fake, addr string, der []byte) {
		c, _ := x509.ParseCertificate(der)
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		name, _ := dane.SMIMEAName(addr, false)
		f.Set(name, dns.TypeSMIMEA, dane.Result{Status: dane.StatusSecure, TTL: time.Minute, Records: []dns.RR{&dns.SMIMEA{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 60}, Usage: 3, Selector: 1, MatchingType: 1,
			Certificate: hex.EncodeToString(sum[:])}}})
	}
	gcm, _ := asn1.Marshal([]struct{ ID asn1.ObjectIdentifier }{{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}}, {asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}}})
	gcmDER, cbcDER, strayDER := mk("gcm@partner.example"), mk("cbc@partner.example"), mk("stray@partner.example")
	fake := &dane.Fake{}
	publish(fake, "gcm@partner.example", gcmDER)
	publish(fake, "cbc@partner.example", cbcDER)
	publish(fake, "stray@partner.example", mk("stray@partner.example")) // another certificate

	store, err := harvest.OpenBolt(filepath.Join(t.TempDir(), "h.db"), harvest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	for _, e := range []harvest.Entry{
		{Address: "gcm@partner.example", Certificate: gcmDER, Capabilities: gcm},
		{Address: "cbc@partner.example", Certificate: cbcDER},
		{Address: "stray@partner.example", Certificate: strayDER, Capabilities: gcm},
	} {
		if err := store.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse("test", []byte("[smime]\ncipher = \"auto\"\n[store]\nbackend = \"off\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr string
		code int
		want []string
	}{
		{"gcm@partner.example", 0, []string{"store:       1 certificate(s)", "capabilities: ", "used: yes (SMIMEA 3 1 1)", "encrypt as S/MIME (aes256-gcm, chosen by auto from the stored capabilities, RSA-OAEP for RSA keys)"}},
		{"cbc@partner.example", 0, []string{"capabilities: (none announced)", "used: yes", "encrypt as S/MIME (aes256-cbc, chosen by auto"}},
		{"stray@partner.example", 1, []string{"store:       1 certificate(s)", "used: no: no DNSSEC-secure SMIMEA record matches it", "send in clear"}},
		{"nobody@partner.example", 1, []string{"store:       0 certificate(s)"}},
	} {
		var out, errb bytes.Buffer
		code := printLookupStore(ctx, cfg, fake, nil, store, tt.addr, time.Now(), &out, &errb)
		if code != tt.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", tt.addr, code, tt.code, out.String(), errb.String())
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", tt.addr, w, out.String())
			}
		}
	}
}
