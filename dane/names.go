package dane

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/danemilter/danemilter/address"
)

// ErrBadAddress is wrapped by the errors of the owner name functions for an
// address that cannot be turned into an owner name.
var ErrBadAddress = errors.New("dane: bad address")

// SMIMEAName returns the owner name of the SMIMEA records of addr (RFC 8162
// §3), as a fully qualified name with a trailing dot. With lowercase, the
// local part is lowercased before hashing (see the package documentation).
// It returns an error wrapping ErrBadAddress for an address that
// address.Split refuses (no "@", an empty or non-UTF-8 local part, a
// domain that is not a valid DNS name) or whose domain is longer than 180
// octets, which would make the owner name longer than 255.
func SMIMEAName(addr string, lowercase bool) (string, error) {
	return ownerName(addr, "_smimecert", lowercase)
}

// OPENPGPKEYName returns the owner name of the OPENPGPKEY records of addr (RFC
// 7929 §3). Arguments and errors are those of [SMIMEAName].
func OPENPGPKEYName(addr string, lowercase bool) (string, error) {
	return ownerName(addr, "_openpgpkey", lowercase)
}

func ownerName(addr, label string, lowercase bool) (string, error) {
	local, domain, err := address.Split(addr)
	if err != nil {
		var ae *address.Error
		if errors.As(err, &ae) {
			return "", fmt.Errorf("%w: %s", ErrBadAddress, ae.Reason)
		}
		return "", fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	// The owner name adds 57 + 12 octets; the whole must fit 255 (RFC 1035 §2.3.4).
	if len(domain) > 180 {
		_, given, _ := strings.Cut(addr[len(local):], "@")
		return "", fmt.Errorf("%w: %q is not a valid domain", ErrBadAddress, strings.TrimSuffix(given, "."))
	}
	if lowercase {
		local = strings.ToLower(local)
	}
	// RFC 8162 §3 / RFC 7929 §3: SHA2-256 of the UTF-8 local part, truncated
	// to 28 octets, hex-encoded.
	sum := sha256.Sum256([]byte(local))
	return hex.EncodeToString(sum[:28]) + "." + label + "." + domain + ".", nil
}
