package milter

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/verify"

	"github.com/danemilter/danemilter/milter/miltertest"
)

// fakeVerifier returns report (or err) and keeps the messages it was given.
type fakeVerifier struct {
	mu     sync.Mutex
	report verify.Report
	err    error
	// cutShort returns the report with context.DeadlineExceeded, as
	// Verify does when its context ends midway.
	cutShort bool
	got      [][]byte
}

func (f *fakeVerifier) Verify(_ context.Context, msg []byte) (*verify.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, append([]byte(nil), msg...))
	if f.err != nil {
		return nil, f.err
	}
	r := f.report
	if f.cutShort {
		return &r, context.DeadlineExceeded
	}
	return &r, nil
}

func (f *fakeVerifier) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

const ourID = "mx.local.example"

// inboundMsg is a message from bank.example to a local user, with two
// forged Authentication-Results fields of ours around a genuine one of
// another host.
const inboundMsg = "Authentication-Results: mx.local.example; smime=pass\r\n" +
	"Received: from relay.example by mx.local.example\r\n" +
	"Authentication-Results: relay.example; spf=pass smtp.mailfrom=bank.example\r\n" +
	"authentication-results: (comment) MX.Local.Example;\r\n smime=pass body.smime-identifier=ceo@bank.example\r\n" +
	"DANE-OpenPGP-Result: mx.local.example; openpgp=pass\r\n" +
	"From: Bank <ceo@bank.example>\r\n" +
	"To: user@local.example\r\n" +
	"Subject: statement\r\n" +
	"\r\n" +
	"Hello.\r\n"

func unsignedReport(from string) verify.Report {
	return verify.Report{From: from}
}

func passReport(from string) verify.Report {
	return verify.Report{From: from, Signatures: []verify.Signature{{Method: verify.MethodSMIME, Part: "1", Result: verify.ResultPass,
		Valid: true, Binding: verify.BindingBound, Signer: from, Record: "SMIMEA 3 0 0"}}}
}

func bindingReport(from string, b verify.Binding, r verify.Result) verify.Report {
	return verify.Report{From: from, Signatures: []verify.Signature{{Method: verify.MethodSMIME, Part: "1", Result: r,
		Valid: true, Binding: b, Signer: from}}}
}

