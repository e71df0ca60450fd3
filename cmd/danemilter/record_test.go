package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/openpgp"
)

// TestRecord checks that every record the tool prints parses as a zone file
// line and yields the key again through the daemon's own selection code.
func TestRecord(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Erin"}, EmailAddresses: []string{"erin@partner.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageKeyAgreement}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	certFile := filepath.Join(dir, "erin.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][3]string{{"3", "0", "0"}, {"3", "1", "1"}, {"3", "0", "2"}, {"3", "1", "0"}} {
		var out, errb bytes.Buffer
		if code := run([]string{"record", "smimea", "--usage", p[0], "--selector", p[1], "--matching", p[2], "--cert", certFile, "erin@partner.example"}, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", p, code, errb.String())
		}
		rr, err := dns.NewRR(out.String())
		if err != nil {
			t.Fatalf("%v: %q does not parse: %v", p, out.String(), err)
		}
		want, _ := dane.SMIMEAName("erin@partner.example", false)
		if rr.Header().Name != want {
			t.Errorf("owner %s, want %s", rr.Header().Name, want)
		}
		keys, rej := (&dane.Selector{Certs: staticCerts{cert}}).Select("erin@partner.example", []dns.RR{rr}, time.Now())
		if len(keys) != 1 {
			t.Errorf("%v: record does not select the certificate: %+v", p, rej)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"record", "smimea", "--cert", certFile, "someone@else.example"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "cannot be used") {
		t.Errorf("certificate for another address accepted: %s", errb.String())
	}

	e, err := pgp.NewEntity("pia", "", "pia@partner.example", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, DefaultHash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	var arm bytes.Buffer
	w, _ := armor.Encode(&arm, "PGP PUBLIC KEY BLOCK", nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	keyFile := filepath.Join(dir, "pia.asc")
	if err := os.WriteFile(keyFile, arm.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"record", "openpgpkey", "--key", keyFile, "pia@partner.example"}, &out, &errb); code != 0 {
		t.Fatalf("openpgpkey: exit %d: %s", code, errb.String())
	}
	rr, err := dns.NewRR(out.String())
	if err != nil {
		t.Fatalf("%q does not parse: %v", out.String(), err)
	}
	if keys, rej := openpgp.SelectKeys("pia@partner.example", []dns.RR{rr}, time.Now()); len(keys) != 1 {
		t.Errorf("OPENPGPKEY record does not select the key: %+v", rej)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"record", "openpgpkey", "--key", keyFile, "other@partner.example"}, &out, &errb); code == 0 {
		t.Error("key without a matching user ID accepted")
	}
}

type staticCerts []*x509.Certificate

func (s staticCerts) Certificates() []*x509.Certificate { return s }
