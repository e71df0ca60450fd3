package milter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
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

// routeResolver sends each domain's lookups to its own Resolver, so that one
// test server can show every DNS outcome side by side; delay slows every
// lookup down (to force decisions at end of message).
type routeResolver struct {
	routes map[string]dane.Resolver // owner-name suffix -> resolver
	def    dane.Resolver
	delay  time.Duration
}

func (r *routeResolver) Lookup(ctx context.Context, name string, qtype uint16) dane.Result {
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-ctx.Done():
		}
	}
	for suffix, res := range r.routes {
		if strings.HasSuffix(name, suffix) {
			return res.Lookup(ctx, name, qtype)
		}
	}
	return r.def.Lookup(ctx, name, qtype)
}

// blackhole is a UDP socket on loopback that reads queries and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

// deadAddr is a loopback port nobody listens on: queries get ICMP port
// unreachable, as with a stopped resolver. A port freed by closing a socket
// could be taken by a test server of another package running at the same
// time, so it is port 1 (tcpmux), which nothing on a test machine serves.
func deadAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:1"
}

// outcomes builds a resolver with one domain per DNS outcome and returns it
// with the recipient address for each outcome.
func outcomes(t *testing.T) (*routeResolver, map[string]string) {
	t.Helper()
	fake := &dane.Fake{}
	rcpt := map[string]string{
		"secure usable":       "u@usable.example",
		"secure denial":       "d@denial.example",
		"secure but unusable": "x@unusable.example",
		"insecure":            "i@insecure.example",
		"bogus":               "b@bogus.example",
		"SERVFAIL":            "s@servfail.example",
		"timeout":             "t@timeout.example",
		"resolver down":       "r@down.example",
	}
	newUser(t, rcpt["secure usable"]).publish(t, fake)
	// Unusable: the record holds a certificate for another address.
	other := newUser(t, "someone-else@unusable.example")
	name, _ := dane.SMIMEAName(rcpt["secure but unusable"], false)
	fake.Set(name, dns.TypeSMIMEA, dane.Result{Status: dane.StatusSecure, TTL: time.Minute,
		Records: []dns.RR{&dns.SMIMEA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 60}, Usage: 3, Certificate: hex.EncodeToString(other.der)}}})
	// Insecure: a valid certificate, but the answer is not DNSSEC-secure.
	ins := newUser(t, rcpt["insecure"])
	name, _ = dane.SMIMEAName(rcpt["insecure"], false)
	fake.Set(name, dns.TypeSMIMEA, dane.Result{Status: dane.StatusInsecure, TTL: time.Minute,
		Records: []dns.RR{&dns.SMIMEA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 60}, Usage: 3, Certificate: hex.EncodeToString(ins.der)}}})
	name, _ = dane.SMIMEAName(rcpt["bogus"], false)
	fake.Set(name, dns.TypeSMIMEA, dane.Result{Status: dane.StatusBogus, EDE: []dane.EDE{{Code: 6, Text: "signature invalid"}}, Err: dane.ErrBogus})
	name, _ = dane.SMIMEAName(rcpt["SERVFAIL"], false)
	fake.Set(name, dns.TypeSMIMEA, dane.Result{Status: dane.StatusIndeterminate, Rcode: dns.RcodeServerFailure, Err: dane.ErrServFail})

	// Timeout and resolver down go through the real stub resolver.
	slow, err := dane.NewStub(dane.StubOptions{Servers: []string{blackhole(t)}, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	down, err := dane.NewStub(dane.StubOptions{Servers: []string{deadAddr(t)}, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &routeResolver{def: fake, routes: map[string]dane.Resolver{
		"._smimecert.timeout.example.": slow,
		"._smimecert.down.example.":    down,
	}}, rcpt
}

// TestPolicyCells covers every cell of the policy table: each level against
// each DNS outcome, decided at RCPT TO (the answer came in time) and at end
// of message (it did not), and checks the milter's reply and the message
// that results.
func TestPolicyCells(t *testing.T) {
	const (
		enc  = "encrypt"
		pass = "pass"
		tf47 = "451 4.7.5"
		tf44 = "451 4.4.3"
		rej  = "550 5.7.5"
	)
	want := map[policy.Level]map[string]string{
		policy.LevelNone: {"secure usable": pass, "secure denial": pass, "secure but unusable": pass, "insecure": pass,
			"bogus": pass, "SERVFAIL": pass, "timeout": pass, "resolver down": pass},
		policy.LevelMay: {"secure usable": enc, "secure denial": pass, "secure but unusable": pass, "insecure": pass,
			"bogus": pass, "SERVFAIL": pass, "timeout": pass, "resolver down": pass},
		policy.LevelDane: {"secure usable": enc, "secure denial": pass, "secure but unusable": pass, "insecure": pass,
			"bogus": tf47, "SERVFAIL": tf44, "timeout": tf44, "resolver down": tf44},
		policy.LevelEncrypt: {"secure usable": enc, "secure denial": rej, "secure but unusable": rej, "insecure": rej,
			"bogus": tf47, "SERVFAIL": tf44, "timeout": tf44, "resolver down": tf44},
	}
	plain := readEML(t, "plain.eml")
	for _, stage := range []string{"rcpt", "eom"} {
		res, rcpts := outcomes(t)
		opts := Options{Resolver: res, RcptWait: 3 * time.Second}
		if stage == "eom" {
			res.delay = 50 * time.Millisecond
			opts.RcptWait = 0
		}
		for level, row := range want {
			opts.Levels = policy.NewTable(level)
			addr := start(t, opts)
			for outcome, w := range row {
				t.Run(stage+"/"+level.String()+"/"+outcome, func(t *testing.T) {
					t.Parallel()
					r, err := miltertest.Simulate("tcp", addr, "QC", "s@local.example", []string{rcpts[outcome]}, plain)
					if err != nil {
						t.Fatal(err)
					}
					var reply *gomilter.Action
					switch {
					case len(r.Rcpts) == 1 && r.Rcpts[0] != nil:
						reply = r.Rcpts[0]
						if stage == "eom" {
							t.Errorf("refused at RCPT although the lookup was slower than RcptWait")
						}
					case r.Final != nil && r.Final.Type == gomilter.ActionRejectWithCode:
						reply = r.Final
						if stage == "rcpt" {
							t.Errorf("refused at end of message although the answer was there at RCPT")
						}
					}
					switch w {
					case enc, pass:
						if reply != nil || r.Final == nil || r.Final.Type != gomilter.ActionAccept {
							t.Fatalf("want %s, got rcpt %+v final %+v", w, reply, r.Final)
						}
						encrypted := strings.Contains(strings.Join(header(r.Message, "Content-Type"), ""), "application/pkcs7-mime")
						if encrypted != (w == enc) {
							t.Fatalf("encrypted = %v, want %s", encrypted, w)
						}
						if w == pass && !bytes.Equal(r.Message, plain) {
							t.Fatalf("message changed although passed")
						}
					default:
						if reply == nil || !strings.HasPrefix(reply.SMTPReply, w+" ") {
							t.Fatalf("want %s, got rcpt %+v final %+v", w, reply, r.Final)
						}
					}
				})
			}
		}
	}
}

// recorder is a Reinjector that keeps what it was given.
type recorder struct {
	mu    sync.Mutex
	fail  error
	calls []reinjected
}

type reinjected struct {
	from  string
	rcpts []string
	msg   []byte
}

func (r *recorder) Reinject(_ context.Context, from string, rcpts []string, msg io.Reader) error {
	b, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.calls = append(r.calls, reinjected{from, append([]string(nil), rcpts...), b})
	return nil
}

func deleted(mods []gomilter.ModifyAction) []string {
	var out []string
	for _, m := range mods {
		if m.Type == gomilter.ActionDelRcpt {
			out = append(out, gomilter.RemoveAngle(m.Rcpt))
		}
	}
	return out
}

// TestMixedRecipients checks split delivery: every recipient gets the
// message exactly once, readable, and never in clear where encryption is
// required.
func TestMixedRecipients(t *testing.T) {
	fake := &dane.Fake{}
	alice, bob := newUser(t, "alice@partner.example"), newUser(t, "bob@mandatory.example")
	alice.publish(t, fake)
	bob.publish(t, fake)
	tbl := policy.NewTable(policy.LevelDane)
	must(t, tbl.Set("mandatory.example", policy.LevelEncrypt))
	local := func(d string) bool { return d == "local.example" }
	plain := readEML(t, "plain.eml")

	t.Run("keyed and unkeyed split", func(t *testing.T) {
		rec := &recorder{}
		addr := start(t, Options{Resolver: fake, Levels: tbl, IsLocal: local, Reinjector: rec})
		res, err := miltertest.Simulate("tcp", addr, "QM1", "s@local.example", []string{"alice@partner.example", "carol@partner.example", "me@local.example", "bob@mandatory.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Final.Type != gomilter.ActionAccept {
			t.Fatalf("final %+v", res.Final)
		}
		if len(rec.calls) != 1 {
			t.Fatalf("%d re-injections, want 1", len(rec.calls))
		}
		got := rec.calls[0]
		if strings.Join(got.rcpts, ",") != "carol@partner.example,me@local.example" || got.from != "s@local.example" {
			t.Errorf("re-injected from %q to %q", got.from, got.rcpts)
		}
		if del := deleted(res.Modifications); strings.Join(del, ",") != "carol@partner.example,me@local.example" {
			t.Errorf("removed recipients %q", del)
		}
		// The plaintext copy is the original message plus a trace header.
		_, gotBody, _ := miltertest.SplitMessage(got.msg)
		_, origBody, _ := miltertest.SplitMessage(plain)
		if !bytes.Equal(gotBody, origBody) || !bytes.Contains(got.msg, []byte("Subject:")) || len(header(got.msg, TraceHeader)) != 1 {
			t.Errorf("re-injected copy differs from the original:\n%s", got.msg)
		}
		// The encrypted copy decrypts for both keyed recipients.
		for _, u := range []*user{alice, bob} {
			if out := u.decrypt(t, res.Message); !bytes.Equal(out, entity(t, plain)) {
				t.Errorf("%s cannot read the encrypted copy", u.addr)
			}
		}
		if tr := header(res.Message, TraceHeader); len(tr) != 1 || !strings.Contains(tr[0], "split=smime:2+plain:2") {
			t.Errorf("trace header %q", tr)
		}
	})

	t.Run("re-injection fails: whole message deferred, nothing changed", func(t *testing.T) {
		rec := &recorder{fail: errors.New("connection refused")}
		addr := start(t, Options{Resolver: fake, Levels: tbl, IsLocal: local, Reinjector: rec})
		res, err := miltertest.Simulate("tcp", addr, "QM2", "s@local.example", []string{"bob@mandatory.example", "carol@partner.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Final.Type != gomilter.ActionRejectWithCode || !strings.HasPrefix(res.Final.SMTPReply, "451 4.") {
			t.Fatalf("final %+v, want 451", res.Final)
		}
		if len(deleted(res.Modifications)) != 0 {
			t.Errorf("recipients removed although deferred")
		}
	})

	t.Run("no splitting: mandatory and unkeyed deferred", func(t *testing.T) {
		addr := start(t, Options{Resolver: fake, Levels: tbl, IsLocal: local})
		res, err := miltertest.Simulate("tcp", addr, "QM3", "s@local.example", []string{"bob@mandatory.example", "carol@partner.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Final.Type != gomilter.ActionRejectWithCode || !strings.HasPrefix(res.Final.SMTPReply, "451 4.7.5") {
			t.Fatalf("final %+v, want 451 4.7.5", res.Final)
		}
	})

	t.Run("mandatory without key refused alone at RCPT", func(t *testing.T) {
		rec := &recorder{}
		addr := start(t, Options{Resolver: fake, Levels: tbl, Reinjector: rec, RcptWait: time.Second})
		res, err := miltertest.Simulate("tcp", addr, "QM4", "s@local.example", []string{"dave@mandatory.example", "alice@partner.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rcpts[0] == nil || !strings.HasPrefix(res.Rcpts[0].SMTPReply, "550 5.7.5") || res.Rcpts[1] != nil {
			t.Fatalf("rcpt replies %+v", res.Rcpts)
		}
		if res.Final.Type != gomilter.ActionAccept {
			t.Fatalf("final %+v", res.Final)
		}
		if out := alice.decrypt(t, res.Message); !bytes.Equal(out, entity(t, plain)) {
			t.Error("alice cannot read the message")
		}
		if len(rec.calls) != 0 {
			t.Errorf("re-injected %d copies", len(rec.calls))
		}
	})
}

func TestExemptions(t *testing.T) {
	fake := &dane.Fake{}
	newUser(t, "postmaster@partner.example").publish(t, fake)
	newUser(t, "alice@partner.example").publish(t, fake)
	name, _ := dane.SMIMEAName("abuse@bogus.example", false)
	fake.SetStatus(name, dns.TypeSMIMEA, dane.StatusBogus, dane.ErrBogus)
	ex, err := policy.NewExemptions(policy.DefaultExemptSenders, policy.DefaultExemptRecipients)
	must(t, err)
	tbl := policy.NewTable(policy.LevelDane)
	must(t, tbl.Set("mandatory.example", policy.LevelEncrypt))
	// RcptWait: the refusal is asserted at RCPT TO, which a loaded machine
	// must not turn into a decision at end of message.
	addr := start(t, Options{Resolver: fake, Levels: tbl, Exemptions: ex, RcptWait: 5 * time.Second})
	plain := readEML(t, "plain.eml")
	tests := []struct {
		from, rcpt string
		refused    string
		encrypted  bool
	}{
		{"s@local.example", "postmaster@partner.example", "", false}, // exempt recipient, although keyed
		{"s@local.example", "abuse@bogus.example", "", false},        // exempt: not even the bogus answer defers it
		{"", "alice@partner.example", "", false},                     // bounce: exempt sender
		{"s@local.example", "alice@partner.example", "", true},
		{"", "x@mandatory.example", "550 5.7.5", false}, // encrypt is never weakened
	}
	for _, tt := range tests {
		res, err := miltertest.Simulate("tcp", addr, "QE", tt.from, []string{tt.rcpt}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if tt.refused != "" {
			if res.Rcpts[0] == nil || !strings.HasPrefix(res.Rcpts[0].SMTPReply, tt.refused) {
				t.Errorf("<%s> -> %s: rcpt %+v, want %s", tt.from, tt.rcpt, res.Rcpts[0], tt.refused)
			}
			continue
		}
		if res.Final == nil || res.Final.Type != gomilter.ActionAccept {
			t.Errorf("<%s> -> %s: final %+v", tt.from, tt.rcpt, res.Final)
			continue
		}
		if enc := !bytes.Equal(res.Message, plain); enc != tt.encrypted {
			t.Errorf("<%s> -> %s: changed=%v, want %v", tt.from, tt.rcpt, enc, tt.encrypted)
		}
	}
}

func TestPerEntryDryRun(t *testing.T) {
	fake := &dane.Fake{}
	newUser(t, "alice@trial.example").publish(t, fake)
	tbl := policy.NewTable(policy.LevelDane)
	must(t, tbl.SetEntry("trial.example", policy.Entry{Level: policy.LevelEncrypt, DryRun: true}))
	addr := start(t, Options{Resolver: fake, Levels: tbl})
	plain := readEML(t, "plain.eml")
	for rcpt, would := range map[string]string{"alice@trial.example": "would encrypt", "nokey@trial.example": "would reject"} {
		res, err := miltertest.Simulate("tcp", addr, "QD", "s@local.example", []string{rcpt}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rcpts[0] != nil || res.Final.Type != gomilter.ActionAccept {
			t.Fatalf("%s: refused in dry run: %+v %+v", rcpt, res.Rcpts, res.Final)
		}
		_, body, _ := miltertest.SplitMessage(res.Message)
		_, orig, _ := miltertest.SplitMessage(plain)
		if !bytes.Equal(body, orig) {
			t.Errorf("%s: dry run changed the body", rcpt)
		}
		if tr := header(res.Message, TraceHeader); len(tr) != 1 || !strings.Contains(tr[0], would) {
			t.Errorf("%s: trace %q, want %q", rcpt, tr, would)
		}
	}
}

// smtpSink is a minimal SMTP server for the SMTPReinjector test.
type smtpSink struct {
	ln     net.Listener
	mu     sync.Mutex
	msgs   []reinjected
	refuse string // RCPT address to refuse
}

func newSMTPSink(t *testing.T) *smtpSink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := func(l string) { _, _ = io.WriteString(c, l+"\r\n") }
	w("220 sink")
	var cur reinjected
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			w("250-sink")
			w("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			cur = reinjected{from: strings.Trim(strings.Fields(strings.TrimSpace(line)[10:])[0], "<>")}
			w("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			a := strings.Trim(strings.TrimSpace(line)[8:], "<>")
			if a == s.refuse {
				w("550 5.1.1 no such user")
				continue
			}
			cur.rcpts = append(cur.rcpts, a)
			w("250 ok")
		case cmd == "DATA":
			w("354 go")
			var b bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			cur.msg = b.Bytes()
			s.mu.Lock()
			s.msgs = append(s.msgs, cur)
			s.mu.Unlock()
			w("250 queued")
		case cmd == "QUIT":
			w("221 bye")
			return
		default:
			w("250 ok")
		}
	}
}

func TestSMTPReinjector(t *testing.T) {
	sink := newSMTPSink(t)
	rj := &SMTPReinjector{Addr: sink.ln.Addr().String(), Helo: "gw.local.example", Timeout: 5 * time.Second}
	msg := "Subject: x\r\n\r\n.leading dot\r\nGrüße\r\n"
	if err := rj.Reinject(context.Background(), "", []string{"a@x.example", "b@y.example"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	got := sink.msgs
	sink.mu.Unlock()
	if len(got) != 1 || got[0].from != "" || strings.Join(got[0].rcpts, ",") != "a@x.example,b@y.example" || string(got[0].msg) != msg {
		t.Fatalf("sink got %+v", got)
	}
	sink.refuse = "b@y.example"
	err := rj.Reinject(context.Background(), "s@l.example", []string{"a@x.example", "b@y.example"}, strings.NewReader(msg))
	if !errors.Is(err, ErrReinject) || !strings.Contains(err.Error(), "b@y.example") {
		t.Errorf("refused recipient: err = %v", err)
	}
	// A copy that fails half-way must not be delivered truncated.
	sink.refuse = ""
	sink.mu.Lock()
	before := len(sink.msgs)
	sink.mu.Unlock()
	broken := io.MultiReader(strings.NewReader("Subject: x\r\n\r\npart one\r\n"), iotestErrReader{})
	if err := rj.Reinject(context.Background(), "", []string{"a@x.example"}, broken); !errors.Is(err, ErrReinject) {
		t.Errorf("failing copy: err = %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	sink.mu.Lock()
	after := len(sink.msgs)
	sink.mu.Unlock()
	if after != before {
		t.Errorf("a truncated copy was delivered")
	}
	dead := &SMTPReinjector{Addr: deadTCP(t), Timeout: time.Second}
	if err := dead.Reinject(context.Background(), "", []string{"a@x.example"}, strings.NewReader(msg)); !errors.Is(err, ErrReinject) {
		t.Errorf("dead listener: err = %v", err)
	}
}

func deadTCP(t *testing.T) string { return deadAddr(t) }

// TestEncryptedLabel checks that only a body that is really encrypted passes
// untouched: a label alone must not carry plaintext past "encrypt".
func TestEncryptedLabel(t *testing.T) {
	fake := &dane.Fake{}
	alice := newUser(t, "alice@partner.example")
	alice.publish(t, fake)
	tbl := policy.NewTable(policy.LevelEncrypt)
	addr := start(t, Options{Resolver: fake, Levels: tbl})

	// A real S/MIME message made by the milter itself.
	res, err := miltertest.Simulate("tcp", addr, "QL1", "s@local.example", []string{"alice@partner.example"}, readEML(t, "plain.eml"))
	if err != nil || res.Final.Type != gomilter.ActionAccept {
		t.Fatalf("%v %+v", err, res.Final)
	}
	real := res.Message
	res, err = miltertest.Simulate("tcp", addr, "QL2", "s@local.example", []string{"alice@partner.example"}, real)
	if err != nil || res.Final.Type != gomilter.ActionAccept || !bytes.Equal(res.Message, real) {
		t.Fatalf("really encrypted message changed or refused: %v %+v", err, res.Final)
	}
	// A PGP/MIME body of the right shape whose armor holds no OpenPGP
	// message is not proof of anything: it is encrypted for alice (issue 9).
	pgpFake := readEML(t, "already-encrypted.eml")
	res, err = miltertest.Simulate("tcp", addr, "QL3", "s@local.example", []string{"alice@partner.example"}, pgpFake)
	if err != nil || res.Final.Type != gomilter.ActionAccept || !isSMIME(res.Message) {
		t.Fatalf("fake PGP/MIME message not encrypted: %v %+v", err, res.Final)
	}
	if _, fakeBody, _ := miltertest.SplitMessage(pgpFake); !bytes.Contains(alice.decrypt(t, res.Message), fakeBody) {
		t.Fatal("alice cannot read the fake PGP/MIME message")
	}

	// An S/MIME body: the first line of a real CMS message, then plaintext.
	_, realBody, _ := miltertest.SplitMessage(real)
	firstLine, _, _ := bytes.Cut(realBody, []byte("\r\n"))
	smimeHead := "From: s@local.example\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + string(firstLine) + "\r\n"
	for name, msg := range map[string]string{
		"CMS start, then plaintext":           smimeHead + "The merger closes Friday.\r\n",
		"CMS start, then base64 of plaintext": smimeHead + base64.StdEncoding.EncodeToString([]byte("The merger closes Friday. The merger closes Friday!")) + "\r\n",
		"pkcs7 label, text body": "From: s@local.example\r\nTo: alice@partner.example\r\nSubject: secret\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\r\nThe merger closes Friday.\r\n",
		"multipart/encrypted label, text body": "From: s@local.example\r\nTo: alice@partner.example\r\nSubject: secret\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n--b\r\n\r\nThe merger closes Friday.\r\n--b--\r\n",
		"PGP/MIME with a third, plaintext part": "From: s@local.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n" +
			"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n" +
			"--b\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA1234\r\n-----END PGP MESSAGE-----\r\n" +
			"--b\r\nContent-Type: text/plain\r\n\r\nThe merger closes Friday.\r\n--b--\r\n",
		"PGP/MIME with plaintext in the epilogue": "From: s@local.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n" +
			"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n" +
			"--b\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA1234\r\n-----END PGP MESSAGE-----\r\n" +
			"--b--\r\nThe merger closes Friday.\r\n",
		"PGP/MIME with text after the armor": "From: s@local.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n" +
			"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n" +
			"--b\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA1234\r\n-----END PGP MESSAGE-----\r\nThe merger closes Friday.\r\n--b--\r\n",
	} {
		res, err := miltertest.Simulate("tcp", addr, "QL4", "s@local.example", []string{"alice@partner.example"}, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		// The body must have been encrypted (not passed as it came), and
		// alice must read what was sent.
		_, sentBody, _ := miltertest.SplitMessage([]byte(msg))
		if res.Final.Type != gomilter.ActionAccept || bytes.Contains(res.Message, sentBody) || !isSMIME(res.Message) {
			t.Errorf("%s: plaintext passed under a false label: %+v", name, res.Final)
			continue
		}
		if got := alice.decrypt(t, res.Message); !bytes.Contains(got, sentBody) {
			t.Errorf("%s: alice cannot read it", name)
		}
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("encryption failed") }

// TestHeaderBytesCount checks that the header section counts toward
// max_message_size: a huge header cannot make the milter hold it all, and a
// message too big to encrypt is refused, not passed in clear.
func TestHeaderBytesCount(t *testing.T) {
	fake := &dane.Fake{}
	newUser(t, "alice@partner.example").publish(t, fake)
	addr := start(t, Options{Resolver: fake, MaxMessageSize: 4096})
	var b bytes.Buffer
	for i := 0; b.Len() < 8000; i++ {
		fmt.Fprintf(&b, "X-Filler-%d: %s\r\n", i, strings.Repeat("x", 60))
	}
	msg := []byte("From: s@local.example\r\nSubject: big header\r\n" + b.String() + "\r\nshort body\r\n")
	res, err := miltertest.Simulate("tcp", addr, "QH", "s@local.example", []string{"alice@partner.example"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Final.Type != gomilter.ActionRejectWithCode || !strings.HasPrefix(res.Final.SMTPReply, "552 5.3.4") {
		t.Fatalf("final %+v, want 552 5.3.4", res.Final)
	}
}

// TestRcptWaitIsPerMessage checks that RCPT TO waits from one budget per
// message: ten recipients whose lookups hang cost the budget once (0.3s),
// not ten times (3s).
func TestRcptWaitIsPerMessage(t *testing.T) {
	addr := start(t, Options{Resolver: slowResolver{}, RcptWait: 300 * time.Millisecond, MessageTimeout: 20 * time.Second})
	s, err := gomilter.NewClient("tcp", addr).Session(gomilter.NewMacroBag())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Conn("localhost", gomilter.FamilyInet, 25, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Helo("localhost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mail("s@local.example", ""); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for i := range 10 {
		act, err := s.Rcpt(fmt.Sprintf("u%d@slow.example", i), "")
		if err != nil {
			t.Fatal(err)
		}
		if act.StopProcessing() {
			t.Errorf("rcpt %d refused although its lookup never finished: %+v", i, act)
		}
	}
	if d := time.Since(t0); d > 1500*time.Millisecond {
		t.Errorf("10 RCPT TO took %v: the waits add up per recipient", d)
	}
	if err := s.Abort(nil); err != nil {
		t.Fatal(err)
	}
}

// TestPerEntryDryRunSplit: a dry-run recipient beside a keyed one gets the
// plaintext copy, and that copy says what would have happened.
func TestPerEntryDryRunSplit(t *testing.T) {
	fake := &dane.Fake{}
	alice := newUser(t, "alice@partner.example")
	alice.publish(t, fake)
	tbl := policy.NewTable(policy.LevelDane)
	must(t, tbl.SetEntry("trial.example", policy.Entry{Level: policy.LevelEncrypt, DryRun: true}))
	rec := &recorder{}
	addr := start(t, Options{Resolver: fake, Levels: tbl, Reinjector: rec})
	plain := readEML(t, "plain.eml")
	res, err := miltertest.Simulate("tcp", addr, "QDS", "s@local.example", []string{"alice@partner.example", "nokey@trial.example"}, plain)
	if err != nil {
		t.Fatal(err)
	}
	if res.Final.Type != gomilter.ActionAccept || !isSMIME(res.Message) {
		t.Fatalf("final %+v", res.Final)
	}
	if len(rec.calls) != 1 || strings.Join(rec.calls[0].rcpts, ",") != "nokey@trial.example" {
		t.Fatalf("re-injections %+v", rec.calls)
	}
	tr := strings.Join(header(rec.calls[0].msg, TraceHeader), "|")
	if !strings.Contains(tr, "dry-run; would reject") || !strings.Contains(tr, "plaintext copy") {
		t.Errorf("plaintext copy trace %q", tr)
	}
}

// failingModifier is an MTA connection on which every change fails.
type failingModifier struct {
	gomilter.Modifier
}

func (failingModifier) Get(gomilter.MacroName) string          { return "QF" }
func (failingModifier) Protocol() gomilter.OptProtocol         { return gomilter.OptHeaderLeadingSpace }
func (failingModifier) AddHeader(string, string) error         { return errors.New("broken pipe") }
func (failingModifier) ChangeHeader(int, string, string) error { return errors.New("broken pipe") }
func (failingModifier) MaxDataSize() gomilter.DataSize         { return 0 }

// TestModificationFailureDefers: when the MTA connection refuses a change,
// end of message answers an explicit 451, in every mode.
func TestModificationFailureDefers(t *testing.T) {
	fake := &dane.Fake{}
	newUser(t, "alice@partner.example").publish(t, fake)
	trial := policy.NewTable(policy.LevelDane)
	must(t, trial.SetEntry("partner.example", policy.Entry{Level: policy.LevelEncrypt, DryRun: true}))
	for name, opts := range map[string]Options{
		"encrypt":           {Resolver: fake, Levels: policy.NewTable(policy.LevelDane)},
		"global dry run":    {Resolver: fake, Levels: policy.NewTable(policy.LevelDane), DryRun: true},
		"per-entry dry run": {Resolver: fake, Levels: trial},
	} {
		t.Run(name, func(t *testing.T) {
			opts.defaults()
			h := &handler{opts: &opts}
			m := failingModifier{}
			for _, step := range []func() (*gomilter.Response, error){
				func() (*gomilter.Response, error) { return h.MailFrom("s@local.example", "", m) },
				func() (*gomilter.Response, error) { return h.RcptTo("alice@partner.example", "", m) },
				func() (*gomilter.Response, error) { return h.Header("Subject", " x", m) },
				func() (*gomilter.Response, error) { return h.BodyChunk([]byte("body\r\n"), m) },
			} {
				if resp, err := step(); err != nil || resp.Response().Code != gomilter.RespContinue.Response().Code {
					t.Fatalf("step: %v %v", resp, err)
				}
			}
			resp, err := h.EndOfMessage(m)
			if err != nil || resp == nil || !strings.HasPrefix(string(resp.Response().Data), "451 4.") {
				t.Fatalf("EndOfMessage = %v, %v; want an explicit 451", resp, err)
			}
		})
	}
}
