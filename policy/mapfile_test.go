package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseEntry(t *testing.T) {
	tests := []struct {
		in   string
		want Entry
		ok   bool
	}{
		{"encrypt", Entry{Level: LevelEncrypt}, true},
		{"May", Entry{Level: LevelMay}, true},
		{"dane dry-run", Entry{Level: LevelDane, DryRun: true}, true},
		{"  none   DRY-RUN ", Entry{Level: LevelNone, DryRun: true}, true},
		{"", Entry{}, false},
		{"secure", Entry{}, false},
		{"encrypt please", Entry{}, false},
		{"encrypt dry-run extra", Entry{}, false},
	}
	for _, tt := range tests {
		got, err := ParseEntry(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseEntry(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadLevel) {
			t.Errorf("ParseEntry(%q) error %v does not wrap ErrBadLevel", tt.in, err)
		}
	}
}

func TestParseMap(t *testing.T) {
	base := NewTable(LevelDane)
	if err := base.Set("inline.example", LevelMay); err != nil {
		t.Fatal(err)
	}
	good := "# partners\n\npartner.example encrypt\n.partner.example   encrypt # subdomains\nceo@bank.example encrypt\nlab.example may dry-run\n"
	tb := base.Clone()
	if err := ParseMap("good.map", strings.NewReader(good), tb); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]Match{
		"a@partner.example":   {LevelEncrypt, false, "partner.example"},
		"a@x.partner.example": {LevelEncrypt, false, ".partner.example"},
		"ceo@bank.example":    {LevelEncrypt, false, "ceo@bank.example"},
		"other@bank.example":  {LevelDane, false, ""},
		"a@lab.example":       {LevelMay, true, "lab.example"},
		"a@inline.example":    {LevelMay, false, "inline.example"},
		"a@elsewhere.example": {LevelDane, false, ""},
	} {
		if got := tb.Lookup(addr); got != want {
			t.Errorf("Lookup(%s) = %+v, want %+v", addr, got, want)
		}
	}
	if base.Has("partner.example") {
		t.Error("ParseMap changed the base table through the clone")
	}

	bad := "partner.example encrypt\nfoo.example secure\njustakey\n\n# ok\nx..y may\npartner.example may\ninline.example encrypt\n"
	err := ParseMap("bad.map", strings.NewReader(bad), base.Clone())
	var me *MapError
	if !errors.As(err, &me) {
		t.Fatalf("error %v is not a *MapError", err)
	}
	var lines []int
	for _, l := range me.Lines {
		lines = append(lines, l.Line)
	}
	if want := []int{2, 3, 6, 7, 8}; !equalInts(lines, want) {
		t.Errorf("bad lines %v, want %v (%v)", lines, want, err)
	}
	for _, s := range []string{"bad.map:2:", "secure", "bad.map:7:", "already set on line 1", "also set in the configuration file"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}

	long := "a.example " + strings.Repeat("x", 5000) + "\n"
	if err := ParseMap("long.map", strings.NewReader(long), base.Clone()); err == nil {
		t.Error("over-long line accepted")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLiveReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.map")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("partner.example encrypt\n")
	live, err := NewLive(NewTable(LevelDane), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := live.Lookup("a@partner.example"); m.Level != LevelEncrypt {
		t.Fatalf("initial map not in force: %+v", m)
	}
	// Unchanged file: no reload.
	if changed, err := live.Reload(); changed || err != nil {
		t.Errorf("Reload of unchanged file = %v, %v", changed, err)
	}
	// A good change takes effect.
	write("partner.example may\nnew.example encrypt\n")
	if changed, err := live.Reload(); !changed || err != nil {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	if m := live.Lookup("a@partner.example"); m.Level != LevelMay {
		t.Errorf("after reload: %+v", m)
	}
	// A bad change is reported by line and the last good map stays.
	write("partner.example encrypt\nbroken.example maybe\n")
	_, err = live.Reload()
	var me *MapError
	if !errors.As(err, &me) || len(me.Lines) != 1 || me.Lines[0].Line != 2 {
		t.Fatalf("Reload of bad file: %v", err)
	}
	if m := live.Lookup("a@partner.example"); m.Level != LevelMay {
		t.Errorf("bad map replaced the good one: %+v", m)
	}
	if m := live.Lookup("a@new.example"); m.Level != LevelEncrypt {
		t.Errorf("bad map replaced the good one: %+v", m)
	}
	// A missing file is an error, the map stays.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Reload(); err == nil {
		t.Error("Reload of a missing file succeeded")
	}
	if m := live.Lookup("a@new.example"); m.Level != LevelEncrypt {
		t.Errorf("missing file dropped the map: %+v", m)
	}
	// A bad map at start is an error.
	write("x encrypt\ny\n")
	if _, err := NewLive(NewTable(LevelDane), path, nil); err == nil {
		t.Error("NewLive accepted a bad map")
	}
}

func TestLiveWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.map")
	if err := os.WriteFile(path, []byte("a.example may\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	live, err := NewLive(NewTable(LevelDane), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel(t)
	defer cancel()
	go live.Watch(ctx, 10*time.Millisecond)
	if err := os.WriteFile(path, []byte("a.example encrypt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Make sure the modification time differs even on coarse file systems.
	future := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for live.Lookup("x@a.example").Level != LevelEncrypt {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the change")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestExemptions(t *testing.T) {
	e, err := NewExemptions([]string{"<>", "bounces@Lists.Example"}, []string{"postmaster@", "abuse@", "@internal.example", "ceo@bank.example"})
	if err != nil {
		t.Fatal(err)
	}
	senders := map[string]string{
		"":                      "<>",
		"<>":                    "<>",
		"bounces@lists.example": "bounces@lists.example",
		"someone@lists.example": "",
	}
	for in, want := range senders {
		if got := e.Sender(in); got != want {
			t.Errorf("Sender(%q) = %q, want %q", in, got, want)
		}
	}
	rcpts := map[string]string{
		"postmaster@partner.example":  "postmaster@",
		"PostMaster@partner.example":  "postmaster@",
		"abuse@x.example":             "abuse@",
		"anyone@internal.example":     "@internal.example",
		"anyone@sub.internal.example": "",
		"ceo@bank.example":            "ceo@bank.example",
		"cfo@bank.example":            "",
		"":                            "",
	}
	for in, want := range rcpts {
		if got := e.Recipient(in); got != want {
			t.Errorf("Recipient(%q) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range [][2][]string{{{"x"}, nil}, {nil, {"<>"}}, {nil, {"@"}}, {nil, {"a b@c"}}} {
		if _, err := NewExemptions(bad[0], bad[1]); err == nil {
			t.Errorf("NewExemptions(%q, %q) accepted", bad[0], bad[1])
		}
	}
	var none *Exemptions
	if none.Sender("") != "" || none.Recipient("postmaster@x") != "" {
		t.Error("nil Exemptions exempts")
	}
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithCancel(context.Background())
}
