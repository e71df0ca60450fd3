package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	gomilter "github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/milter"
	"github.com/danemilter/danemilter/milter/miltertest"
	"github.com/danemilter/danemilter/policy"
)

// TestVerifyAgreesWithDaemon: for messages that meet every inbound outcome
// and level (pass, unsigned, require, require dry-run, bogus,
// indeterminate, a From with two addresses of which one is require, too
// big, none), under require_action reject and hold and a global dry run,
// `danemilter verify` states the decision and SMTP reply that the daemon,
// run with the options serve gives it, carries out on that message
// arriving from outside.
func TestVerifyAgreesWithDaemon(t *testing.T) {
	const signer = "alice@bank.example"
	e, err := pgp.NewEntity("Alice", "", signer, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	fake := &dane.Fake{}
	name, _ := dane.OPENPGPKEYName(signer, false)
	fake.Set(name, dns.TypeOPENPGPKEY, dane.Result{Status: dane.StatusSecure, TTL: time.Minute, Records: []dns.RR{
		&dns.OPENPGPKEY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeOPENPGPKEY, Class: dns.ClassINET, Ttl: 60}, PublicKey: base64.StdEncoding.EncodeToString(pub.Bytes())},
	}})
	name, _ = dane.OPENPGPKEYName("carol@flaky.example", false)
	fake.SetStatus(name, dns.TypeOPENPGPKEY, dane.StatusIndeterminate, errors.New("SERVFAIL"))
	name, _ = dane.OPENPGPKEYName("dave@bogus.example", false)
	fake.SetStatus(name, dns.TypeOPENPGPKEY, dane.StatusBogus, dane.ErrBogus)

	signed := pgpSignedMessage(t, e, signer)
	unsigned := func(from string) []byte {
		return []byte("From: " + from + "\r\nTo: user@local.example\r\nSubject: agree\r\n\r\nHello.\r\n")
	}
	msgs := []struct {
		name string
		msg  []byte
	}{
		{"pass", signed},
		{"unsigned report", unsigned("x@report.example")},
		{"unsigned none", unsigned("x@quiet.example")},
		{"require unsigned", unsigned("x@bank.example")},
		{"require dry-run unsigned", unsigned("x@drybank.example")},
		{"require forged", bytes.Replace(signed, []byte("Hello, Bob."), []byte("Hello, Bub."), 1)},
		{"require bogus", bytes.ReplaceAll(signed, []byte(signer), []byte("dave@bogus.example"))},
		{"require indeterminate", bytes.ReplaceAll(signed, []byte(signer), []byte("carol@flaky.example"))},
		{"two From addresses, one require", unsigned("a@report.example, Bank\r\n <b@bank.example>")},
		{"two From fields, one require", []byte("From: a@report.example\r\nFrom: b@bank.example\r\nSubject: agree\r\n\r\nHello.\r\n")},
		{"require too big", append(unsigned("x@bank.example"), bytes.Repeat([]byte("0123456789abcdef\r\n"), 300)...)},
	}

	base := "local_domains = [\"local.example\"]\n%s[inbound]\nauthserv_id = \"mx.local.example\"\nmax_verify_size = 4096\n%s" +
		"[inbound.senders]\n\"bank.example\" = \"require\"\n\"drybank.example\" = \"require dry-run\"\n\"bogus.example\" = \"require\"\n" +
		"\"flaky.example\" = \"require\"\n\"quiet.example\" = \"none\"\n"
	decision := regexp.MustCompile(`(?m)^decision:    (\w+)(?: \(dry run; would (\w+): ([^)]*)\)|: (.*)| \(require_action = hold, in place of (.*)\))?`)
	inboundWould := regexp.MustCompile(`would (reject|hold|tempfail)`)
	seen := map[string]int{}
	for _, c := range []struct{ name, top, inbound string }{
		{"reject", "", ""},
		{"hold", "", "require_action = \"hold\"\n"},
		{"global dry run", "dry_run = true\n", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse("test", []byte(strings.Replace(strings.Replace(base, "%s", c.top, 1), "%s", c.inbound, 1)))
			if err != nil {
				t.Fatal(err)
			}
			levels, err := policy.NewLive(cfg.Levels, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := milter.NewServer(daemonOptions(cfg, slog.New(slog.DiscardHandler), fake, levels, nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })

			for _, m := range msgs {
				var out bytes.Buffer
				printVerify(context.Background(), cfg, fake, nil, m.name, m.msg, time.Now(), &out)
				said := decision.FindStringSubmatch(out.String())
				if said == nil {
					t.Fatalf("%s: no decision:\n%s", m.name, out.String())
				}
				res, err := miltertest.Postfix("smtpd", "198.51.100.7").Simulate("tcp", ln.Addr().String(), "QV", "bounce@remote.example", []string{"user@local.example"}, m.msg)
				if err != nil {
					t.Fatalf("%s: %v", m.name, err)
				}
				did, reply := inboundAction(res)
				switch {
				case said[2] != "":
					// A dry run delivers and announces what would have
					// happened, with the reply text.
					trace := milter.TraceHeader + ": dry-run; would " + said[2] + " ("
					if did != "accept" || !bytes.Contains(res.Message, []byte(trace)) || !strings.Contains(said[3], textOf(res.Message, trace)) {
						t.Errorf("%s: verify says accept (dry run; would %s: %s), daemon did %s:\n%s", m.name, said[2], said[3], did, res.Message)
					}
					seen["dry run would "+said[2]]++
				case said[1] != did:
					t.Errorf("%s: verify says %s, daemon did %s %s\n%s", m.name, said[1], did, reply, out.String())
				case did == "reject" || did == "tempfail":
					if !strings.HasPrefix(reply, said[4]) {
						t.Errorf("%s: verify says %s %q, daemon replied %q", m.name, did, said[4], reply)
					}
					seen[did+" "+said[4][:9]]++
				case did == "hold":
					if !strings.HasSuffix(said[5], reply) {
						t.Errorf("%s: verify says hold in place of %q, daemon held for %q", m.name, said[5], reply)
					}
					seen[did]++
				default:
					// (A global dry run announces the outbound plan too:
					// "would plain".)
					if inboundWould.Match(res.Message) {
						t.Errorf("%s: verify says %s, the daemon announces a dry run:\n%s", m.name, said[1], res.Message)
					}
					seen[did]++
				}
			}
		})
	}
	// Every decision was met, so the comparison is not vacuous.
	for _, k := range []string{"accept", "reject 550 5.7.1", "reject 552 5.3.4", "tempfail 451 4.4.3", "tempfail 451 4.7.5", "hold",
		"dry run would reject", "dry run would hold", "dry run would tempfail"} {
		if seen[k] == 0 {
			t.Errorf("no message decided %s: %v", k, seen)
		}
	}
	t.Logf("decisions compared: %v", seen)
}

// inboundAction names what the daemon did with a simulated inbound message
// at the end of data, and its reply (or the reason it held the message).
func inboundAction(res *miltertest.Result) (string, string) {
	act := res.Final
	switch {
	case act == nil:
		return "none", ""
	case act.Type == gomilter.ActionRejectWithCode && strings.HasPrefix(act.SMTPReply, "5"):
		return "reject", act.SMTPReply
	case act.Type == gomilter.ActionRejectWithCode && strings.HasPrefix(act.SMTPReply, "4"):
		return "tempfail", act.SMTPReply
	case act.Type == gomilter.ActionAccept && res.Quarantine != "":
		return "hold", res.Quarantine
	case act.Type == gomilter.ActionAccept:
		return "accept", ""
	}
	return fmt.Sprint(act.Type), act.SMTPReply
}

// textOf returns what follows prefix in msg up to the closing parenthesis.
func textOf(msg []byte, prefix string) string {
	_, rest, _ := bytes.Cut(msg, []byte(prefix))
	text, _, _ := bytes.Cut(rest, []byte(")"))
	return string(text)
}
