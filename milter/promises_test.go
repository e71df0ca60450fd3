package milter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/policy"

	"github.com/danemilter/danemilter/milter/miltertest"
)

// The README's promises about the milter that no other test pinned down
// exactly; one test each.

// logBuf collects JSON log lines from the server.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines whose msg is msg.
func (l *logBuf) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("log line %q: %v", s, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func jsonLogger(l *logBuf) *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestPromisedLogLine: "One line per message, at info, with the queue ID,
// the action, the copies made and every recipient's decision and why", with
// the fields of the README's example; and "A recipient refused at RCPT TO
// gets its own line (msg="recipient refused", with the status ..., the
// DNSSEC status and EDE code)".
func TestPromisedLogLine(t *testing.T) {
	fake := &dane.Fake{}
	newUser(t, "alice@partner.example").publish(t, fake)
	name, _ := dane.SMIMEAName("b@bogus.example", false)
	fake.Set(name, dns.TypeSMIMEA, dane.Result{Name: name, Type: dns.TypeSMIMEA, Status: dane.StatusBogus,
		EDE: []dane.EDE{{Code: 6, Text: "DNSSEC Bogus"}}, Err: dane.ErrBogus})
	var logs logBuf
	addr := start(t, Options{Resolver: fake, Logger: jsonLogger(&logs), Reinjector: &recorder{}, RcptWait: time.Second})
	res, err := miltertest.Simulate("tcp", addr, "QL1", "sender@local.example",
		[]string{"alice@partner.example", "b@bogus.example", "bob@partner.example"}, readEML(t, "plain.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rcpts[1] == nil || !strings.HasPrefix(res.Rcpts[1].SMTPReply, "451 4.7.5") || res.Final.Type != gomilter.ActionAccept {
		t.Fatalf("rcpt %+v final %+v", res.Rcpts, res.Final)
	}
	refused := logs.lines(t, "recipient refused")
	if len(refused) != 1 {
		t.Fatalf("%d recipient refused lines:\n%s", len(refused), logs.String())
	}
	if r := refused[0]; r["level"] != "INFO" || r["status"] != "4.7.5" || !strings.Contains(fmt.Sprint(r["rcpt"]), "b@bogus.example") ||
		!strings.Contains(fmt.Sprint(r["rcpt"]), "dnssec=bogus") || !strings.Contains(fmt.Sprint(r["rcpt"]), "ede=6") {
		t.Errorf("recipient refused line %v", r)
	}
	msgs := logs.lines(t, "message")
	if len(msgs) != 1 {
		t.Fatalf("%d message lines, want 1:\n%s", len(msgs), logs.String())
	}
	m := msgs[0]
	for k, want := range map[string]string{"level": "INFO", "queue_id": "QL1", "action": "split", "format": "smime", "cipher": "aes256-cbc",
		"keys": "1", "copies": "smime:1+plain:1", "from": "sender@local.example", "rcpt_count": "2"} {
		if got := fmt.Sprint(m[k]); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"reason", "duration", "size"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s field", k)
		}
	}
	rc := fmt.Sprint(m["recipients"])
	for _, w := range []string{"alice@partner.example=encrypt(level=dane,dnssec=secure,usable=1", "bob@partner.example=plain(level=dane,dnssec=secure-denial"} {
		if !strings.Contains(rc, w) {
			t.Errorf("recipients %q lacks %q", rc, w)
		}
	}
}

// TestPromisedNothingSecretLogged: "Bodies and keys are never logged; the
// SMTP replies stay generic (451 4.3.0 Temporary encryption gateway failure)
// while the log keeps the detail." Debug level, a message encrypted and one
// deferred by a spool error.
func TestPromisedNothingSecretLogged(t *testing.T) {
	fake := &dane.Fake{}
	alice := newUser(t, "alice@partner.example")
	alice.publish(t, fake)
	var logs logBuf
	const secret = "Xyzzy-body-marker-8d1f"
	msg := []byte("From: s@local.example\r\nTo: alice@partner.example\r\nSubject: hello\r\n\r\n" + secret + "\r\n")
	addr := start(t, Options{Resolver: fake, Logger: jsonLogger(&logs)})
	if res, err := miltertest.Simulate("tcp", addr, "QS1", "s@local.example", []string{"alice@partner.example"}, msg); err != nil || res.Final.Type != gomilter.ActionAccept {
		t.Fatalf("%+v %v", res, err)
	}
	// A spool directory that does not exist: the body cannot be kept.
	addr = start(t, Options{Resolver: fake, Logger: jsonLogger(&logs), MemoryThreshold: 1, MemoryBudget: 1, SpoolDir: "/nonexistent-danemilter-spool"})
	res, err := miltertest.Simulate("tcp", addr, "QS2", "s@local.example", []string{"alice@partner.example"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Final.SMTPReply != "451 4.3.0 Temporary encryption gateway failure, try again later" {
		t.Errorf("reply %q, want the generic 451 4.3.0", res.Final.SMTPReply)
	}
	l := logs.String()
	if !strings.Contains(l, "/nonexistent-danemilter-spool") {
		t.Errorf("the log lacks the detail of the spool failure:\n%s", l)
	}
	for what, s := range map[string]string{
		"body":              secret,
		"certificate (hex)": fmt.Sprintf("%x", alice.der[:32]),
		"public modulus":    alice.key.N.Text(16)[:32],
		"the subject":       "Subject: hello",
	} {
		if strings.Contains(strings.ToLower(l), strings.ToLower(s)) {
			t.Errorf("the log holds the %s", what)
		}
	}
}

// panicLevels is a policy source with a bug: it panics.
type panicLevels struct{}

func (panicLevels) Lookup(string) policy.Match { panic("policy bug") }

// TestPromisedInternalFailures: "any failure inside the daemon (panic, spool
// error, encryption error, timeout) answers 451 4.3.0". A failure inside a
// recipient's lookup (a resolver that panics or does not answer before the
// message's deadline) makes that lookup indeterminate, which the policy
// table answers with 451 4.4.3 at levels dane and encrypt and with
// plaintext at may (the README says so since this test).
func TestPromisedInternalFailures(t *testing.T) {
	const generic = "451 4.3.0 Temporary encryption gateway failure, try again later"
	plain := readEML(t, "plain.eml")
	for _, tt := range []struct {
		name string
		opts Options
		want string
	}{
		{"panic in a callback", Options{Resolver: &dane.Fake{}, Levels: panicLevels{}}, generic},
		{"spool error", Options{Resolver: &dane.Fake{}, MemoryThreshold: 10, MemoryBudget: 10, SpoolDir: "/nonexistent-danemilter-dir"}, generic},
		{"panic in a lookup", Options{Resolver: panicResolver{}}, "451 4.4.3"},
		{"lookup past the message timeout", Options{Resolver: slowResolver{}, MessageTimeout: 200 * time.Millisecond}, "451 4.4.3"},
		{"panic in a lookup, level may", Options{Resolver: panicResolver{}, Levels: policy.NewTable(policy.LevelMay)}, ""},
		{"lookup past the message timeout, level may", Options{Resolver: slowResolver{}, Levels: policy.NewTable(policy.LevelMay), MessageTimeout: 200 * time.Millisecond}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := miltertest.Simulate("tcp", start(t, tt.opts), "QF", "s@local.example", []string{"alice@partner.example"}, plain)
			if err != nil {
				t.Fatal(err)
			}
			act := res.Final
			if res.Rcpts[0] != nil {
				act = res.Rcpts[0]
			}
			if tt.want == "" { // indeterminate at level may: plaintext
				if act == nil || act.Type != gomilter.ActionAccept || len(res.Modifications) != 0 {
					t.Fatalf("rcpt %+v final %+v, %d changes; want passed unchanged", res.Rcpts, res.Final, len(res.Modifications))
				}
				return
			}
			if act == nil || act.Type != gomilter.ActionRejectWithCode || !strings.HasPrefix(act.SMTPReply, tt.want) {
				t.Fatalf("rcpt %+v final %+v, want %q", res.Rcpts, res.Final, tt.want)
			}
		})
	}
}

// spoolFiles lists the descriptors of this process open on files in dir, and
// whether each is unlinked.
func spoolFiles(t *testing.T, dir string) (open, deleted int) {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil || !strings.HasPrefix(target, dir+"/") {
			continue
		}
		open++
		if strings.HasSuffix(target, " (deleted)") {
			deleted++
		}
	}
	return open, deleted
}

// TestPromisedSpool: "memory_threshold: body bytes kept in memory before
// spooling to a file" and "spool_dir: where spooled bodies go (files are
// unlinked on creation)". The message is held open after its body so that
// the spool can be inspected.
func TestPromisedSpool(t *testing.T) {
	for _, tt := range []struct {
		name     string
		body     int
		wantFile bool
	}{{"below the threshold", 1000, false}, {"above the threshold", 5000, true}} {
		t.Run(tt.name, func(t *testing.T) {
			spool := t.TempDir()
			addr := start(t, Options{Resolver: &dane.Fake{}, MemoryThreshold: 4096, SpoolDir: spool})
			s, err := gomilter.NewClient("tcp", addr).Session(gomilter.NewMacroBag())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, step := range []func() (*gomilter.Action, error){
				func() (*gomilter.Action, error) { return s.Conn("localhost", gomilter.FamilyInet, 25, "127.0.0.1") },
				func() (*gomilter.Action, error) { return s.Helo("localhost") },
				func() (*gomilter.Action, error) { return s.Mail("<s@local.example>", "") },
				func() (*gomilter.Action, error) { return s.Rcpt("<carol@partner.example>", "") },
				s.DataStart,
				func() (*gomilter.Action, error) { return s.HeaderField("Subject", " x", nil) },
				s.HeaderEnd,
				func() (*gomilter.Action, error) { return s.BodyChunk(bytes.Repeat([]byte("a"), tt.body)) },
			} {
				if act, err := step(); err != nil || (act != nil && act.Type != gomilter.ActionContinue) {
					t.Fatalf("%+v %v", act, err)
				}
			}
			var open, deleted int
			deadline := time.Now().Add(2 * time.Second)
			for {
				open, deleted = spoolFiles(t, spool)
				if (open > 0) == tt.wantFile || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if (open > 0) != tt.wantFile || deleted != open {
				t.Errorf("%d files open in the spool, %d of them unlinked; want a file: %v", open, deleted, tt.wantFile)
			}
			if ents, _ := os.ReadDir(spool); len(ents) != 0 {
				t.Errorf("spool directory holds %d names; files must be unlinked on creation", len(ents))
			}
		})
	}
}

// TestPromisedSplitCopy: the re-injected copy carries "X-Danemilter:
// plaintext copy; split from an encrypted message", and a failed
// re-injection defers with the generic 451 4.3.0 and changes nothing.
func TestPromisedSplitCopy(t *testing.T) {
	fake := &dane.Fake{}
	newUser(t, "alice@partner.example").publish(t, fake)
	rcpts := []string{"alice@partner.example", "carol@partner.example"}
	rec := &recorder{}
	res, err := miltertest.Simulate("tcp", start(t, Options{Resolver: fake, Reinjector: rec}), "QP1", "s@local.example", rcpts, readEML(t, "plain.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 1 || res.Final.Type != gomilter.ActionAccept {
		t.Fatalf("%d re-injections, final %+v", len(rec.calls), res.Final)
	}
	if tr := header(rec.calls[0].msg, TraceHeader); len(tr) != 1 || tr[0] != "plaintext copy; split from an encrypted message" {
		t.Errorf("re-injected copy's trace header %q", tr)
	}
	rec = &recorder{fail: errors.New("listener down")}
	res, err = miltertest.Simulate("tcp", start(t, Options{Resolver: fake, Reinjector: rec}), "QP2", "s@local.example", rcpts, readEML(t, "plain.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Final.SMTPReply != "451 4.3.0 Temporary encryption gateway failure, try again later" || len(res.Modifications) != 0 {
		t.Errorf("failed re-injection: reply %q, %d changes", res.Final.SMTPReply, len(res.Modifications))
	}
}

// TestPromisedSplittingOff: "Some have, some do not, splitting off → sent in
// clear if every recipient's level allows plaintext (a log line says which
// recipients could have been encrypted)".
func TestPromisedSplittingOff(t *testing.T) {
	fake := &dane.Fake{}
	newUser(t, "alice@partner.example").publish(t, fake)
	var logs logBuf
	plain := readEML(t, "plain.eml")
	res, err := miltertest.Simulate("tcp", start(t, Options{Resolver: fake, Logger: jsonLogger(&logs)}), "QO1", "s@local.example",
		[]string{"alice@partner.example", "carol@partner.example"}, plain)
	if err != nil {
		t.Fatal(err)
	}
	if res.Final.Type != gomilter.ActionAccept || len(res.Modifications) != 0 {
		t.Fatalf("final %+v, %d changes; want passed unchanged", res.Final, len(res.Modifications))
	}
	msgs := logs.lines(t, "message")
	if len(msgs) != 1 {
		t.Fatalf("%d message lines", len(msgs))
	}
	if rc := fmt.Sprint(msgs[0]["recipients"]); msgs[0]["action"] != "pass" || !strings.Contains(rc, "alice@partner.example=encrypt(") ||
		!strings.Contains(fmt.Sprint(msgs[0]["reason"]), "splitting is off") {
		t.Errorf("log line does not say who could have been encrypted: %v", msgs[0])
	}
}

// TestPromisedPerEntryDryRunLogged: for a dry-run entry's recipients "the
// decision is logged (dry-run: in the recipients field) and announced in
// the header".
func TestPromisedPerEntryDryRunLogged(t *testing.T) {
	fake := &dane.Fake{}
	tbl := policy.NewTable(policy.LevelDane)
	must(t, tbl.SetEntry("trial.example", policy.Entry{Level: policy.LevelEncrypt, DryRun: true}))
	var logs logBuf
	res, err := miltertest.Simulate("tcp", start(t, Options{Resolver: fake, Levels: tbl, Logger: jsonLogger(&logs)}), "QD1", "s@local.example",
		[]string{"x@trial.example"}, readEML(t, "plain.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rcpts[0] != nil || res.Final.Type != gomilter.ActionAccept {
		t.Fatalf("dry-run entry refused: %+v %+v", res.Rcpts, res.Final)
	}
	if tr := header(res.Message, TraceHeader); len(tr) != 1 || !strings.HasPrefix(tr[0], "dry-run; would reject") {
		t.Errorf("trace header %q", tr)
	}
	msgs := logs.lines(t, "message")
	if len(msgs) != 1 || !strings.Contains(fmt.Sprint(msgs[0]["recipients"]), "dry-run:") {
		t.Errorf("message line %v lacks dry-run: in the recipients field", msgs)
	}
}
