package dane

import (
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestOwnerNameRFCVectors(t *testing.T) {
	tests := []struct {
		name string
		fn   func(string, bool) (string, error)
		addr string
		want string
	}{
		// RFC 8162 §3.
		{"smimea", SMIMEAName, "bosun@example.com", "f10e7de079689f55c0cdd6782e4dd1448c84006962a4bd832e8eff73._smimecert.example.com."},
		// RFC 7929 §3 (hash of "hugh").
		{"openpgpkey", OPENPGPKEYName, "hugh@example.com", "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._openpgpkey.example.com."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, lower := range []bool{false, true} {
				got, err := tc.fn(tc.addr, lower)
				if err != nil {
					t.Fatalf("lowercase=%v: %v", lower, err)
				}
				if got != tc.want {
					t.Errorf("lowercase=%v: got %s, want %s", lower, got, tc.want)
				}
			}
		})
	}
}

// TestSMIMEANameMiekg cross-checks the hashing against miekg/dns, whose
// SMIMEAName hashes its first argument as the local part.
func TestSMIMEANameMiekg(t *testing.T) {
	for _, local := range []string{"bosun", "Hugh", "user.name+tag", "ümlaut", "a@b"} {
		want, err := dns.SMIMEAName(local, "example.com.")
		if err != nil {
			t.Fatal(err)
		}
		got, err := SMIMEAName(local+"@example.com", false)
		if err != nil {
			t.Fatalf("%s: %v", local, err)
		}
		if got != want {
			t.Errorf("%s: got %s, miekg/dns says %s", local, got, want)
		}
	}
}

func TestOwnerNameLowercase(t *testing.T) {
	for _, fn := range []func(string, bool) (string, error){SMIMEAName, OPENPGPKEYName} {
		upper, err := fn("Hugh@example.com", false)
		if err != nil {
			t.Fatal(err)
		}
		lower, err := fn("hugh@example.com", false)
		if err != nil {
			t.Fatal(err)
		}
		if upper == lower {
			t.Errorf("Hugh and hugh hash alike without lowercase: %s", upper)
		}
		upperL, err := fn("Hugh@example.com", true)
		if err != nil {
			t.Fatal(err)
		}
		if upperL != lower {
			t.Errorf("with lowercase, Hugh gives %s, want %s", upperL, lower)
		}
	}
}

func TestOwnerNameDomainNormalised(t *testing.T) {
	want, err := SMIMEAName("user@xn--bcher-kva.example", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(want, "._smimecert.xn--bcher-kva.example.") {
		t.Fatalf("got %s", want)
	}
	for _, addr := range []string{"user@bücher.example", "user@BÜCHER.EXAMPLE.", "user@XN--BCHER-KVA.example"} {
		got, err := SMIMEAName(addr, false)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if got != want {
			t.Errorf("%s: got %s, want %s", addr, got, want)
		}
	}
}

func TestOwnerNameBadAddress(t *testing.T) {
	tests := []struct {
		name, addr string
	}{
		{"no at", "bosun.example.com"},
		{"empty", ""},
		{"empty local", "@example.com"},
		{"empty domain", "bosun@"},
		{"only dot", "bosun@."},
		{"empty label", "a@b..c"},
		{"leading dot", "a@.example.com"},
		{"two trailing dots", "a@example.com.."},
		{"space in domain", "bosun@exa mple.com"},
		{"trailing space", "bosun@example.com "},
		{"leading hyphen", "bosun@-example.com"},
		{"slash in domain", "bosun@example.com/x"},
		{"long local", strings.Repeat("a", 257) + "@example.com"},
		{"long label", "bosun@" + strings.Repeat("a", 64) + ".com"},
		{"long domain", "bosun@" + strings.Repeat(strings.Repeat("a", 60)+".", 3) + "com"},
		{"invalid UTF-8 local", "\xff\xfe@example.com"},
		{"invalid UTF-8 domain", "bosun@\xffexample.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, fn := range []func(string, bool) (string, error){SMIMEAName, OPENPGPKEYName} {
				got, err := fn(tc.addr, false)
				if !errors.Is(err, ErrBadAddress) {
					t.Errorf("got %q, %v; want ErrBadAddress", got, err)
				}
				if got != "" {
					t.Errorf("got name %q with error", got)
				}
			}
		})
	}
}
