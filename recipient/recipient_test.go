package recipient

import (
	"context"
	"testing"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/policy"
)

func TestOutcome(t *testing.T) {
	sec, den := dane.Result{Status: dane.StatusSecure}, dane.Result{Status: dane.StatusSecureDenial}
	bogus, ins := dane.Result{Status: dane.StatusBogus}, dane.Result{Status: dane.StatusInsecure}
	tests := []struct {
		smimea    dane.Result
		n         int
		pgp       *dane.Result
		pgpN      int
		want      policy.Outcome
		situation string
	}{
		{sec, 1, nil, 0, policy.Usable, "S/MIME key"},
		{sec, 0, nil, 0, policy.NoKey, "secure, nothing usable"},
		{den, 0, &sec, 1, policy.Usable, "OpenPGP key only"},
		{den, 0, &bogus, 0, policy.Bogus, "a forged OPENPGPKEY answer is not hidden by a denial"},
		{ins, 0, &den, 0, policy.Insecure, "insecure before no key"},
		{dane.Result{}, 0, &bogus, 0, policy.Bogus, "bogus before indeterminate"},
	}
	for _, tt := range tests {
		if got := Outcome(tt.smimea, tt.n, tt.pgp, tt.pgpN); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.situation, got, tt.want)
		}
	}
}

func TestEvaluate(t *testing.T) {
	fake := &dane.Fake{}
	name, _ := dane.SMIMEAName("b@bogus.example", false)
	fake.SetStatus(name, dns.TypeSMIMEA, dane.StatusBogus, dane.ErrBogus)
	levels := policy.NewTable(policy.LevelDane)
	if err := levels.Set("strict.example", policy.LevelEncrypt); err != nil {
		t.Fatal(err)
	}
	if err := levels.SetEntry("trial.example", policy.Entry{Level: policy.LevelEncrypt, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	ex, err := policy.NewExemptions(nil, []string{"postmaster@"})
	if err != nil {
		t.Fatal(err)
	}
	c := &Config{Resolver: fake, Levels: levels, Exemptions: ex, OpenPGP: true,
		IsLocal: func(d string) bool { return d == "local.example" }}
	tests := []struct {
		addr, sender string
		action       policy.Action
		label        string
		looked       bool
	}{
		{"a@local.example", "", policy.Plain, "local", false},
		{"postmaster@x.example", "", policy.Plain, "exempt", false},
		{"postmaster@strict.example", "", policy.Reject, "reject", true}, // encrypt is never weakened
		{"a@x.example", "mailer-daemon@", policy.Plain, "exempt", false},
		{"b@bogus.example", "", policy.TempFail, "tempfail", true},
		{"a@trial.example", "", policy.Plain, "dry-run", true},
		{"not an address", "", policy.Plain, "plain", true},
	}
	for _, tt := range tests {
		r := c.Evaluate(context.Background(), tt.addr, tt.sender)
		if r.Decision.Action != tt.action || r.Label != tt.label || r.Looked != tt.looked {
			t.Errorf("%s: %v %s looked=%v, want %v %s looked=%v", tt.addr, r.Decision.Action, r.Label, r.Looked, tt.action, tt.label, tt.looked)
		}
		if r.Decision.Action == policy.Reject || r.Decision.Action == policy.TempFail {
			if r.Decision.Reply.IsZero() {
				t.Errorf("%s: refusal without a reply", tt.addr)
			}
		}
	}
	r := c.Evaluate(context.Background(), "a@trial.example", "")
	if !r.DryRun || r.Would.Action != policy.Reject {
		t.Errorf("per-entry dry run: would %v", r.Would.Action)
	}
	if r := c.Evaluate(context.Background(), "not an address", ""); r.Err == nil || r.Outcome != policy.NoKey {
		t.Errorf("bad address: err %v outcome %v", r.Err, r.Outcome)
	}
	u := c.Unfinished(c.Prepare("a@strict.example", ""))
	if !u.Unfinished || u.Outcome != policy.Indeterminate || u.Decision.Action != policy.TempFail {
		t.Errorf("unfinished: %+v", u)
	}
	g := &Config{Resolver: c.Resolver, Levels: c.Levels, Exemptions: c.Exemptions, OpenPGP: c.OpenPGP, IsLocal: c.IsLocal, DryRun: true}
	if r := g.Evaluate(context.Background(), "a@trial.example", ""); r.DryRun || r.Decision.Action != policy.Reject {
		t.Errorf("global dry run: the decision stands, got %v dry=%v", r.Decision.Action, r.DryRun)
	}
}
