package main

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/dane"
)

// pgpSignedMessage returns a message from from, PGP/MIME-signed by e.
func pgpSignedMessage(t *testing.T, e *pgp.Entity, from string) []byte {
	t.Helper()
	content := "Content-Type: text/plain; charset=us-ascii\r\n\r\nHello, Bob.\r\n"
	var sig bytes.Buffer
	if err := pgp.ArmoredDetachSign(&sig, e, strings.NewReader(content), &packet.Config{DefaultHash: crypto.SHA256}); err != nil {
		t.Fatal(err)
	}
	return []byte("From: Alice <" + from + ">\r\nTo: bob@example.net\r\nSubject: signed\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"b\"\r\n\r\n" +
		"--b\r\n" + content + "\r\n--b\r\nContent-Type: application/pgp-signature\r\n\r\n" + sig.String() + "\r\n--b--\r\n")
}

func TestVerifyExplains(t *testing.T) {
	const from = "alice@partner.example"
	e, err := pgp.NewEntity("Alice", "", from, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	fake := &dane.Fake{}
	name, _ := dane.OPENPGPKEYName(from, false)
	fake.Set(name, dns.TypeOPENPGPKEY, dane.Result{Status: dane.StatusSecure, TTL: time.Minute, Records: []dns.RR{
		&dns.OPENPGPKEY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeOPENPGPKEY, Class: dns.ClassINET, Ttl: 60}, PublicKey: base64.StdEncoding.EncodeToString(pub.Bytes())},
	}})
	name, _ = dane.OPENPGPKEYName("carol@flaky.example", false)
	fake.SetStatus(name, dns.TypeOPENPGPKEY, dane.StatusIndeterminate, context.DeadlineExceeded)
	name, _ = dane.OPENPGPKEYName("dave@bogus.example", false)
	fake.SetStatus(name, dns.TypeOPENPGPKEY, dane.StatusBogus, dane.ErrBogus)

	cfg, err := config.Parse("test", []byte("[inbound]\nauthserv_id = \"mx.example.net\"\n[inbound.senders]\n\"partner.example\" = \"require\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	signed := pgpSignedMessage(t, e, from)
	tests := []struct {
		name string
		msg  []byte
		code int
		want []string
	}{
		{"pass", signed, 0, []string{"from:        alice@partner.example", "policy:      require (entry partner.example)",
			"[1] PGP/MIME signature, part 1: pass", "valid:     yes", "binding:   bound by OPENPGPKEY", "outcome:     pass", "decision:    accept (signed by the sender's DNS-published key)",
			"Authentication-Results: mx.example.net; smime=none", "DANE-OpenPGP-Result: mx.example.net; openpgp=pass", "policy.dane=bound"}},
		{"tampered", bytes.Replace(signed, []byte("Hello, Bob."), []byte("Hello, Bub."), 1), 1, []string{"part 1: fail", "valid:     no", "does not verify", "outcome:     no pass", "decision:    reject: 550 5.7.1 message not signed by the sender's DNS-published key", "openpgp=fail"}},
		{"no record", bytes.ReplaceAll(signed, []byte(from), []byte("alice@other.example")), 1, []string{"part 1: neutral", "binding:   no-record", "cannot be checked without the signer's key", "policy:      report (default)"}},
		{"indeterminate", bytes.ReplaceAll(signed, []byte(from), []byte("carol@flaky.example")), 2, []string{"temperror", "binding:   indeterminate", "could not be checked", "decision:    accept (policy report)"}},
		{"bogus", bytes.ReplaceAll(signed, []byte(from), []byte("dave@bogus.example")), 1, []string{"permerror", "binding:   bogus"}},
		{"unsigned", []byte("From: alice@partner.example\r\nSubject: hi\r\n\r\nHello.\r\n"), 1, []string{"signatures:  none found", "outcome:     no pass", "decision:    reject: 550 5.7.1", "Authentication-Results: mx.example.net; smime=none"}},
		{"no From", []byte("Subject: hi\r\n\r\nHello.\r\n"), 1, []string{"from:        none usable: no From field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := printVerify(context.Background(), cfg, fake, nil, "msg.eml", tt.msg, time.Now(), &out)
			if testing.Verbose() && tt.name == "pass" {
				t.Log("\n" + out.String())
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String(), "Hello") || strings.Contains(out.String(), "\r") {
				t.Errorf("message content or CR in the output:\n%s", out.String())
			}
		})
	}
}

func TestVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"verify", filepath.Join(dir, "missing.eml")}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "missing.eml") {
		t.Errorf("unreadable file: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"verify"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "exactly one message file") {
		t.Errorf("no file: exit %d, stderr %q", code, errb.String())
	}
	// An unsigned message needs no DNS: the real resolver is never asked.
	path := filepath.Join(dir, "plain.eml")
	if err := os.WriteFile(path, []byte("From: a@example.com\r\nSubject: x\r\n\r\nHi.\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "danemilter.toml")
	if err := os.WriteFile(cfgPath, []byte("[inbound]\nauthserv_id = \"mx.example.net\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"verify", "--config", cfgPath, path}, &out, &errb); code != 1 || !strings.Contains(out.String(), "mx.example.net; smime=none") {
		t.Errorf("plain message: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if code := run([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "danemilter verify [--config FILE] FILE") {
		t.Errorf("usage lacks verify")
	}
}
