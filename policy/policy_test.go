package policy

import (
	"errors"
	"testing"

	"github.com/danemilter/danemilter/reply"
)

func TestDecideTable(t *testing.T) {
	// The README policy table, cell by cell.
	type cell struct {
		action   Action
		status   string
		required bool
	}
	P, E := cell{action: Plain}, cell{action: Encrypt}
	table := map[Level]map[Outcome]cell{
		LevelNone: {Usable: P, NoKey: P, Insecure: P, Bogus: P, Indeterminate: P},
		LevelMay:  {Usable: E, NoKey: P, Insecure: P, Bogus: P, Indeterminate: P},
		LevelDane: {Usable: E, NoKey: P, Insecure: P,
			Bogus:         {action: TempFail, status: "4.7.5"},
			Indeterminate: {action: TempFail, status: "4.4.3"}},
		LevelEncrypt: {
			Usable:        {action: Encrypt, required: true},
			NoKey:         {action: Reject, status: "5.7.5", required: true},
			Insecure:      {action: Reject, status: "5.7.5", required: true},
			Bogus:         {action: TempFail, status: "4.7.5", required: true},
			Indeterminate: {action: TempFail, status: "4.4.3", required: true}},
	}
	for level, row := range table {
		for outcome, want := range row {
			d := Decide(level, outcome)
			if d.Action != want.action || d.Reply.Enhanced != want.status || d.Required != want.required {
				t.Errorf("Decide(%v, %v) = %+v, want %+v", level, outcome, d, want)
			}
			switch d.Action {
			case Reject:
				if !d.Reply.Permanent() {
					t.Errorf("Decide(%v, %v): reject with %v", level, outcome, d.Reply)
				}
			case TempFail:
				if !d.Reply.Temporary() {
					t.Errorf("Decide(%v, %v): tempfail with %v", level, outcome, d.Reply)
				}
			}
			if d.Reason == "" {
				t.Errorf("Decide(%v, %v): no reason", level, outcome)
			}
		}
	}
	// An unknown level fails closed, like encrypt.
	if d := Decide(Level(42), NoKey); d.Action != Reject {
		t.Errorf("unknown level: %+v", d)
	}
}

func TestCombine(t *testing.T) {
	enc := Decision{Action: Encrypt, Reason: "secure key"}
	encReq := Decision{Action: Encrypt, Required: true}
	plain := Decision{Action: Plain}
	tf := refuse(reply.KeyBogus(), false)
	rej := refuse(reply.NoUsableKey(), true)
	tests := []struct {
		name      string
		rcpts     []Recipient
		want      Action // without splitting
		wantSplit Action // with splitting
	}{
		{"none", nil, Plain, Plain},
		{"one keyed", []Recipient{{Address: "a", Decision: enc}}, Encrypt, Encrypt},
		{"two keyed", []Recipient{{Address: "a", Decision: enc}, {Address: "b", Decision: encReq}}, Encrypt, Encrypt},
		{"one plain", []Recipient{{Address: "a", Decision: plain}}, Plain, Plain},
		{"keyed and unkeyed, both optional", []Recipient{{Address: "a", Decision: enc}, {Address: "b", Decision: plain}}, Plain, Split},
		{"keyed mandatory and unkeyed", []Recipient{{Address: "a", Decision: encReq}, {Address: "b", Decision: plain}}, TempFail, Split},
		{"keyed mandatory and local", []Recipient{{Address: "a", Decision: encReq}, {Address: "l", Local: true, Decision: plain}}, TempFail, Split},
		{"keyed and local", []Recipient{{Address: "a", Decision: enc}, {Address: "l", Local: true, Decision: plain}}, Plain, Split},
		{"local with a key", []Recipient{{Address: "l", Local: true, Decision: enc}}, Plain, Plain},
		{"tempfail wins over reject", []Recipient{{Address: "a", Decision: rej}, {Address: "b", Decision: tf}}, TempFail, TempFail},
		{"all rejected", []Recipient{{Address: "a", Decision: rej}, {Address: "b", Decision: rej}}, Reject, Reject},
		{"one rejected among good ones defers", []Recipient{{Address: "a", Decision: rej}, {Address: "b", Decision: enc}}, TempFail, TempFail},
		{"tempfail", []Recipient{{Address: "a", Decision: enc}, {Address: "b", Decision: tf}}, TempFail, TempFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, split := range []bool{false, true} {
				want := tt.want
				if split {
					want = tt.wantSplit
				}
				p := Combine(tt.rcpts, split)
				if p.Action != want {
					t.Errorf("Combine(split=%v) = %+v, want %v", split, p, want)
				}
				if (p.Action == Reject || p.Action == TempFail) && p.Reply.IsZero() {
					t.Errorf("refusal without code: %+v", p)
				}
				if p.Action == Split && (len(p.EncryptTo) == 0 || len(p.PlainTo) == 0) {
					t.Errorf("split without both groups: %+v", p)
				}
			}
		})
	}
}

