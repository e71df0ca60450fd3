package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
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
	"strings"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	gomilter "github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/milter"
	"github.com/danemilter/danemilter/policy"

	"github.com/danemilter/danemilter/milter/miltertest"
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

	// Pia publishes an OpenPGP key instead (RFC 7929).
	pia, err := pgp.NewEntity("Pia", "", "pia@pgp.example", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, DefaultHash: crypto.SHA256, DefaultCipher: packet.CipherAES256})
	if err != nil {
		return err
	}
	var piaPub bytes.Buffer
	if err := pia.Serialize(&piaPub); err != nil {
		return err
	}
	pname, err := dane.OPENPGPKEYName("pia@pgp.example", false)
	if err != nil {
		return err
	}
	fake.Set(pname, dns.TypeOPENPGPKEY, dane.Result{Status: dane.StatusSecure, TTL: time.Hour, Resolver: "fake", Records: []dns.RR{
		&dns.OPENPGPKEY{Hdr: dns.RR_Header{Name: pname, Rrtype: dns.TypeOPENPGPKEY, Class: dns.ClassINET, Ttl: 3600}, PublicKey: base64.StdEncoding.EncodeToString(piaPub.Bytes())}}})

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	mta := &demoMTA{}
	srv, err := milter.NewServer(milter.Options{Logger: logger, Resolver: fake, Levels: policy.NewTable(policy.LevelDane), OpenPGP: true, Reinjector: mta})
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
	fmt.Fprintf(w, "   and an OPENPGPKEY record for pia@pgp.example; bob@partner.example has neither (secure denial)\n")
	fmt.Fprintf(w, "\n== 1. message to alice@partner.example (secure SMIMEA record) — delivered as:\n")
	res, err := miltertest.Simulate("tcp", ln.Addr().String(), "DEMO1", "sender@local.example", []string{"alice@partner.example"}, []byte(demoMessage))
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
	res, err = miltertest.Simulate("tcp", ln.Addr().String(), "DEMO2", "sender@local.example", []string{"bob@partner.example"}, msg2)
	if err != nil {
		return err
	}
	if !bytes.Equal(res.Message, msg2) {
		return fmt.Errorf("message to bob was changed")
	}
	w.Write(bytes.ReplaceAll(res.Message, []byte("\r\n"), []byte("\n")))

	fmt.Fprintf(w, "\n== 3. message to pia@pgp.example (secure OPENPGPKEY record) — delivered as PGP/MIME (RFC 3156):\n")
	msg3 := bytes.Replace([]byte(demoMessage), []byte("Alice <alice@partner.example>"), []byte("Pia <pia@pgp.example>"), 1)
	res, err = miltertest.Simulate("tcp", ln.Addr().String(), "DEMO3", "sender@local.example", []string{"pia@pgp.example"}, msg3)
	if err != nil {
		return err
	}
	showHeader(w, res.Message)
	plain, err := pgpDecrypt(res.Message, pia)
	if err != nil {
		return fmt.Errorf("PGP/MIME decryption: %w", err)
	}
	fmt.Fprintf(w, "\n== pia decrypts it (OpenPGP) and reads:\n%s", bytes.ReplaceAll(plain, []byte("\r\n"), []byte("\n")))

	fmt.Fprintf(w, "\n== 4. one message to alice, pia and bob — split: one copy each, never one in clear for a keyed recipient:\n")
	res, err = miltertest.Simulate("tcp", ln.Addr().String(), "DEMO4", "sender@local.example", []string{"alice@partner.example", "pia@pgp.example", "bob@partner.example"}, []byte(demoMessage))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "-- stays in the transaction (recipients removed: %s):\n", strings.Join(removed(res), ", "))
	showHeader(w, res.Message)
	for _, c := range mta.copies {
		fmt.Fprintf(w, "-- re-injected for %s:\n", strings.Join(c.rcpts, ", "))
		showHeader(w, c.msg)
	}
	return nil
}

// demoMTA stands in for the MTA's milter-less re-injection listener.
type demoMTA struct {
	copies []demoCopy
}

type demoCopy struct {
	rcpts []string
	msg   []byte
}

func (d *demoMTA) Reinject(_ context.Context, _ string, rcpts []string, msg io.Reader) error {
	b, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	d.copies = append(d.copies, demoCopy{rcpts, b})
	return nil
}

func removed(res *miltertest.Result) []string {
	var out []string
	for _, m := range res.Modifications {
		if m.Type == gomilter.ActionDelRcpt {
			out = append(out, gomilter.RemoveAngle(m.Rcpt))
		}
	}
	return out
}

// showHeader prints the header fields that show what happened.
func showHeader(w io.Writer, msg []byte) {
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		for _, p := range []string{"To:", "Content-Type:", "X-Danemilter:"} {
			if strings.HasPrefix(line, p) {
				fmt.Fprintln(w, "  "+line)
			}
		}
	}
}

// pgpDecrypt reads the armored part of a PGP/MIME message with go-crypto.
func pgpDecrypt(msg []byte, key *pgp.Entity) ([]byte, error) {
	i := bytes.Index(msg, []byte("-----BEGIN PGP MESSAGE-----"))
	j := bytes.Index(msg, []byte("-----END PGP MESSAGE-----"))
	if i < 0 || j < i {
		return nil, fmt.Errorf("no armored OpenPGP message")
	}
	blk, err := armor.Decode(bytes.NewReader(msg[i : j+len("-----END PGP MESSAGE-----")]))
	if err != nil {
		return nil, err
	}
	md, err := pgp.ReadMessage(blk.Body, pgp.EntityList{key}, nil, nil)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(md.UnverifiedBody)
}

func mustPKCS8(k *rsa.PrivateKey) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return b
}
