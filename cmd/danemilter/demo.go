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
	"github.com/danemilter/danemilter/keydir"
	"github.com/danemilter/danemilter/milter"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/verify"

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
	return demoGateways(w, logger, fake, ln.Addr().String(), dir)
}

// demoGateways is the demo's last part, README "Inbound decryption": two
// companies that both run danemilter. Company B's gateway holds bob's key
// (generated into a key directory, as "danemilter keys generate" does)
// and publishes it (the record "danemilter keys records" prints, served
// by the fake resolver); alice at company A signs her message with her
// OpenPGP key, published the same way. Company A's milter (the one above,
// at milterA) encrypts to bob; company B's milter decrypts it and verifies
// alice's signature against her record.
func demoGateways(w io.Writer, logger *slog.Logger, fake *dane.Fake, milterA, dir string) error {
	const alice, bob = "alice@a.example", "bob@b.example"
	keys := filepath.Join(dir, "keys-b")
	if err := os.Mkdir(keys, 0o700); err != nil {
		return err
	}
	k, err := keydir.GenerateSMIME(bob, keydir.SMIMEP256, keydir.Options{})
	if err != nil {
		return err
	}
	if _, err := keydir.WriteSMIME(keys, bob, k); err != nil {
		return err
	}
	held, err := keydir.Open(keys, logger)
	if err != nil {
		return err
	}
	rr, err := smimeaRR(bob, "S/MIME certificate of "+bob, k.Cert, dane.UsageDANEEE, 0, 0, 3600, false)
	if err != nil {
		return err
	}
	name := rr.Header().Name
	fake.Set(name, dns.TypeSMIMEA, dane.Result{Name: name, Type: dns.TypeSMIMEA, Status: dane.StatusSecure, Records: []dns.RR{rr}, TTL: time.Hour, Resolver: "fake"})

	signer, err := pgp.NewEntity("Alice", "", alice, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, DefaultHash: crypto.SHA256,
		Time: func() time.Time { return time.Now().Add(-time.Minute) }})
	if err != nil {
		return err
	}
	arr, err := openpgpkeyRR(alice, "OpenPGP key of "+alice, pgp.EntityList{signer}, 3600, false)
	if err != nil {
		return err
	}
	aname := arr.Header().Name
	fake.Set(aname, dns.TypeOPENPGPKEY, dane.Result{Status: dane.StatusSecure, TTL: time.Hour, Resolver: "fake", Records: []dns.RR{arr}})

	decrypt, err := milter.NewDecryptList([]string{"b.example"})
	if err != nil {
		return err
	}
	srv, err := milter.NewServer(milter.Options{Logger: logger, Resolver: fake, Levels: policy.NewTable(policy.LevelDane),
		Keys: held, Decrypt: decrypt, DecryptReject: true,
		Verifier: &verify.Verifier{Resolver: fake, Keys: &openpgp.KeyCache{}}, Inbound: policy.NewInboundTable(policy.InboundReport),
		AuthservID: "mx.b.example", IsLocal: func(d string) bool { return d == "b.example" },
		Direction: milter.DirectionRules{Default: milter.Inbound}})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(ln)
	defer srv.Close()

	const entity = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		"Hi Bob, the contract is signed — see you on Friday. Alice\r\n"
	var sig bytes.Buffer
	if err := pgp.ArmoredDetachSign(&sig, signer, strings.NewReader(entity), nil); err != nil {
		return err
	}
	signedBody := "--sig\r\n" + entity + "\r\n--sig\r\nContent-Type: application/pgp-signature\r\n\r\n" +
		strings.ReplaceAll(sig.String(), "\n", "\r\n") + "\r\n--sig--\r\n"
	msg := "From: Alice <" + alice + ">\r\nTo: Bob <" + bob + ">\r\nSubject: Contract\r\n" +
		"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <demo-5@a.example>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"sig\"\r\n\r\n" + signedBody

	fmt.Fprintf(w, "\n== 5. two companies, both with danemilter: company B's gateway holds bob's key (made in a key directory, like\n")
	fmt.Fprintf(w, "   `danemilter keys generate`) and publishes it; alice at company A signs with her published OpenPGP key\n")
	fmt.Fprintf(w, "-- company B publishes (`danemilter keys records`):\n  %s\n", clipLine(rr.String(), 150))
	res, err := miltertest.Simulate("tcp", milterA, "DEMO5", alice, []string{bob}, []byte(msg))
	if err != nil {
		return err
	}
	if res.Final == nil || res.Message == nil || bytes.Contains(res.Message, []byte("see you on Friday")) {
		return fmt.Errorf("company A did not encrypt the message to bob: %+v", res.Final)
	}
	fmt.Fprintf(w, "-- company A's milter sends it over the Internet as (top of the message):\n")
	showTop(w, res.Message, 3)

	res, err = miltertest.Postfix("smtpd", "192.0.2.25").Simulate("tcp", ln.Addr().String(), "DEMO6", alice, []string{bob}, res.Message)
	if err != nil {
		return err
	}
	if res.Final == nil || res.Message == nil {
		return fmt.Errorf("company B's milter did not accept the message: %+v", res.Final)
	}
	if _, body, _ := strings.Cut(string(res.Message), "\r\n\r\n"); body != signedBody {
		return fmt.Errorf("company B's milter did not recover alice's signed message")
	}
	if !bytes.Contains(res.Message, []byte("openpgp=pass")) {
		return fmt.Errorf("company B's milter did not verify alice's signature")
	}
	fmt.Fprintf(w, "-- company B's milter decrypts it; bob's mailbox gets the original, signature verified against alice's record:\n")
	showTop(w, res.Message, 6)
	return nil
}

// showTop prints a message's header and the first lines of its body.
func showTop(w io.Writer, msg []byte, lines int) {
	head, body, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	for _, l := range strings.Split(string(head), "\r\n") {
		fmt.Fprintln(w, "  "+l)
	}
	fmt.Fprintln(w)
	bl := strings.Split(string(body), "\r\n")
	for i, l := range bl {
		if i == lines {
			fmt.Fprintf(w, "  [... %d more lines ...]\n", len(bl)-lines)
			break
		}
		fmt.Fprintln(w, "  "+l)
	}
}

func clipLine(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
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