// TestCombineNeverLeaks checks the invariants over every combination of up to
// three recipients, with and without splitting: no plaintext to a recipient
// that requires encryption, no ciphertext to a recipient who cannot read it,
// every recipient served exactly once by an accepted plan.
func TestCombineNeverLeaks(t *testing.T) {
	var all []Recipient
	for l := LevelNone; l <= LevelEncrypt; l++ {
		for o := Indeterminate; o <= Bogus; o++ {
			all = append(all, Recipient{Address: l.String() + "/" + o.String(), Decision: Decide(l, o)})
		}
	}
	all = append(all, Recipient{Address: "local", Local: true, Decision: Decision{Action: Plain}})
	all = append(all, Recipient{Address: "local-keyed", Local: true, Decision: Decision{Action: Encrypt}})
	checked := 0
	check := func(rs []Recipient, split bool) {
		checked++
		p := Combine(rs, split)
		if p.Action == Reject || p.Action == TempFail {
			return
		}
		served := map[string]int{}
		for _, a := range p.PlainTo {
			served[a]++
		}
		for _, a := range p.EncryptTo {
			served[a]++
		}
		for _, r := range rs {
			inPlain := contains(p.PlainTo, r.Address)
			inEnc := contains(p.EncryptTo, r.Address)
			if inPlain && r.Decision.Required {
				t.Fatalf("plaintext to %s which requires encryption: %+v -> %+v", r.Address, rs, p)
			}
			if inEnc && (r.Local || r.Decision.Action != Encrypt) {
				t.Fatalf("encrypted although %s cannot read it: %+v -> %+v", r.Address, rs, p)
			}
			if !inPlain && !inEnc {
				t.Fatalf("%s not served: %+v -> %+v", r.Address, rs, p)
			}
		}
		if p.Action == Split && !split {
			t.Fatalf("split although not allowed: %+v", p)
		}
	}
	for _, split := range []bool{false, true} {
		for i := range all {
			for j := range all {
				for k := range all {
					// Distinct addresses: a transaction names each recipient once.
					if i == j || j == k || i == k {
						continue
					}
					check([]Recipient{all[i], all[j], all[k]}, split)
				}
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d combinations checked", checked)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestParseLevel(t *testing.T) {
	for _, s := range []string{"none", "may", "dane", "encrypt", "DANE"} {
		if _, err := ParseLevel(s); err != nil {
			t.Errorf("ParseLevel(%q): %v", s, err)
		}
	}
	if _, err := ParseLevel("secure"); !errors.Is(err, ErrBadLevel) {
		t.Errorf("ParseLevel(secure) err = %v", err)
	}
}

func TestTable(t *testing.T) {
	tb := NewTable(LevelDane)
	for k, l := range map[string]Level{
		"example.com": LevelEncrypt, ".example.com": LevelMay, "Boss@Example.com": LevelNone,
		".deep.example.com": LevelEncrypt, "other.example.": LevelNone,
	} {
		if err := tb.Set(k, l); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		addr  string
		want  Level
		entry string
	}{
		{"a@example.com", LevelEncrypt, "example.com"},
		{"a@EXAMPLE.com", LevelEncrypt, "example.com"},
		{"Boss@example.com", LevelNone, "Boss@example.com"},
		{"boss@example.com", LevelNone, "Boss@example.com"}, // the local part's case does not dodge an entry
		{"boss+news@example.com", LevelNone, "Boss@example.com"},
		{"a@sub.example.com", LevelMay, ".example.com"},
		{"a@x.deep.example.com", LevelEncrypt, ".deep.example.com"},
		{"a@deep.example.com", LevelMay, ".example.com"},
		{"a@other.example", LevelNone, "other.example"},
		{"a@elsewhere.org", LevelDane, ""},
		{"not-an-address", LevelDane, ""},
	}
	for _, tt := range tests {
		m := tb.Lookup(tt.addr)
		if m.Level != tt.want || m.Entry != tt.entry {
			t.Errorf("Lookup(%q) = %+v, want %v %q", tt.addr, m, tt.want, tt.entry)
		}
	}
	// Entries that differ only in case or tag: the strictest applies.
	strict := NewTable(LevelDane)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(strict.Set("ceo@bank.example", LevelEncrypt))
	must(strict.Set("CEO@bank.example", LevelMay))
	must(strict.SetEntry("trial@bank.example", Entry{Level: LevelEncrypt, DryRun: true}))
	must(strict.Set("Trial@bank.example", LevelEncrypt))
	for addr, want := range map[string]Match{
		"CEO@bank.example":         {LevelEncrypt, false, "ceo@bank.example"},
		"Ceo@Bank.Example":         {LevelEncrypt, false, "ceo@bank.example"},
		"ceo+private@bank.example": {LevelEncrypt, false, "ceo@bank.example"},
		"trial@bank.example":       {LevelEncrypt, false, "Trial@bank.example"},
		"TRIAL@bank.example":       {LevelEncrypt, false, "Trial@bank.example"},
		"cfo@bank.example":         {LevelDane, false, ""},
	} {
		if got := strict.Lookup(addr); got != want {
			t.Errorf("Lookup(%s) = %+v, want %+v", addr, got, want)
		}
	}
	for _, bad := range []string{"", ".", "@x", "a@", "a@.x", "a b", "x..y"} {
		if err := tb.Set(bad, LevelMay); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}
