package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/milter"
	"github.com/danemilter/danemilter/policy"
)

const demoMessage = "From: Sender <sender@local.example>\r\n" +
	"To: Alice <alice@partner.example>\r\n" +
	"Subject: Quarterly numbers\r\n" +
	"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n" +
	"Message-ID: <demo-1@local.example>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"Grüße, Alice — the numbers are in.\r\n"

// runDemo runs the real milter on a loopback socket with a fake DNSSEC
// resolver that holds one SMIMEA record, plays an MTA sending two messages,
// and shows what would be delivered. With openssl installed it also decrypts.
func runDemo(stdout, stderr io.Writer) int {
	if err := demo(stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "danemilter demo:", err)
		return 1
	}
	return 0
}

func demo(w, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "danemilter-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(time.Now().UnixNano()),
		Subject:        pkix.Name{CommonName: "Alice"},
		EmailAddresses: []string{"alice@partner.example"},
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:       x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	name, err := dane.SMIMEAName("alice@partner.example", false)
	if err != nil {
		return err
	}
	rr := &dns.SMIMEA{
		Hdr:   dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 3600},
		Usage: 3, Selector: 0, MatchingType: 0, Certificate: hex.EncodeToString(der),
	}
	fake := &dane.Fake{}
	fake.Set(name, dns.TypeSMIMEA, dane.Result{Name: name, Type: dns.TypeSMIMEA, Status: dane.StatusSecure, Records: []dns.RR{rr}, TTL: time.Hour, Resolver: "fake"})

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := milter.NewServer(milter.Options{Logger: logger, Resolver: fake, Levels: policy.NewTable(policy.LevelDane)})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(ln)
	defer srv.Close()

	fmt.Fprintf(w, "== danemilter demo: milter on %s, fake DNSSEC resolver with a 3 0 0 SMIMEA record for alice@partner.example\n", ln.Addr())
	fmt.Fprintf(w, "\n== 1. message to alice@partner.example (secure SMIMEA record) — delivered as:\n")
	res, err := milter.Simulate("tcp", ln.Addr().String(), "DEMO1", "sender@local.example", []string{"alice@partner.example"}, []byte(demoMessage))
	if err != nil {
		return err
	}
	if res.Final == nil || res.Message == nil {
		return fmt.Errorf("milter did not accept the message: %+v", res.Final)
	}
	out := res.Message
	if len(out) > 1200 {
		out = append(append([]byte{}, out[:1200]...), []byte("\r\n[... base64 shortened ...]\r\n")...)
	}
	w.Write(bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n")))

	if path, err := exec.LookPath("openssl"); err == nil {
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(key)})
		files := map[string][]byte{"alice.crt": certPEM, "alice.key": keyPEM, "msg.eml": res.Message}
		for n, b := range files {
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
				return err
			}
		}
		cmd := exec.Command(path, "cms", "-decrypt", "-in", filepath.Join(dir, "msg.eml"), "-recip", filepath.Join(dir, "alice.crt"), "-inkey", filepath.Join(dir, "alice.key"))
		plain, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("openssl cms -decrypt: %w", err)
		}
		fmt.Fprintf(w, "\n== alice decrypts it with `openssl cms -decrypt` and reads:\n%s", bytes.ReplaceAll(plain, []byte("\r\n"), []byte("\n")))
	} else {
		fmt.Fprintf(w, "\n(openssl not installed: skipping the decryption step)\n")
	}

	fmt.Fprintf(w, "\n== 2. message to bob@partner.example (DNSSEC proves no record; policy dane) — delivered unchanged:\n")
	msg2 := bytes.Replace([]byte(demoMessage), []byte("Alice <alice@"), []byte("Bob <bob@"), 1)
	res, err = milter.Simulate("tcp", ln.Addr().String(), "DEMO2", "sender@local.example", []string{"bob@partner.example"}, msg2)
	if err != nil {
		return err
	}
	if !bytes.Equal(res.Message, msg2) {
		return fmt.Errorf("message to bob was changed")
	}
	w.Write(bytes.ReplaceAll(res.Message, []byte("\r\n"), []byte("\n")))
	return nil
}

func mustPKCS8(k *rsa.PrivateKey) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return b
}
