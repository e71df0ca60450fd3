package address

import (
	"errors"
	"maps"
	"slices"
	"testing"
)

func TestParseDomain(t *testing.T) {
	for _, tt := range []struct {
		in, want, pattern string // want "" and pattern "": refused
	}{
		{"example.com", "example.com", "example.com"},
		{"Example.COM.", "example.com", "example.com"},
		{"bücher.example", "bücher.example", "bücher.example"},
		{"localhost", "localhost", "localhost"},
		{".example.com", "", ".example.com"},
		{".Example.com.", "", ".example.com"},
		{"", "", ""},
		{".", "", ""},
		{"..", "", ""},
		{"..example.com", "", ""},
		{"example..com", "", ""},
		{"example.com..", "", ""},
		{" example.com", "", ""},
		{"exa mple.com", "", ""},
		{"exa\tmple.com", "", ""},
		{"a@example.com", "", ""},
		{"example.com/x", "", ""},
		{"example.com:25", "", ""},
		{`example\com`, "", ""},
		{"a,b", "", ""},
		{"a;b", "", ""},
		{`"a"`, "", ""},
		{"<a>", "", ""},
		{"(a)", "", ""},
		{"[192.0.2.1]", "", ""},
	} {
		got, err := ParseDomain(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("ParseDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if err != nil && !errors.Is(err, ErrInvalidDomain) {
			t.Errorf("ParseDomain(%q): %v does not wrap ErrInvalidDomain", tt.in, err)
		}
		got, err = ParseDomainPattern(tt.in)
		if got != tt.pattern || (err == nil) != (tt.pattern != "") {
			t.Errorf("ParseDomainPattern(%q) = %q, %v; want %q", tt.in, got, err, tt.pattern)
		}
		var de *DomainError
		if err != nil && (!errors.As(err, &de) || de.Text != tt.in) {
			t.Errorf("ParseDomainPattern(%q): %v is not a *DomainError for the input", tt.in, err)
		}
	}
}

func TestLookupDomain(t *testing.T) {
	m := map[string]int{"example.com": 1, ".example.com": 2, ".deep.example.com": 3, ".org": 4, "a@example.com": 5}
	for _, tt := range []struct {
		domain, key string
		v           int
	}{
		{"example.com", "example.com", 1},
		{"EXAMPLE.com.", "example.com", 1},
		{"mail.example.com", ".example.com", 2},
		{"a.b.example.com", ".example.com", 2},
		{"deep.example.com", ".example.com", 2}, // .deep covers below deep only
		{"x.deep.example.com", ".deep.example.com", 3},
		{"example.org", ".org", 4},
		{"org", "", 0},
		{"example.net", "", 0},
		{"", "", 0},
		{"notexample.com", "", 0},
	} {
		v, key, ok := LookupDomain(m, NormalizeDomain(tt.domain))
		if v != tt.v || key != tt.key || ok != (tt.key != "") {
			t.Errorf("LookupDomain(%q) = %d, %q, %v; want %d, %q", tt.domain, v, key, ok, tt.v, tt.key)
		}
		// It agrees with MatchDomain: the longest covering pattern.
		var want string
		for _, p := range slices.Sorted(maps.Keys(m)) {
			if MatchDomain(p, NormalizeDomain(tt.domain)) && len(p) > len(want) {
				want = p
			}
		}
		if key != want {
			t.Errorf("LookupDomain(%q) key %q, MatchDomain's longest %q", tt.domain, key, want)
		}
	}
}

func TestNormalizeAndValidDomain(t *testing.T) {
	for _, tt := range []struct {
		in, norm string
		valid    bool
	}{
		{"Example.COM.", "example.com", false}, // valid only once normalized
		{"example.com", "example.com", true},
		{"example.com..", "example.com.", false},
		{"EXAMPLE.COM", "example.com", true},
		{"", "", false},
		{".", "", false},
	} {
		if got := NormalizeDomain(tt.in); got != tt.norm {
			t.Errorf("NormalizeDomain(%q) = %q, want %q", tt.in, got, tt.norm)
		}
		if got := ValidDomain(tt.in); got != tt.valid {
			t.Errorf("ValidDomain(%q) = %v, want %v", tt.in, got, tt.valid)
		}
	}
}

func TestMatchDomain(t *testing.T) {
	for _, tt := range []struct {
		pattern, domain string
		want            bool
	}{
		{"example.com", "example.com", true},
		{"example.com", "mail.example.com", false},
		{".example.com", "mail.example.com", true},
		{".example.com", "example.com", false},
		{".example.com", "badexample.com", false},
		{"", "", true},
	} {
		if got := MatchDomain(tt.pattern, tt.domain); got != tt.want {
			t.Errorf("MatchDomain(%q, %q) = %v", tt.pattern, tt.domain, got)
		}
	}
}
