package address

import (
	"fmt"
	"strings"
)

// notInDomain are the octets a configured domain never holds: white space
// and the punctuation of addresses, paths, lists and quoting. The check is
// textual (names are not converted to A-labels) so that whatever form an
// MTA passes can be written in the configuration.
const notInDomain = " \t\r\n@/\\:,;\"'<>()[]"

// DomainError is the error of [ParseDomain] and [ParseDomainPattern]: Text
// is what was given. It wraps [ErrInvalidDomain].
type DomainError struct{ Text string }

func (e *DomainError) Error() string { return fmt.Sprintf("%q is not a domain name", e.Text) }

// Unwrap returns ErrInvalidDomain.
func (e *DomainError) Unwrap() error { return ErrInvalidDomain }

// ParseDomain returns s lowercased and without a trailing dot (RFC 5321
// §2.4, RFC 1035 §3.1) when it is a domain name: one or more non-empty
// labels (RFC 1035 §2.3.1) without white space or the other characters of
// notInDomain. Otherwise it returns a *DomainError. Surrounding white
// space is an error too: trim it first where it may stand.
func ParseDomain(s string) (string, error) {
	d := NormalizeDomain(s)
	if !ValidDomain(d) {
		return "", &DomainError{Text: s}
	}
	return d, nil
}

// ParseDomainPattern is [ParseDomain] for a configuration entry that may
// also be ".parent", every domain below parent; the leading dot is kept.
func ParseDomainPattern(s string) (string, error) {
	parent := strings.HasPrefix(s, ".")
	d, err := ParseDomain(strings.TrimPrefix(s, "."))
	if err != nil {
		return "", &DomainError{Text: s}
	}
	if parent {
		return "." + d, nil
	}
	return d, nil
}

// ValidDomain reports whether d, as it stands (not normalized), is what
// [ParseDomain] returns for a valid name: non-empty labels (RFC 1035
// §2.3.1) without white space or the other characters of notInDomain. It
// does not lowercase, so an uppercase name passes; a trailing dot does not.
func ValidDomain(d string) bool {
	if d == "" || strings.ContainsAny(d, notInDomain) {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" { // RFC 1035 §2.3.1: labels are not empty
			return false
		}
	}
	return true
}

// MatchDomain reports whether pattern, as [ParseDomainPattern] returns it,
// covers domain (lowercase, no trailing dot): "example.com" covers
// example.com, ".example.com" every domain below it but not example.com.
func MatchDomain(pattern, domain string) bool {
	return pattern == domain || (strings.HasPrefix(pattern, ".") && strings.HasSuffix(domain, pattern))
}

// LookupDomain returns the value of the entry of m that applies to domain
// and its key: m[domain], else m["."+parent] for the nearest parent
// (a.b.example: .b.example, then .example). domain must be normalized
// already, as [Cut] and [NormalizeDomain] return it: it is not changed
// here. The keys of m are patterns as [ParseDomainPattern] returns them
// (other keys, such as addresses, are never found). The result agrees with
// [MatchDomain]: the key returned is the longest pattern that covers
// domain.
func LookupDomain[V any](m map[string]V, domain string) (v V, key string, ok bool) {
	if v, ok := m[domain]; ok {
		return v, domain, true
	}
	for d := domain; ; {
		_, parent, ok := strings.Cut(d, ".")
		if !ok {
			break
		}
		if v, ok := m["."+parent]; ok {
			return v, "." + parent, true
		}
		d = parent
	}
	return v, "", false
}
