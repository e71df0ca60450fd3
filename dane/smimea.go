package dane

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// SMIMEA certificate usages, selectors and matching types (RFC 8162 §2.1,
// which takes them from RFC 6698 §2.1 and RFC 7218).
const (
	UsagePKIXTA     = 0
	UsagePKIXEE     = 1
	UsageDANETA     = 2
	UsageDANEEE     = 3
	SelectorCert    = 0
	SelectorSPKI    = 1
	MatchingFull    = 0
	MatchingSHA256  = 1
	MatchingSHA512  = 2
	minRSABits      = 2048
	maxRecordLength = 64 << 10
)

// Key is a certificate that may be used to encrypt to a recipient, and the
// record that vouches for it.
type Key struct {
	Record *dns.SMIMEA
	Cert   *x509.Certificate
}

// Rejected is a record that yields no usable key, and why.
type Rejected struct {
	Record *dns.SMIMEA
	Reason string
}

var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1} // PKCS #9 emailAddress

// SelectSMIMEA returns the certificates among the SMIMEA records rrs (other
// record types are ignored) that may be used to encrypt mail to addr at time
// now, and a reason for every record that yields none. Several usable
// records — a key rollover — all yield keys; one broken record never hides
// the others.
//
// A record is usable when it is a DANE-EE record carrying the whole
// certificate (3 0 0, RFC 8162 §2.1.1 and RFC 6698 §2.1) and the
// certificate
//   - parses, and holds an RSA public key of at least 2048 bits,
//   - names addr as an email address (subjectAltName rfc822Name, or the
//     subject's emailAddress attribute), compared without regard to case,
//   - is valid at now,
//   - allows key encipherment when it has a key usage extension, and
//     emailProtection when it has an extended key usage extension (RFC 8550
//     §4.4.2, §4.4.4).
//
// The caller must pass only records of a DNSSEC-secure answer (RFC 8162 §6).
// Records with parameters that RFC 8162 does not define are skipped, as RFC
// 6698 §2.1 says; hashed records and the PKIX and trust-anchor usages are
// skipped with a reason until the certificates they refer to can be found.
func SelectSMIMEA(addr string, rrs []dns.RR, now time.Time) ([]Key, []Rejected) {
	var keys []Key
	var rejected []Rejected
	seen := map[string]bool{}
	for _, rr := range rrs {
		s, ok := rr.(*dns.SMIMEA)
		if !ok || s == nil {
			continue
		}
		cert, reason := checkSMIMEA(addr, s, now)
		if reason != "" {
			rejected = append(rejected, Rejected{Record: s, Reason: reason})
			continue
		}
		if seen[string(cert.Raw)] {
			rejected = append(rejected, Rejected{Record: s, Reason: "duplicate of another record's certificate"})
			continue
		}
		seen[string(cert.Raw)] = true
		keys = append(keys, Key{Record: s, Cert: cert})
	}
	return keys, rejected
}

func checkSMIMEA(addr string, s *dns.SMIMEA, now time.Time) (*x509.Certificate, string) {
	if s.Usage > UsageDANEEE || s.Selector > SelectorSPKI || s.MatchingType > MatchingSHA512 {
		// RFC 6698 §2.1.1-2.1.3 via RFC 8162 §2: unknown values are unusable.
		return nil, fmt.Sprintf("unknown parameters %d %d %d (ignored, RFC 6698 §2.1)", s.Usage, s.Selector, s.MatchingType)
	}
	if s.Usage != UsageDANEEE {
		return nil, fmt.Sprintf("certificate usage %d (%s) is not supported yet; only 3 (DANE-EE)", s.Usage, usageName(s.Usage))
	}
	if s.Selector != SelectorCert || s.MatchingType != MatchingFull {
		return nil, fmt.Sprintf("record %d %d %d holds a hash or key, not the certificate; certificates from elsewhere are not supported yet", s.Usage, s.Selector, s.MatchingType)
	}
	if len(s.Certificate) > 2*maxRecordLength {
		return nil, "certificate data too long"
	}
	der, err := hex.DecodeString(s.Certificate)
	if err != nil || len(der) == 0 {
		return nil, "certificate data is not valid hex"
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, "certificate does not parse: " + err.Error()
	}
	return cert, CheckCertificate(addr, cert, now)
}

// CheckCertificate returns "" when cert may be used to encrypt mail to addr
// at time now, and otherwise the reason why not (see SelectSMIMEA). It does
// not check the chain of trust: that is what the DNSSEC-secure record does.
func CheckCertificate(addr string, cert *x509.Certificate, now time.Time) string {
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Sprintf("RSA key of %d bits is too weak (at least %d)", k.N.BitLen(), minRSABits)
		}
	default:
		return fmt.Sprintf("public key type %s is not supported for encryption yet (RSA only)", cert.PublicKeyAlgorithm)
	}
	if !certHasAddress(cert, addr) {
		return fmt.Sprintf("certificate is not for %s (it names %s)", addr, certAddresses(cert))
	}
	if now.Before(cert.NotBefore) {
		return "certificate is not valid before " + cert.NotBefore.UTC().Format(time.RFC3339)
	}
	if now.After(cert.NotAfter) {
		return "certificate expired " + cert.NotAfter.UTC().Format(time.RFC3339)
	}
	// RFC 8550 §4.4.2: with a key usage extension, RSA key transport needs
	// keyEncipherment.
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		return "key usage does not allow key encipherment"
	}
	// RFC 8550 §4.4.4: with an extended key usage extension, it must allow
	// emailProtection (or anyExtendedKeyUsage).
	if len(cert.ExtKeyUsage) > 0 || len(cert.UnknownExtKeyUsage) > 0 {
		ok := false
		for _, u := range cert.ExtKeyUsage {
			if u == x509.ExtKeyUsageEmailProtection || u == x509.ExtKeyUsageAny {
				ok = true
			}
		}
		if !ok {
			return "extended key usage does not allow emailProtection"
		}
	}
	return ""
}

func certHasAddress(cert *x509.Certificate, addr string) bool {
	for _, e := range cert.EmailAddresses {
		if strings.EqualFold(e, addr) {
			return true
		}
	}
	for _, n := range cert.Subject.Names {
		if n.Type.Equal(oidEmailAddress) {
			if v, ok := n.Value.(string); ok && strings.EqualFold(v, addr) {
				return true
			}
		}
	}
	return false
}

func certAddresses(cert *x509.Certificate) string {
	var out []string
	out = append(out, cert.EmailAddresses...)
	for _, n := range cert.Subject.Names {
		if n.Type.Equal(oidEmailAddress) {
			if v, ok := n.Value.(string); ok {
				out = append(out, v)
			}
		}
	}
	if len(out) == 0 {
		return "no email address"
	}
	return strings.Join(out, ", ")
}

func usageName(u uint8) string {
	switch u {
	case UsagePKIXTA:
		return "PKIX-TA"
	case UsagePKIXEE:
		return "PKIX-EE"
	case UsageDANETA:
		return "DANE-TA"
	case UsageDANEEE:
		return "DANE-EE"
	}
	return "unknown"
}
