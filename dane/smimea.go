package dane

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// SMIMEA certificate usages, selectors and matching types (RFC 8162 §2,
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
// record that vouches for it. Cert may be shared with other Select calls and
// other goroutines: it must not be changed.
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

// Selector chooses the usable certificates among a recipient's SMIMEA
// records. The zero value knows no certificates besides those in the records
// and validates PKIX usages against the system roots.
type Selector struct {
	// Roots are the trust anchors of the PKIX usages 0 and 1; nil means the
	// system roots.
	Roots *x509.CertPool
	// Certs are certificates from elsewhere (a directory the operator
	// fills): end-entity certificates that hashed records authenticate, and
	// CA certificates that chains are built through. nil: none.
	Certs CertSource
	// MaxParsed bounds how many certificates parsed from records (x 0 0)
	// the Selector keeps, so that a record that comes again (from the DNS
	// cache, for every recipient of every message) is not parsed again and
	// yields the same *x509.Certificate; the least recently used goes
	// first. Validity period, address, key and usages are still checked on
	// every Select. Zero: 1000; negative: none kept.
	MaxParsed int

	parsed parsedCerts
}

// CertSource gives certificates that did not come in a record.
type CertSource interface {
	// Certificates returns every certificate; callers must not change them.
	Certificates() []*x509.Certificate
}

// Select returns the certificates among the SMIMEA records rrs (other record
// types are ignored) that may be used to encrypt mail to addr at time now,
// and a reason for every record that yields none. Several usable records —
// a key rollover — all yield keys; one broken record never hides the others.
// The caller must pass only records of a DNSSEC-secure answer (RFC 8162 §6).
//
// Per record (RFC 8162 §2.1 with RFC 6698 §2.1 and RFC 7671):
//   - usage 3 (DANE-EE): the record matches the end-entity certificate,
//     which comes in the record itself (3 0 0) or from Certs (hashed or SPKI
//     records); no chain is checked.
//   - usage 2 (DANE-TA): the record matches a trust anchor (in the record,
//     2 0 0, or in Certs); an end-entity certificate for addr from Certs must
//     chain to it (through CA certificates from Certs).
//   - usage 1 (PKIX-EE): like DANE-EE, and the certificate must also chain
//     to Roots.
//   - usage 0 (PKIX-TA): an end-entity certificate for addr from Certs must
//     chain to Roots, and the record must match a CA certificate of that
//     chain.
//
// Every usable certificate must also pass CheckCertificate: it is for addr,
// valid at now, and allowed to encrypt. Records with parameters RFC 8162 does
// not define are ignored with a reason (RFC 6698 §2.1.1–2.1.3).
func (s *Selector) Select(addr string, rrs []dns.RR, now time.Time) ([]Key, []Rejected) {
	return s.SelectWith(addr, rrs, now, nil)
}

// SelectWith is Select with more end-entity certificates for addr from
// elsewhere: certificates harvested from the address's verified signed mail
// (package harvest). They are candidates exactly like the end-entity
// certificates of Certs and grant no trust of their own: one is used only
// when a record matches it under the record's usage, and passes
// CheckCertificate. more must not be changed.
func (s *Selector) SelectWith(addr string, rrs []dns.RR, now time.Time, more []*x509.Certificate) ([]Key, []Rejected) {
	var keys []Key
	var rejected []Rejected
	seen := map[string]bool{}
	for _, rr := range rrs {
		r, ok := rr.(*dns.SMIMEA)
		if !ok || r == nil {
			continue
		}
		certs, reason := s.check(addr, r, now, more)
		if len(certs) == 0 {
			rejected = append(rejected, Rejected{Record: r, Reason: reason})
			continue
		}
		added := 0
		for _, c := range certs {
			if !seen[string(c.Raw)] {
				seen[string(c.Raw)] = true
				keys = append(keys, Key{Record: r, Cert: c})
				added++
			}
		}
		if added == 0 {
			rejected = append(rejected, Rejected{Record: r, Reason: "duplicate of another record's certificate"})
		}
	}
	return keys, rejected
}

