package dane

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// ErrBadAddress is wrapped by the errors of the owner name functions for an
// address that cannot be turned into an owner name.
var ErrBadAddress = errors.New("dane: bad address")

// SMIMEAName returns the owner name of the SMIMEA records of addr (RFC 8162
// §3), as a fully qualified name with a trailing dot. With lowercase, the
// local part is lowercased before hashing (see the package documentation).
// It returns an error wrapping ErrBadAddress for an address without "@", an
// empty or non-UTF-8 local part, or a domain that is not a valid DNS name.
func SMIMEAName(addr string, lowercase bool) (string, error) {
	return ownerName(addr, "_smimecert", lowercase)
}

// OPENPGPKEYName returns the owner name of the OPENPGPKEY records of addr (RFC
// 7929 §3). Arguments and errors are those of [SMIMEAName].
func OPENPGPKEYName(addr string, lowercase bool) (string, error) {
	return ownerName(addr, "_openpgpkey", lowercase)
}

func ownerName(addr, label string, lowercase bool) (string, error) {
	local, domain, err := SplitAddress(addr)
	if err != nil {
		return "", err
	}
	if lowercase {
		local = strings.ToLower(local)
	}
	// RFC 8162 §3 / RFC 7929 §3: SHA2-256 of the UTF-8 local part, truncated
	// to 28 octets, hex-encoded.
	sum := sha256.Sum256([]byte(local))
	return hex.EncodeToString(sum[:28]) + "." + label + "." + domain + ".", nil
}

// SplitAddress splits addr at its last "@" into the local part, unchanged,
// and the domain in lowercase ASCII (A-labels for internationalized names,
// RFC 5891) without a trailing dot. It returns an error wrapping
// ErrBadAddress when either part is empty or invalid.
func SplitAddress(addr string) (local, domain string, err error) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return "", "", fmt.Errorf("%w: %q has no @", ErrBadAddress, addr)
	}
	local, domain = addr[:i], strings.TrimSuffix(addr[i+1:], ".")
	if local == "" {
		return "", "", fmt.Errorf("%w: %q has an empty local part", ErrBadAddress, addr)
	}
	if !utf8.ValidString(local) {
		return "", "", fmt.Errorf("%w: local part of %q is not UTF-8", ErrBadAddress, addr)
	}
	if len(local) > 64*4 { // RFC 5321 §4.5.3.1.1: 64 octets; be lenient for UTF-8
		return "", "", fmt.Errorf("%w: local part of %q is too long", ErrBadAddress, addr)
	}
	// idna maps invalid UTF-8 to U+FFFD without an error, which would turn
	// garbage into a valid-looking A-label.
	if !utf8.ValidString(domain) {
		return "", "", fmt.Errorf("%w: domain of %q is not UTF-8", ErrBadAddress, addr)
	}
	a, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return "", "", fmt.Errorf("%w: domain of %q: %v", ErrBadAddress, addr, err)
	}
	a = strings.ToLower(a)
	// The owner name adds 57 + 12 octets; the whole must fit 255 (RFC 1035 §2.3.4).
	if _, ok := dns.IsDomainName(a); !ok || !isLDH(a) || len(a) > 180 {
		return "", "", fmt.Errorf("%w: %q is not a valid domain", ErrBadAddress, domain)
	}
	return local, a, nil
}

// isLDH reports whether d is a sequence of non-empty labels of letters,
// digits, hyphens and underscores, each at most 63 octets (RFC 1035 §2.3.1).
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
