package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/milter"
	"github.com/danemilter/danemilter/milter/miltertest"
	"github.com/danemilter/danemilter/policy"
)

// TestLookupAgreesWithDaemon: for every cell of the policy table (level ×
// lookup outcome), with and without a per-entry dry run, for a local and
// an exempt recipient, `danemilter lookup` says what the daemon, run with
// the options serve gives it, does with a message to that recipient.
func TestLookupAgreesWithDaemon(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fake := &dane.Fake{}
	outcomes := map[string]func(addr, name string){
		"usable": func(addr, name string) {
			fake.Set(name, dns.TypeSMIMEA, dane.Result{Status: dane.StatusSecure, TTL: time.Minute, Records: []dns.RR{testSMIMEA(t, key, name, addr)}})
		},
		"nokey":    func(string, string) {}, // the fake proves there is no record
		"insecure": func(_, name string) { fake.SetStatus(name, dns.TypeSMIMEA, dane.StatusInsecure, nil) },
		"bogus":    func(_, name string) { fake.SetStatus(name, dns.TypeSMIMEA, dane.StatusBogus, dane.ErrBogus) },
		"servfail": func(_, name string) {
			fake.SetStatus(name, dns.TypeSMIMEA, dane.StatusIndeterminate, errors.New("SERVFAIL"))
		},
	}
	var mapLines, addrs []string
	for _, level := range []string{"none", "may", "dane", "encrypt"} {
		mapLines = append(mapLines, "."+level+".example "+level, "."+level+"-dry.example "+level+" dry-run")
		for _, zone := range []string{level, level + "-dry"} {
			for o := range outcomes {
				addrs = append(addrs, "alice@"+o+"."+zone+".example", "postmaster@"+o+"."+zone+".example")
			}
		}
	}
	mapLines = append(mapLines, ".local.example encrypt")
	for o := range outcomes {
		addrs = append(addrs, "alice@"+o+".local.example")
	}
	for _, a := range addrs {
		name, _ := dane.SMIMEAName(a, false)
		outcomes[strings.Split(strings.SplitN(a, "@", 2)[1], ".")[0]](a, name)
	}

	dir := t.TempDir()
	mapFile := filepath.Join(dir, "policy.map")
	if err := os.WriteFile(mapFile, []byte(strings.Join(mapLines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("test", []byte("local_domains = [\".local.example\"]\n[policy]\nmap_file = \""+mapFile+"\"\n[exempt]\nrecipients = [\"postmaster@\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	levels, err := policy.NewLive(cfg.Levels, cfg.Policy.MapFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	srv, err := milter.NewServer(daemonOptions(cfg, logger, fake, levels, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	decision := regexp.MustCompile(`(?m)^decision:    (\w+)`)
	seen := map[string]int{}
	msg := []byte("From: s@local.example\r\nSubject: agree\r\nContent-Type: text/plain\r\n\r\nhello\r\n")
	for _, a := range addrs {
		var out, errb bytes.Buffer
		printLookup(context.Background(), cfg, fake, nil, a, time.Now(), &out, &errb)
		m := decision.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("%s: no decision:\n%s%s", a, out.String(), errb.String())
		}
		said := m[1]
		if said == "send" {
			said = "plain"
		}
		res, err := miltertest.Simulate("tcp", ln.Addr().String(), "QA", "s@local.example", []string{a}, msg)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		did := daemonAction(res)
		seen[said]++
		if strings.Contains(out.String(), "dry run:     yes") {
			// A per-entry dry run passes the message and announces what
			// the decision would have done.
			if did != "plain" || !bytes.Contains(res.Message, []byte(milter.TraceHeader+": dry-run; would "+said)) &&
				!(said == "plain" && !bytes.Contains(res.Message, []byte("would"))) {
				t.Errorf("%s: lookup says %s (dry run), daemon did %s:\n%s", a, said, did, res.Message)
			}
			seen["dry-run"]++
			continue
		}
		if did != said {
			t.Errorf("%s: lookup says %s, daemon did %s\n%s", a, said, did, out.String())
		}
	}
	// Every decision was met, so the comparison is not vacuous.
	for _, k := range []string{"plain", "encrypt", "reject", "tempfail", "dry-run"} {
		if seen[k] == 0 {
			t.Errorf("no recipient decided %s: %v", k, seen)
		}
	}
	t.Logf("decisions compared: %v", seen)
}

// daemonAction names what the daemon did with a simulated message.
func daemonAction(res *miltertest.Result) string {
	act := res.Final
	if len(res.Rcpts) == 1 && res.Rcpts[0] != nil {
		act = res.Rcpts[0]
	}
	switch {
	case act == nil:
		return "none"
	case act.Type == gomilter.ActionRejectWithCode && strings.HasPrefix(act.SMTPReply, "5"):
		return "reject"
	case act.Type == gomilter.ActionRejectWithCode && strings.HasPrefix(act.SMTPReply, "4"):
		return "tempfail"
	case act.Type == gomilter.ActionAccept && bytes.Contains(res.Message, []byte("application/pkcs7-mime")):
		return "encrypt"
	case act.Type == gomilter.ActionAccept:
		return "plain"
	}
	return fmt.Sprintf("%v", act.Type)
}
