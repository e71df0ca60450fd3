package address

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSplit: Split never panics; what it accepts is a non-empty UTF-8 local
// part as written and a lowercase LDH domain without a trailing dot, Cut
// finds the same local part, and splitting the joined parts again gives
// them back.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"bosun@example.com", "Hugh@EXAMPLE.com.", "user@bücher.example", "a@b..c", "@example.com",
		"user@", "\xff@example.com", "a@b@c", "x@-y.example", "x@xn--bcher-kva.example", `"a@b"@x.example`,
		"x@" + strings.Repeat("a.", 130) + "com", "x@exa mple.com", "x@ex_ample.com", "x@..", "postmaster",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		local, domain, err := Split(addr)
		cl, cd, ok := Cut(addr)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || local != "" || domain != "" {
				t.Fatalf("%q: %q, %q, %v", addr, local, domain, err)
			}
			return
		}
		if !ok || cl != local || local == "" || !utf8.ValidString(local) {
			t.Fatalf("%q: local %q, Cut %q %v", addr, local, cl, ok)
		}
		if domain != strings.ToLower(domain) || strings.HasSuffix(domain, ".") || !isLDH(domain) || len(domain) > MaxDomainLen {
			t.Fatalf("%q: domain %q", addr, domain)
		}
		if cd == domain {
			if d, err := ParseDomain(domain); err != nil || d != domain {
				t.Fatalf("%q: ParseDomain(%q) = %q, %v", addr, domain, d, err)
			}
		}
		l2, d2, err := Split(local + "@" + domain)
		if err != nil || l2 != local || d2 != domain {
			t.Fatalf("%q: again %q, %q, %v", addr, l2, d2, err)
		}
	})
}

// FuzzParseDomainPattern: an accepted pattern is normalized (parsing it
// again gives it back) and matches itself; LookupDomain of a map holding
// only it finds it for the domains it matches.
func FuzzParseDomainPattern(f *testing.F) {
	for _, s := range []string{"example.com", ".Example.com.", "..", "a..b", "a b", "bücher.example", ".x", ""} {
		f.Add(s, "mail.example.com")
	}
	f.Fuzz(func(t *testing.T, s, domain string) {
		p, err := ParseDomainPattern(s)
		if err != nil {
			return
		}
		if q, err := ParseDomainPattern(p); err != nil || q != p {
			t.Fatalf("%q: %q parses again as %q, %v", s, p, q, err)
		}
		d, err := ParseDomain(domain)
		if err != nil {
			return
		}
		_, key, ok := LookupDomain(map[string]bool{p: true}, d)
		if ok != MatchDomain(p, d) || (ok && key != p) {
			t.Fatalf("pattern %q, domain %q: LookupDomain %q %v, MatchDomain %v", p, d, key, ok, MatchDomain(p, d))
		}
	})
}
