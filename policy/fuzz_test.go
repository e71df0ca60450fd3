package policy

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseMap: any map file either loads, with every entry findable again,
// or is refused with a *MapError that names lines within the file.
func FuzzParseMap(f *testing.F) {
	f.Add("partner.example encrypt\n.sub.example may dry-run\nceo@bank.example encrypt # x\n")
	f.Add("bad line\n\nx..y none\n")
	f.Add("a@b none\nA@b encrypt\n")
	f.Fuzz(func(t *testing.T, src string) {
		tb := NewTable(LevelDane)
		err := ParseMap("fuzz.map", strings.NewReader(src), tb)
		lines := strings.Count(src, "\n") + 1
		if err != nil {
			var me *MapError
			if !errors.As(err, &me) {
				return // an I/O error from the scanner
			}
			for _, l := range me.Lines {
				if l.Line < 1 || l.Line > lines+1 {
					t.Fatalf("error names line %d of a %d-line file", l.Line, lines)
				}
			}
			return
		}
		for k, e := range tb.entries {
			if strings.HasPrefix(k, ".") {
				continue
			}
			m := tb.Lookup(k)
			if strings.Contains(k, "@") && m.Level < e.Level {
				t.Fatalf("entry %q (%v) looked up as %+v", k, e, m)
			}
		}
	})
}

// FuzzParseEntry: ParseEntry never panics and round-trips through String.
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{"encrypt", "may dry-run", "DANE", "none  dry-run", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEntry(s)
		if err != nil {
			return
		}
		e2, err := ParseEntry(e.String())
		if err != nil || e2 != e {
			t.Fatalf("%q -> %v -> %v, %v", s, e, e2, err)
		}
	})
}
