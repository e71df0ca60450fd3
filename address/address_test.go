package address

import (
	"errors"
	"strings"
	"testing"
)

// longDomain is MaxDomainLen octets: three labels of 63 and one of 61.
var longDomain = strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61)

func TestSplit(t *testing.T) {
	tests := []struct {
		addr, local, domain string
	}{
		{"bosun@example.com", "bosun", "example.com"},
		{"bosun@EXAMPLE.Com", "bosun", "example.com"},
		{"bosun@example.com.", "bosun", "example.com"},
		{"Bosun@Example.COM.", "Bosun", "example.com"}, // the local part keeps its case
		{"user@bücher.example", "user", "xn--bcher-kva.example"},
		{"user@BÜCHER.example", "user", "xn--bcher-kva.example"},
		{"user@xn--bcher-kva.example", "user", "xn--bcher-kva.example"},
		{"user@XN--BCHER-KVA.example", "user", "xn--bcher-kva.example"},
		{"jörg@example.com", "jörg", "example.com"},
		{"a@b@example.com", "a@b", "example.com"}, // split at the last @
		{`"a@b"@example.com`, `"a@b"`, "example.com"},
		{"x@localhost", "x", "localhost"},
		{strings.Repeat("a", 256) + "@example.com", strings.Repeat("a", 256), "example.com"},
		{"x@" + longDomain, "x", longDomain},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			local, domain, err := Split(tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			if local != tc.local || domain != tc.domain {
				t.Errorf("got %q, %q; want %q, %q", local, domain, tc.local, tc.domain)
			}
		})
	}
}

func TestSplitInvalid(t *testing.T) {
	tests := []struct {
		name, addr, reason string
	}{
		{"no at", "bosun.example.com", `"bosun.example.com" has no @`},
		{"empty", "", `"" has no @`},
		{"empty local", "@example.com", `"@example.com" has an empty local part`},
		{"empty domain", "bosun@", `"" is not a valid domain`},
		{"only dot", "bosun@.", `"" is not a valid domain`},
		{"empty label", "a@b..c", ""},
		{"leading dot", "a@.example.com", ""},
		{"two trailing dots", "a@example.com..", ""},
		{"space in domain", "bosun@exa mple.com", ""},
		{"trailing space", "bosun@example.com ", ""},
		{"leading hyphen", "bosun@-example.com", ""},
		{"slash in domain", "bosun@example.com/x", ""},
		{"long local", strings.Repeat("a", 257) + "@example.com", ""},
		{"long label", "bosun@" + strings.Repeat("a", 64) + ".com", ""},
		{"long domain", "bosun@" + longDomain + "b", ""},
		{"invalid UTF-8 local", "\xff\xfe@example.com", `local part of "\xff\xfe@example.com" is not UTF-8`},
		{"invalid UTF-8 domain", "bosun@\xffexample.com", `domain of "bosun@\xffexample.com" is not UTF-8`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, d, err := Split(tc.addr)
			if !errors.Is(err, ErrInvalid) || l != "" || d != "" {
				t.Fatalf("got %q, %q, %v; want ErrInvalid", l, d, err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Addr != tc.addr {
				t.Fatalf("err %#v is not an *Error for %q", err, tc.addr)
			}
			if tc.reason != "" && e.Reason != tc.reason {
				t.Errorf("reason %q, want %q", e.Reason, tc.reason)
			}
			if err.Error() != "address: invalid address: "+e.Reason {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func TestCut(t *testing.T) {
	for _, tt := range []struct {
		addr, local, domain string
		ok                  bool
	}{
		{"Bosun@Example.COM", "Bosun", "example.com", true},
		{"bosun@example.com.", "bosun", "example.com", true},
		{"a@b@Example.com", "a@b", "example.com", true},
		{"@example.com", "", "example.com", true},
		{"bosun@", "bosun", "", true},
		{"user@BÜCHER.example", "user", "bücher.example", true}, // no A-labels: lenient
		{"postmaster", "postmaster", "", false},
		{"", "", "", false},
		{"<>", "<>", "", false},
	} {
		l, d, ok := Cut(tt.addr)
		if l != tt.local || d != tt.domain || ok != tt.ok {
			t.Errorf("Cut(%q) = %q, %q, %v; want %q, %q, %v", tt.addr, l, d, ok, tt.local, tt.domain, tt.ok)
		}
		if got := Domain(tt.addr); got != tt.domain {
			t.Errorf("Domain(%q) = %q, want %q", tt.addr, got, tt.domain)
		}
	}
}