// check returns the usable certificates one record vouches for, or the
// reason there are none.
func (s *Selector) check(addr string, r *dns.SMIMEA, now time.Time, more []*x509.Certificate) ([]*x509.Certificate, string) {
	data, reason := associationData(r)
	if reason != "" {
		return nil, reason
	}
	// A record with the whole certificate (x 0 0) carries it.
	var inRecord *x509.Certificate
	if r.Selector == SelectorCert && r.MatchingType == MatchingFull {
		var err error
		if inRecord, err = s.parsed.parse(data, s.MaxParsed); err != nil {
			return nil, "certificate does not parse: " + err.Error()
		}
	}
	var others []*x509.Certificate
	if s.Certs != nil {
		others = s.Certs.Certificates()
	}
	// The pool of intermediates is built only for the usages that build
	// chains, and from the source's own pool when it keeps one: the common
	// 3 0 0 record costs no work per certificate of the directory.
	var pool *x509.CertPool
	intermediates := func() *x509.CertPool {
		if pool != nil {
			return pool
		}
		if ps, ok := s.Certs.(interface{ Pool() *x509.CertPool }); ok {
			pool = ps.Pool().Clone()
		} else {
			pool = x509.NewCertPool()
			for _, c := range others {
				pool.AddCert(c)
			}
		}
		if inRecord != nil {
			pool.AddCert(inRecord)
		}
		return pool
	}

	// End-entity candidates: the record's own certificate for the EE usages,
	// else certificates for addr from elsewhere (the directory, then the
	// harvested ones).
	var candidates []*x509.Certificate
	switch {
	case inRecord != nil && (r.Usage == UsageDANEEE || r.Usage == UsagePKIXEE):
		candidates = []*x509.Certificate{inRecord}
	case s.Certs == nil:
	default:
		if ix, ok := s.Certs.(interface {
			ForAddress(string) []*x509.Certificate
		}); ok {
			candidates = ix.ForAddress(addr)
			break
		}
		for _, c := range others {
			if !c.IsCA && certHasAddress(c, addr) {
				candidates = append(candidates, c)
			}
		}
	}
	if len(more) > 0 && (inRecord == nil || r.Usage == UsageDANETA || r.Usage == UsagePKIXTA) {
		candidates = appendNew(candidates, more)
	}
	if len(candidates) == 0 {
		where := "in the certificate directory"
		if more != nil {
			where += " nor harvested"
		}
		return nil, fmt.Sprintf("record %d %d %d: no certificate for %s %s", r.Usage, r.Selector, r.MatchingType, addr, where)
	}

	var usable []*x509.Certificate
	var reasons []string
	for _, c := range candidates {
		reason := ""
		switch r.Usage {
		case UsageDANEEE, UsagePKIXEE:
			if !matches(r, data, c) {
				reason = "does not match the record"
				break
			}
			if r.Usage == UsagePKIXEE {
				if _, err := c.Verify(x509.VerifyOptions{Roots: s.Roots, Intermediates: intermediates(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
					reason = "PKIX-EE: does not chain to a trusted root: " + err.Error()
				}
			}
		case UsageDANETA:
			// RFC 7671 §5.2.2: the trust anchor is the certificate (or key)
			// the record matches; the EE must chain to it.
			var anchors []*x509.Certificate
			if inRecord != nil {
				anchors = []*x509.Certificate{inRecord}
			} else {
				for _, o := range others {
					if o.IsCA && matches(r, data, o) {
						anchors = append(anchors, o)
					}
				}
			}
			if len(anchors) == 0 {
				reason = "DANE-TA: no CA certificate in the certificate directory matches the record"
				break
			}
			roots := x509.NewCertPool()
			for _, a := range anchors {
				roots.AddCert(a)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
				reason = "DANE-TA: does not chain to the record's trust anchor: " + err.Error()
			}
		case UsagePKIXTA:
			chains, err := c.Verify(x509.VerifyOptions{Roots: s.Roots, Intermediates: intermediates(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
			if err != nil {
				reason = "PKIX-TA: does not chain to a trusted root: " + err.Error()
				break
			}
			found := false
			for _, ch := range chains {
				for _, ca := range ch[1:] {
					if matches(r, data, ca) {
						found = true
					}
				}
			}
			if !found {
				reason = "PKIX-TA: the record matches no CA of the certificate's chain"
			}
		}
		if reason == "" {
			reason = CheckCertificate(addr, c, now)
		}
		switch {
		case reason == "":
			usable = append(usable, c)
		case !slices.Contains(reasons, reason): // each reason once, in order
			reasons = append(reasons, reason)
		}
	}
	if len(usable) > 0 {
		return usable, ""
	}
	return nil, strings.Join(reasons, "; ")
}

// appendNew appends to list the end-entity certificates of more it does not
// hold yet, in a new slice (list may be a source's own).
func appendNew(list, more []*x509.Certificate) []*x509.Certificate {
	out := slices.Clip(list)
	for _, c := range more {
		if c == nil || c.IsCA || slices.ContainsFunc(out, func(o *x509.Certificate) bool { return bytes.Equal(o.Raw, c.Raw) }) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// matches reports whether the record's association data matches cert
// (RFC 6698 §2.1.2 selector, §2.1.3 matching type).
func matches(r *dns.SMIMEA, data []byte, cert *x509.Certificate) bool {
	content := cert.Raw
	if r.Selector == SelectorSPKI {
		content = cert.RawSubjectPublicKeyInfo
	}
	switch r.MatchingType {
	case MatchingFull:
		return bytes.Equal(content, data)
	case MatchingSHA256:
		sum := sha256.Sum256(content)
		return bytes.Equal(sum[:], data)
	case MatchingSHA512:
		sum := sha512.Sum512(content)
		return bytes.Equal(sum[:], data)
	}
	return false
}

// CheckCertificate returns "" when cert may be used to encrypt mail to addr
// at time now, and otherwise the reason why not. It does not check the chain
// of trust: that is what the record's usage does.
//
//   - The key is RSA of at least 2048 bits (key transport) or EC on P-256 or
//     P-384 (ECDH key agreement, RFC 5753).
//   - addr is in the certificate: a subjectAltName rfc822Name or the
//     subject's emailAddress attribute, compared without regard to case.
//   - now is within the validity period.
//   - A key usage extension allows keyEncipherment (RSA) or keyAgreement
//     (EC), and an extended key usage extension allows emailProtection
//     (RFC 8550 §4.4.2, §4.4.4).
func CheckCertificate(addr string, cert *x509.Certificate, now time.Time) string {
	need := x509.KeyUsageKeyEncipherment
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Sprintf("RSA key of %d bits is too weak (at least %d)", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521() {
			return fmt.Sprintf("EC curve %s is not supported (P-256, P-384, P-521)", k.Curve.Params().Name)
		}
		need = x509.KeyUsageKeyAgreement
	default:
		return fmt.Sprintf("public key type %s is not supported for encryption (RSA, EC P-256/P-384/P-521)", cert.PublicKeyAlgorithm)
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
	if cert.KeyUsage != 0 && cert.KeyUsage&need == 0 {
		if need == x509.KeyUsageKeyAgreement {
			return "key usage does not allow key agreement"
		}
		return "key usage does not allow key encipherment"
	}
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
	for _, e := range certAddressList(cert) {
		if strings.EqualFold(e, addr) {
			return true
		}
	}
	return false
}

// certAddressList returns the email addresses a certificate names: its
// subjectAltName rfc822Names and the subject's emailAddress attributes.
func certAddressList(cert *x509.Certificate) []string {
	out := append([]string(nil), cert.EmailAddresses...)
	for _, n := range cert.Subject.Names {
		if n.Type.Equal(oidEmailAddress) {
			if v, ok := n.Value.(string); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func certAddresses(cert *x509.Certificate) string {
	out := certAddressList(cert)
	if len(out) == 0 {
		return "no email address"
	}
	return strings.Join(out, ", ")
}
