package policy

import (
	"errors"
	"testing"
)

func TestParseInboundEntry(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want InboundEntry
		ok   bool
	}{
		{"none", InboundEntry{Level: InboundNone}, true},
		{"report", InboundEntry{Level: InboundReport}, true},
		{"REQUIRE", InboundEntry{Level: InboundRequire}, true},
		{"require dry-run", InboundEntry{Level: InboundRequire, DryRun: true}, true},
		{"  report   DRY-RUN ", InboundEntry{Level: InboundReport, DryRun: true}, true},
		{"", InboundEntry{}, false},
		{"encrypt", InboundEntry{}, false}, // an outbound level
		{"require now", InboundEntry{}, false},
		{"require dry-run x", InboundEntry{}, false},
	} {
		got, err := ParseInboundEntry(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseInboundEntry(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadLevel) {
			t.Errorf("ParseInboundEntry(%q): %v does not wrap ErrBadLevel", tc.in, err)
		}
	}
}

func TestInboundTableLookup(t *testing.T) {
	tb := NewInboundTable(InboundReport)
	for k, v := range map[string]string{
		"bank.example":        "require",
		"ceo@partner.example": "require dry-run",
		".example.net":        "none",
		"Boss@Bank.Example":   "none", // the strictest of case variants wins: require from the domain stays for others
	} {
		e, err := ParseInboundEntry(v)
		must(t, err)
		must(t, tb.SetEntry(k, e))
	}
	if err := tb.SetEntry("not a key", InboundEntry{}); err == nil {
		t.Error("SetEntry accepted a bad key")
	}
	for _, tc := range []struct {
		from  string
		want  InboundLevel
		dry   bool
		entry string
	}{
		{"alice@bank.example", InboundRequire, false, "bank.example"},
		{"alice@BANK.example", InboundRequire, false, "bank.example"},
		{"alice@sub.bank.example", InboundReport, false, ""}, // "bank.example" does not cover subdomains
		{"ceo@partner.example", InboundRequire, true, "ceo@partner.example"},
		{"CEO+x@partner.example", InboundRequire, true, "ceo@partner.example"},
		{"other@partner.example", InboundReport, false, ""},
		{"x@mail.example.net", InboundNone, false, ".example.net"},
		{"x@example.net", InboundReport, false, ""},
		{"boss@bank.example", InboundNone, false, "Boss@bank.example"},
		{"", InboundReport, false, ""},
		{"no-at-sign", InboundReport, false, ""},
	} {
		m := tb.Lookup(tc.from)
		if m.Level != tc.want || m.DryRun != tc.dry || m.Entry != tc.entry {
			t.Errorf("Lookup(%q) = %+v, want %v dry=%v entry=%q", tc.from, m, tc.want, tc.dry, tc.entry)
		}
	}
	if tb.Default() != InboundReport || tb.Len() != 4 {
		t.Errorf("Default %v Len %d", tb.Default(), tb.Len())
	}
	if got := tb.Entries(); len(got) != 4 || got[2] != "bank.example require" {
		t.Errorf("Entries = %q", got)
	}
}

func TestDecideInbound(t *testing.T) {
	type want struct {
		action Action
		hold   bool
		status string
	}
	plain := want{action: Plain}
	for _, tc := range []struct {
		level InboundLevel
		o     InboundOutcome
		hold  bool
		want  want
	}{
		{InboundNone, InboundNoPass, false, plain},
		{InboundReport, InboundNoPass, false, plain},
		{InboundReport, InboundBogus, true, plain},
		{InboundReport, InboundTooBig, false, plain},
		{InboundRequire, InboundPass, false, plain},
		{InboundRequire, InboundPass, true, plain},
		{InboundRequire, InboundNoPass, false, want{Reject, false, "5.7.1"}},
		{InboundRequire, InboundNoPass, true, want{Plain, true, "5.7.1"}},
		{InboundRequire, InboundTooBig, false, want{Reject, false, "5.3.4"}},
		{InboundRequire, InboundTooBig, true, want{Plain, true, "5.3.4"}},
		// A DNS failure or an internal error defers, held or not: the
		// retry can pass, and nothing is lost.
		{InboundRequire, InboundIndeterminate, false, want{TempFail, false, "4.4.3"}},
		{InboundRequire, InboundIndeterminate, true, want{TempFail, false, "4.4.3"}},
		{InboundRequire, InboundBogus, false, want{TempFail, false, "4.7.5"}},
		{InboundRequire, InboundBogus, true, want{TempFail, false, "4.7.5"}},
		{InboundRequire, InboundError, true, want{TempFail, false, "4.3.0"}},
	} {
		d := DecideInbound(tc.level, tc.o, tc.hold)
		if d.Action != tc.want.action || d.Hold != tc.want.hold || d.Reply.Enhanced != tc.want.status {
			t.Errorf("DecideInbound(%v, %v, hold=%v) = %+v, want %+v", tc.level, tc.o, tc.hold, d, tc.want)
		}
		if (d.Action == Reject) != d.Reply.Permanent() && !d.Hold {
			t.Errorf("DecideInbound(%v, %v): action %v with reply %v", tc.level, tc.o, d.Action, d.Reply)
		}
		if d.Reason == "" {
			t.Errorf("DecideInbound(%v, %v): no reason", tc.level, tc.o)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestInboundTableStrictest(t *testing.T) {
	tb := NewInboundTable(InboundReport)
	for k, s := range map[string]string{"bank.example": "require", "dry.example": "require dry-run", "quiet.example": "none"} {
		e, err := ParseInboundEntry(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.SetEntry(k, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		addrs []string
		want  InboundMatch
		from  string
	}{
		{nil, InboundMatch{Level: InboundReport}, ""},
		{[]string{"a@quiet.example"}, InboundMatch{Level: InboundNone, Entry: "quiet.example"}, "a@quiet.example"},
		{[]string{"a@quiet.example", "b@other.example"}, InboundMatch{Level: InboundReport}, "b@other.example"},
		{[]string{"a@other.example", "b@c.example"}, InboundMatch{Level: InboundReport}, "a@other.example"},
		{[]string{"a@dry.example", "b@bank.example", "c@quiet.example"}, InboundMatch{Level: InboundRequire, Entry: "bank.example"}, "b@bank.example"},
		{[]string{"b@bank.example", "a@dry.example"}, InboundMatch{Level: InboundRequire, Entry: "bank.example"}, "b@bank.example"},
		{[]string{"a@other.example", "a@dry.example"}, InboundMatch{Level: InboundRequire, DryRun: true, Entry: "dry.example"}, "a@dry.example"},
	} {
		if m, from := tb.Strictest(tt.addrs); m != tt.want || from != tt.from {
			t.Errorf("%q: %+v %q, want %+v %q", tt.addrs, m, from, tt.want, tt.from)
		}
	}
}

func TestInboundDecisionEffect(t *testing.T) {
	for _, tt := range []struct {
		o    InboundOutcome
		hold bool
		want string
	}{
		{InboundPass, true, ""}, {InboundNoPass, false, "reject"}, {InboundNoPass, true, "hold"},
		{InboundBogus, true, "tempfail"}, {InboundTooBig, false, "reject"},
	} {
		if got := DecideInbound(InboundRequire, tt.o, tt.hold).Effect(); got != tt.want {
			t.Errorf("%s hold=%v: %q, want %q", tt.o, tt.hold, got, tt.want)
		}
	}
	if got := DecideInbound(InboundReport, InboundNoPass, true).Effect(); got != "" {
		t.Errorf("report: %q", got)
	}
}