// inboundOpts are Options for the inbound tests: local.example is local,
// Postfix's submission service is outbound.
func inboundOpts(v Verifier, senders map[string]string) Options {
	tb := policy.NewInboundTable(policy.InboundReport)
	for k, s := range senders {
		e, err := policy.ParseInboundEntry(s)
		if err != nil {
			panic(err)
		}
		if err := tb.SetEntry(k, e); err != nil {
			panic(err)
		}
	}
	return Options{Resolver: &dane.Fake{}, Levels: policy.NewTable(policy.LevelDane), Verifier: v, Inbound: tb, AuthservID: ourID,
		IsLocal:   func(d string) bool { return d == "local.example" },
		Direction: DirectionRules{OutboundDaemons: []string{"ORIGINATING", "MSA"}, OutboundNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
}

// mtas are the two MTAs the inbound tests play: a message from a remote
// client to the MX service.
var mtas = []struct {
	name string
	mta  miltertest.MTA
}{
	{"postfix", miltertest.Postfix("smtpd", "198.51.100.7")},
	{"sendmail", miltertest.Sendmail("MTA", "2001:db8::7")},
}

func simulate(t *testing.T, addr string, mta miltertest.MTA, rcpts []string, msg string) *miltertest.Result {
	t.Helper()
	res, err := mta.Simulate("tcp", addr, "QIN1", "bounce@bank.example", rcpts, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func authResultsOf(msg []byte) []string { return header(msg, "Authentication-Results") }

// TestForgedAuthResultsRemoved: every Authentication-Results field with
// our authserv-id goes (case-insensitive, after a comment, folded), in
// both directions and whatever the level; other hosts' fields stay.
func TestForgedAuthResultsRemoved(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mta     miltertest.MTA
		senders map[string]string
		calls   int
	}{
		{"inbound report postfix", miltertest.Postfix("smtpd", "198.51.100.7"), nil, 1},
		{"inbound report sendmail", miltertest.Sendmail("MTA", "2001:db8::7"), nil, 1},
		{"inbound none", miltertest.Postfix("smtpd", "198.51.100.7"), map[string]string{"bank.example": "none"}, 0},
		{"outbound submission postfix", miltertest.Postfix("ORIGINATING", "198.51.100.7"), nil, 0},
		{"outbound MSA sendmail", miltertest.Sendmail("MSA", "2001:db8::7"), nil, 0},
		{"outbound network", miltertest.Postfix("smtpd", "127.0.0.1"), nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &fakeVerifier{report: unsignedReport("ceo@bank.example")}
			addr := start(t, inboundOpts(v, tc.senders))
			res := simulate(t, addr, tc.mta, []string{"user@local.example"}, inboundMsg)
			if res.Final.Type != gomilter.ActionAccept {
				t.Fatalf("final %+v", res.Final)
			}
			var kept []string
			for _, a := range authResultsOf(res.Message) {
				if !verify.IsOurs(a, ourID) {
					kept = append(kept, a)
				}
			}
			if !slices.Equal(kept, []string{"relay.example; spf=pass smtp.mailfrom=bank.example"}) {
				t.Errorf("other hosts' fields %q", kept)
			}
			for _, a := range authResultsOf(res.Message) {
				if verify.IsOurs(a, ourID) && strings.Contains(a, "ceo@bank.example") {
					t.Errorf("forged field kept: %q", a)
				}
			}
			// Deleted as the 2nd and 1st occurrence, highest first.
			var dels []uint32
			for _, m := range res.Modifications {
				if m.Type == gomilter.ActionChangeHeader && strings.EqualFold(m.HeaderName, "Authentication-Results") && m.HeaderValue == "" {
					dels = append(dels, m.HeaderIndex)
				}
			}
			if !slices.Equal(dels, []uint32{3, 1}) {
				t.Errorf("deleted indices %v, want [3 1]", dels)
			}
			for _, o := range header(res.Message, verify.FieldOpenPGP) {
				if strings.Contains(o, "openpgp=pass") {
					t.Errorf("forged %s kept: %q", verify.FieldOpenPGP, o)
				}
			}
			if v.calls() != tc.calls {
				t.Errorf("verifier called %d times, want %d", v.calls(), tc.calls)
			}
			if !strings.HasSuffix(string(res.Message), "\r\n\r\nHello.\r\n") {
				t.Errorf("body changed: %q", res.Message)
			}
		})
	}
}

// TestInboundVerifiesWholeMessage: the verifier sees the message as
// received, header fields and body, and the report's fields go to the top.
func TestInboundVerifiesWholeMessage(t *testing.T) {
	for _, m := range mtas {
		t.Run(m.name, func(t *testing.T) {
			v := &fakeVerifier{report: passReport("ceo@bank.example")}
			addr := start(t, inboundOpts(v, nil))
			res := simulate(t, addr, m.mta, []string{"user@local.example"}, inboundMsg)
			if res.Final.Type != gomilter.ActionAccept || v.calls() != 1 {
				t.Fatalf("final %+v, %d verifications", res.Final, v.calls())
			}
			if got := string(v.got[0]); got != inboundMsg {
				t.Errorf("verifier got\n%q\nwant\n%q", got, inboundMsg)
			}
			r := v.report
			fields := r.Fields(ourID)
			hdrs, _, err := miltertest.SplitMessage(res.Message)
			must(t, err)
			for i, f := range fields {
				if i >= len(hdrs) || hdrs[i].Name != f.Name || mimeentity.UnfoldValue(hdrs[i].Value) != f.Value {
					t.Fatalf("header field %d is %+v, want %+v at the top", i, hdrs[min(i, len(hdrs)-1)], f)
				}
			}
			if !strings.EqualFold(hdrs[0].Name, "Authentication-Results") {
				t.Errorf("first field %q, want Authentication-Results", hdrs[0].Name)
			}
		})
	}
}

// TestInboundRequire: a require sender without a pass is refused (550
// 5.7.1), held (quarantine) with require_action = hold, deferred when
// the MTA cannot hold, and only announced in dry run; DNS failures defer.
func TestInboundRequire(t *testing.T) {
	noQuarantine := gomilter.OptAddHeader | gomilter.OptChangeBody | gomilter.OptAddRcpt | gomilter.OptRemoveRcpt | gomilter.OptChangeHeader | gomilter.OptSetMacros
	for _, tc := range []struct {
		name    string
		report  verify.Report
		verr    error
		senders map[string]string
		hold    bool
		dryRun  bool
		actions gomilter.OptAction
		reply   string // SMTP reply prefix, "" for accept
		held    bool
		trace   string
	}{
		{name: "pass", report: passReport("ceo@bank.example"), senders: map[string]string{"bank.example": "require"}},
		{name: "unsigned", report: unsignedReport("ceo@bank.example"), senders: map[string]string{"bank.example": "require"}, reply: "550 5.7.1"},
		{name: "not bound", report: bindingReport("ceo@bank.example", verify.BindingNoRecord, verify.ResultPolicy),
			senders: map[string]string{"bank.example": "require"}, reply: "550 5.7.1"},
		{name: "address entry", report: unsignedReport("ceo@bank.example"), senders: map[string]string{"ceo@bank.example": "require"}, reply: "550 5.7.1"},
		{name: "report", report: unsignedReport("ceo@bank.example"), senders: map[string]string{"other.example": "require"}},
		{name: "dns indeterminate", report: bindingReport("ceo@bank.example", verify.BindingIndeterminate, verify.ResultTempError),
			senders: map[string]string{"bank.example": "require"}, reply: "451 4.4.3"},
		{name: "dns indeterminate, hold", report: bindingReport("ceo@bank.example", verify.BindingIndeterminate, verify.ResultTempError),
			senders: map[string]string{"bank.example": "require"}, hold: true, reply: "451 4.4.3"},
		{name: "dns bogus", report: bindingReport("ceo@bank.example", verify.BindingBogus, verify.ResultPermError),
			senders: map[string]string{"bank.example": "require"}, reply: "451 4.7.5"},
		{name: "verifier error", verr: errors.New("boom"), senders: map[string]string{"bank.example": "require"}, reply: "451 4.3.0"},
		{name: "verifier error, report", verr: errors.New("boom")},
		{name: "hold", report: unsignedReport("ceo@bank.example"), senders: map[string]string{"bank.example": "require"}, hold: true, held: true},
		{name: "hold not offered", report: unsignedReport("ceo@bank.example"), senders: map[string]string{"bank.example": "require"}, hold: true,
			actions: noQuarantine, reply: "451 4.3.0"},
		{name: "entry dry run", report: unsignedReport("ceo@bank.example"), senders: map[string]string{"bank.example": "require dry-run"},
			trace: "dry-run; would reject (message not signed by the sender's DNS-published key)"},
		{name: "global dry run", report: unsignedReport("ceo@bank.example"), senders: map[string]string{"bank.example": "require"}, dryRun: true,
			trace: "dry-run; would reject (message not signed by the sender's DNS-published key)"},
		{name: "global dry run, hold", report: unsignedReport("ceo@bank.example"), senders: map[string]string{"bank.example": "require"}, dryRun: true,
			hold: true, trace: "dry-run; would hold (message not signed by the sender's DNS-published key)"},
	} {
		for _, m := range mtas {
			t.Run(tc.name+"/"+m.name, func(t *testing.T) {
				v := &fakeVerifier{report: tc.report, err: tc.verr}
				opts := inboundOpts(v, tc.senders)
				opts.RequireHold, opts.DryRun = tc.hold, tc.dryRun
				addr := start(t, opts)
				mta := m.mta
				mta.Actions = tc.actions
				res := simulate(t, addr, mta, []string{"user@local.example"}, inboundMsg)
				if tc.reply != "" {
					if res.Final.Type != gomilter.ActionRejectWithCode || !strings.HasPrefix(res.Final.SMTPReply, tc.reply) {
						t.Fatalf("final %+v, want %s", res.Final, tc.reply)
					}
					return
				}
				if res.Final.Type != gomilter.ActionAccept {
					t.Fatalf("final %+v, want accept", res.Final)
				}
				if (res.Quarantine != "") != tc.held {
					t.Errorf("quarantine %q, want held=%v", res.Quarantine, tc.held)
				}
				if tr := header(res.Message, TraceHeader); tc.trace != "" && !slices.Contains(tr, tc.trace) {
					t.Errorf("trace %q, want %q", tr, tc.trace)
				} else if tc.trace == "" && len(tr) > 0 && !tc.dryRun {
					t.Errorf("trace %q, want none", tr)
				}
			})
		}
	}
}

// TestInboundFromDodges: a require entry cannot be dodged by a From with
// several addresses, several From fields, or the address in the display
// name only: the strictest entry among the addresses shown applies.
func TestInboundFromDodges(t *testing.T) {
	for _, from := range []string{
		"From: ceo@bank.example, other@elsewhere.example\r\n",
		"From: other@elsewhere.example\r\nFrom: ceo@bank.example\r\n",
		"From: \"ceo@bank.example\" <other@elsewhere.example>\r\n",
		"From: CEO@BANK.EXAMPLE\r\n",
		"From: ceo@bank.example (\r\n",
	} {
		// Unsigned, or signed by a key bound to the other address (the
		// review's attack: a signature bound to evil.example does not
		// satisfy bank.example's require entry).
		for _, rep := range []verify.Report{unsignedReport(""), passReport("other@elsewhere.example")} {
			v := &fakeVerifier{report: rep}
			addr := start(t, inboundOpts(v, map[string]string{"bank.example": "require"}))
			msg := from + "To: user@local.example\r\nSubject: x\r\n\r\nHello.\r\n"
			res := simulate(t, addr, mtas[0].mta, []string{"user@local.example"}, msg)
			if res.Final.Type != gomilter.ActionRejectWithCode || !strings.HasPrefix(res.Final.SMTPReply, "550 5.7.1") {
				t.Errorf("%q, report from %q passing=%v: final %+v, want 550 5.7.1", from, rep.From, rep.Pass(), res.Final)
			}
		}
	}
	// The same pass, bound to the address whose entry applies, passes.
	v := &fakeVerifier{report: passReport("ceo@bank.example")}
	addr := start(t, inboundOpts(v, map[string]string{"bank.example": "require"}))
	res := simulate(t, addr, mtas[0].mta, []string{"user@local.example"}, "From: \"Bank\" <ceo@bank.example>\r\nTo: user@local.example\r\n\r\nHello.\r\n")
	if res.Final.Type != gomilter.ActionAccept {
		t.Errorf("bound pass: final %+v", res.Final)
	}
}

// TestInboundCutShort: a verification that its deadline cut short is "try
// later" (temperror; a require sender is deferred 451), never "unsigned"
// (which would refuse it for good).
func TestInboundCutShort(t *testing.T) {
	for _, tc := range []struct {
		senders map[string]string
		reply   string
	}{
		{map[string]string{"bank.example": "require"}, "451 4.4.3"},
		{nil, ""},
	} {
		v := &fakeVerifier{report: unsignedReport("ceo@bank.example"), cutShort: true}
		addr := start(t, inboundOpts(v, tc.senders))
		res := simulate(t, addr, mtas[0].mta, []string{"user@local.example"}, inboundMsg)
		if tc.reply != "" {
			if !strings.HasPrefix(res.Final.SMTPReply, tc.reply) {
				t.Errorf("require: final %+v, want %s", res.Final, tc.reply)
			}
			continue
		}
		if res.Final.Type != gomilter.ActionAccept {
			t.Fatalf("report: final %+v", res.Final)
		}
		found := false
		for _, a := range authResultsOf(res.Message) {
			found = found || strings.Contains(a, "smime=temperror")
		}
		if !found {
			t.Errorf("report: Authentication-Results %q, want smime=temperror", authResultsOf(res.Message))
		}
	}
}

// TestInboundTooBig: a message over max_verify_size is not verified; a
// require sender is refused 552 5.3.4, a report sender passes.
func TestInboundTooBig(t *testing.T) {
	for _, tc := range []struct {
		senders map[string]string
		reply   string
	}{
		{map[string]string{"bank.example": "require"}, "552 5.3.4"},
		{nil, ""},
	} {
		v := &fakeVerifier{report: passReport("ceo@bank.example")}
		opts := inboundOpts(v, tc.senders)
		opts.MaxVerifySize = 100
		addr := start(t, opts)
		res := simulate(t, addr, mtas[0].mta, []string{"user@local.example"}, inboundMsg)
		if v.calls() != 0 {
			t.Errorf("verifier called for a message over max_verify_size")
		}
		if tc.reply == "" {
			if res.Final.Type != gomilter.ActionAccept {
				t.Errorf("report: final %+v", res.Final)
			}
			continue
		}
		if !strings.HasPrefix(res.Final.SMTPReply, tc.reply) {
			t.Errorf("require: final %+v, want %s", res.Final, tc.reply)
		}
	}
}

// TestInboundLogLine: the message line names the direction and its rule;
// an inbound message gets one "inbound" line with the outcome and action.
func TestInboundLogLine(t *testing.T) {
	var logs logBuf
	v := &fakeVerifier{report: unsignedReport("ceo@bank.example")}
	opts := inboundOpts(v, map[string]string{"bank.example": "require"})
	opts.Logger = jsonLogger(&logs)
	addr := start(t, opts)
	res := simulate(t, addr, mtas[0].mta, []string{"user@local.example"}, inboundMsg)
	if res.Final.Type != gomilter.ActionRejectWithCode {
		t.Fatalf("final %+v", res.Final)
	}
	in := logs.lines(t, "inbound")
	if len(in) != 1 {
		t.Fatalf("%d inbound lines:\n%s", len(in), logs.String())
	}
	for k, want := range map[string]string{"direction": "inbound", "rule": "default", "header_from": "ceo@bank.example", "level": "require",
		"entry": "bank.example", "outcome": "no-pass", "action": "reject", "status": "5.7.1", "queue_id": "QIN1"} {
		if got := fmt.Sprint(in[0][k]); got != want {
			t.Errorf("inbound line %s=%q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"results", "reason", "from"} {
		if _, ok := in[0][k]; !ok {
			t.Errorf("inbound line has no %s", k)
		}
	}

	// An outbound message: no inbound line, the message line says why.
	logs2 := logBuf{}
	opts.Logger = jsonLogger(&logs2)
	addr = start(t, opts)
	simulate(t, addr, miltertest.Postfix("ORIGINATING", "198.51.100.7"), []string{"user@local.example"}, inboundMsg)
	if n := len(logs2.lines(t, "inbound")); n != 0 {
		t.Errorf("%d inbound lines for an outbound message", n)
	}
	msgs := logs2.lines(t, "message")
	if len(msgs) != 1 || msgs[0]["direction"] != "outbound" || msgs[0]["rule"] != "outbound_daemons" || fmt.Sprint(msgs[0]["forged_auth_results_removed"]) != "3" {
		t.Errorf("message lines %v", msgs)
	}
}

// TestInboundAndOutboundInOneMessage: an inbound message to a local and a
// remote recipient is verified, and the remote recipient is still
// encrypted (direction never turns encryption off): header changes first,
// the body after, one final reply.
func TestInboundAndOutboundInOneMessage(t *testing.T) {
	fake := &dane.Fake{}
	alice := newUser(t, "alice@partner.example")
	alice.publish(t, fake)
	v := &fakeVerifier{report: passReport("ceo@bank.example")}
	opts := inboundOpts(v, nil)
	opts.Resolver = fake
	addr := start(t, opts)
	// Alone: encrypted for alice although the message is inbound.
	res := simulate(t, addr, mtas[0].mta, []string{"alice@partner.example"}, inboundMsg)
	if res.Final.Type != gomilter.ActionAccept || v.calls() != 1 {
		t.Fatalf("final %+v, %d verifications", res.Final, v.calls())
	}
	if ct := header(res.Message, "Content-Type"); len(ct) != 1 || !strings.Contains(ct[0], "pkcs7-mime") {
		t.Fatalf("not encrypted: Content-Type %q", ct)
	}
	body := false
	for _, m := range res.Modifications {
		if m.Type == gomilter.ActionReplaceBody {
			body = true
		} else if body {
			t.Errorf("%v after the body replacement", m)
		}
	}
	if ar := authResultsOf(res.Message); len(ar) != 2 || !strings.Contains(ar[0], "smime=pass") || !strings.HasPrefix(ar[1], "relay.example;") {
		t.Errorf("Authentication-Results %q", ar)
	}
	_ = alice.decrypt(t, res.Message)
}

// TestInboundRealVerifier: the daemon's own verifier over a fake resolver:
// an unsigned message gets "smime=none" at the top, and a require sender
// is refused.
func TestInboundRealVerifier(t *testing.T) {
	fake := &dane.Fake{}
	for _, tc := range []struct {
		senders map[string]string
		reply   string
	}{{nil, ""}, {map[string]string{"bank.example": "require"}, "550 5.7.1"}} {
		opts := inboundOpts(&verify.Verifier{Resolver: fake}, tc.senders)
		addr := start(t, opts)
		for _, m := range mtas {
			res := simulate(t, addr, m.mta, []string{"user@local.example"}, inboundMsg)
			if tc.reply != "" {
				if !strings.HasPrefix(res.Final.SMTPReply, tc.reply) {
					t.Errorf("%s: final %+v, want %s", m.name, res.Final, tc.reply)
				}
				continue
			}
			hdrs, _, err := miltertest.SplitMessage(res.Message)
			must(t, err)
			if res.Final.Type != gomilter.ActionAccept || hdrs[0].Name != "Authentication-Results" ||
				!strings.HasPrefix(mimeentity.UnfoldValue(hdrs[0].Value), ourID+"; smime=none") {
				t.Errorf("%s: final %+v, first field %+v", m.name, res.Final, hdrs[0])
			}
		}
	}
}

// harvestLog records what the milter harvests.
type harvestLog struct {
	mu      sync.Mutex
	entries []harvest.Entry
}

func (l *harvestLog) Harvest(e harvest.Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
}

// TestHarvestSeenWhenSigned: a harvested entry is dated by the signature's
// signing time (never later than now), so that replaying an old signed
// message cannot replace the capabilities a newer signature announced.
func TestHarvestSeenWhenSigned(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		signed time.Time
		want   time.Time
	}{
		{"signed a year ago", now.AddDate(-1, 0, 0), now.AddDate(-1, 0, 0)},
		{"no signing time", time.Time{}, now},
		{"signed in the future", now.Add(time.Hour), now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := passReport("ceo@bank.example")
			rep.Signatures[0].Certificate = []byte{0x30, 0x00}
			rep.Signatures[0].SigningTime = tc.signed
			v := &fakeVerifier{report: rep}
			opts := inboundOpts(v, nil)
			var hl harvestLog
			opts.Harvester = &hl
			opts.Now = func() time.Time { return now }
			addr := start(t, opts)
			if res := simulate(t, addr, mtas[0].mta, []string{"user@local.example"}, inboundMsg); res.Final.Type != gomilter.ActionAccept {
				t.Fatalf("final %+v", res.Final)
			}
			hl.mu.Lock()
			defer hl.mu.Unlock()
			if len(hl.entries) != 1 || !hl.entries[0].LastSeen.Equal(tc.want) {
				t.Fatalf("harvested %+v, want one entry seen at %v", hl.entries, tc.want)
			}
		})
	}
}
