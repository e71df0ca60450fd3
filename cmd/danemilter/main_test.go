package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/dane"
)

// testSMIMEA is an SMIMEA record (usage 3, DANE-EE) at name with a
// self-signed certificate for addr.
func testSMIMEA(t *testing.T, key *rsa.PrivateKey, name, addr string) *dns.SMIMEA {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: addr}, EmailAddresses: []string{addr},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &dns.SMIMEA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 60}, Usage: 3, Certificate: hex.EncodeToString(der)}
}

func TestLookupExplains(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fake := &dane.Fake{}
	name, _ := dane.SMIMEAName("alice@partner.example", false)
	broken := testSMIMEA(t, key, name, "alice@partner.example")
	broken.Certificate = "00"
	fake.Set(name, dns.TypeSMIMEA, dane.Result{Status: dane.StatusSecure, TTL: time.Minute, Records: []dns.RR{
		testSMIMEA(t, key, name, "alice@partner.example"), broken,
	}})
	name, _ = dane.SMIMEAName("b@bogus.example", false)
	fake.SetStatus(name, dns.TypeSMIMEA, dane.StatusBogus, dane.ErrBogus)

	dir := t.TempDir()
	mapFile := filepath.Join(dir, "policy.map")
	if err := os.WriteFile(mapFile, []byte("strict.example encrypt\ntrial.example encrypt dry-run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("test", []byte("[policy]\nmap_file = \""+mapFile+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		code int
		want []string
	}{
		{"alice@partner.example", 0, []string{"policy:      dane (default)", "dnssec:      secure", "usable: yes", "usable: no: certificate does not parse", "decision:    encrypt"}},
		{"carol@partner.example", 1, []string{"dnssec:      secure-denial", "decision:    send in clear"}},
		{"carol@strict.example", 1, []string{"policy:      encrypt (entry strict.example)", "decision:    reject at RCPT TO: 550 5.7.5"}},
		{"b@bogus.example", 1, []string{"dnssec:      bogus", "decision:    tempfail at RCPT TO: 451 4.7.5"}},
		{"x@trial.example", 1, []string{"dry-run", "dry run:     yes"}},
		{"postmaster@partner.example", 1, []string{"exempt:      yes", "decision:    send in clear (exempt)"}},
		{"postmaster@strict.example", 1, []string{"never weakened", "decision:    reject"}},
		{"not-an-address", 2, nil},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := printLookup(context.Background(), cfg, fake, nil, tt.addr, time.Now(), &out, &errb)
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

func TestCheckConfig(t *testing.T) {
	// A copy of the sample: the file checks judge the copy's owner and mode,
	// not those of the checkout.
	sample, err := os.ReadFile(filepath.Join("..", "..", "deploy", "danemilter.toml"))
	if err != nil {
		t.Fatal(err)
	}
	sampleCopy := filepath.Join(t.TempDir(), "danemilter.toml")
	if err := os.WriteFile(sampleCopy, sample, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check-config", "--config", sampleCopy}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "configuration is valid") || !strings.Contains(out.String(), "[policy]") {
		t.Errorf("output %s", out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("listen = \"inet:127.0.0.1:10025\"\n[dns]\ntimeuot = \"2s\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"check-config", "--config", bad}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `bad.toml:3: unknown key "dns.timeuot"`) {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

// TestDemo runs the self-contained demo the README opens with.
func TestDemo(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo"}, &out, &errb); code != 0 {
		t.Fatalf("demo exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"smime-type=enveloped-data", "format=pgp-mime", "pia decrypts it", "re-injected for bob@partner.example", "plaintext copy",
		// Part 5: two gateways, the ciphertext between them, the plaintext
		// and the verified signature at bob's.
		"._smimecert.b.example.\t3600\tIN\tSMIMEA\t3 0 0 ", "company A's milter sends it", "X-Danemilter-Decrypted: smime; cipher=aes256-cbc",
		"openpgp=pass", "policy.dane=bound", "the contract is signed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
