// Package address splits mail addresses and checks and matches their
// domains, the one place where danemilter decides what the local part and
// the domain of an address are.
//
// # Addresses
//
// An envelope address is local-part@domain (RFC 5321 §4.1.2). The local
// part may itself hold a quoted "@", the domain cannot, so an address is
// split at its last "@". The two parts are treated differently:
//
//   - The domain is case-insensitive (RFC 5321 §2.4, RFC 1035 §2.3.3):
//     every function here returns it in lowercase, without the trailing
//     dot of a fully qualified name. [Split] also turns an
//     internationalized domain into A-labels (RFC 5890 §2.3.2.1, IDNA2008
//     lookup, RFC 5891 §5) and checks it is a host name.
//   - The local part is returned as written. RFC 5321 §2.4 leaves its case
//     to the receiving system, and RFC 8162 §3 and RFC 7929 §3 hash it as
//     written; whether it is lowercased before hashing is the operator's
//     choice (dns.lowercase_local_part, see the README), made by the caller.
//
// [Split] is the strict parser, for addresses whose DNS records are looked
// up; [Cut] is the lenient one, for matching an address against
// configuration (policy entries, exemptions, local domains) where any
// string the MTA passes must get an answer.
//
// # Domains and parent-domain patterns
//
// Configuration names domains in two forms: "example.com" for that domain,
// and ".example.com" for every domain below it (not example.com itself).
// [ParseDomain] and [ParseDomainPattern] check and normalize them
// ([NormalizeDomain], [ValidDomain]), [MatchDomain] tests one pattern, and
// [LookupDomain] finds the entry of a map that applies to a domain: the
// domain itself, else the nearest ".parent".
package address

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// ErrInvalid is wrapped by the errors of [Split]; ErrInvalidDomain by
// those of [ParseDomain] and [ParseDomainPattern].
var (
	ErrInvalid       = errors.New("address: invalid address")
	ErrInvalidDomain = errors.New("address: invalid domain")
)

// Error is the error of [Split]: Addr is the address, Reason says what is
// wrong with it. It wraps [ErrInvalid].
type Error struct {
	Addr   string
	Reason string // e.g. `"x" has no @`
}

func (e *Error) Error() string { return "address: invalid address: " + e.Reason }

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

func invalid(addr, format string, args ...any) error {
	return &Error{Addr: addr, Reason: fmt.Sprintf(format, args...)}
}

// MaxDomainLen is the longest domain [Split] accepts: 253 octets, a name
// of 255 octets in wire format (RFC 1035 §2.3.4).
const MaxDomainLen = 253

// Split splits addr at its last "@" (RFC 5321 §4.1.2) into the local part,
// unchanged, and the domain in lowercase ASCII (A-labels for
// internationalized names, RFC 5891 §5) without a trailing dot. It returns
// an *Error wrapping ErrInvalid when the local part is empty, not UTF-8 or
// longer than 256 octets, or the domain is not a host name of labels of
// letters, digits, hyphens and underscores (RFC 1035 §2.3.1) of at most
// MaxDomainLen octets.
func Split(addr string) (local, domain string, err error) {
	i := strings.LastIndexByte(addr, '@') // RFC 5321 §4.1.2: the domain holds no "@"
	if i < 0 {
		return "", "", invalid(addr, "%q has no @", addr)
	}
	local, domain = addr[:i], strings.TrimSuffix(addr[i+1:], ".")
	if local == "" {
		return "", "", invalid(addr, "%q has an empty local part", addr)
	}
	if !utf8.ValidString(local) { // RFC 6531 §3.3: UTF-8 local parts
		return "", "", invalid(addr, "local part of %q is not UTF-8", addr)
	}
	if len(local) > 64*4 { // RFC 5321 §4.5.3.1.1: 64 octets; be lenient for UTF-8
		return "", "", invalid(addr, "local part of %q is too long", addr)
	}
	// idna maps invalid UTF-8 to U+FFFD without an error, which would turn
	// garbage into a valid-looking A-label.
	if !utf8.ValidString(domain) {
		return "", "", invalid(addr, "domain of %q is not UTF-8", addr)
	}
	a, err := idna.Lookup.ToASCII(domain) // RFC 5891 §5: lookup
	if err != nil {
		return "", "", invalid(addr, "domain of %q: %v", addr, err)
	}
	a = strings.ToLower(a) // RFC 5321 §2.4: domains are case-insensitive
	if _, ok := dns.IsDomainName(a); !ok || !isLDH(a) || len(a) > MaxDomainLen {
		return "", "", invalid(addr, "%q is not a valid domain", domain)
	}
	return local, a, nil
}

// isLDH reports whether d is a sequence of non-empty labels of letters,
// digits, hyphens and underscores, each at most 63 octets (RFC 1035
// §2.3.1).
func isLDH(d string) bool {
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, c := range []byte(l) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Cut splits addr at its last "@" (RFC 5321 §4.1.2) without checking
// either part: the local part as written, and the domain lowercased
// (RFC 5321 §2.4) without a trailing dot. Without an "@" it returns addr,
// "" and false. Use it to match an address against configuration; use
// [Split] for an address whose records are looked up.
func Cut(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr, "", false
	}
	return addr[:i], NormalizeDomain(addr[i+1:]), true
}

// Domain returns the domain of addr as [Cut] gives it: lowercased,
// without a trailing dot, "" for an address without "@".
func Domain(addr string) string {
	_, d, _ := Cut(addr)
	return d
}

// NormalizeDomain lowercases d (RFC 5321 §2.4: domains are
// case-insensitive) and drops the one dot that ends a fully qualified name
// (RFC 1035 §3.1). It checks nothing: see [ParseDomain].
func NormalizeDomain(d string) string {
	return strings.ToLower(strings.TrimSuffix(d, "."))
}
