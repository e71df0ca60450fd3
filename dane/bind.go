package dane

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/miekg/dns"
)

// Bind returns the record among the SMIMEA records rrs (other record types
// are ignored) that binds the certificate signer, which signed a message
// from addr, to addr at time at; or nil and a reason for every record that
// does not. This is the inbound counterpart of Select: the certificate comes
// with the message, and the record must vouch for it (RFC 8162 §2 with RFC
// 6698 §2.1 and RFC 7671). intermediates are the other certificates the
// message carries (the CMS certificates field), used to build chains and to
// find a trust anchor; the Selector's Certs are used as well.
//
// Per record:
//   - usage 3 (DANE-EE): the record matches signer (selector 0: the whole
//     certificate, 1: its SubjectPublicKeyInfo; matching 0: exact, 1:
//     SHA-256, 2: SHA-512). No chain is checked (RFC 7671 §5.1).
//   - usage 2 (DANE-TA): the record matches a trust anchor — the
//     certificate in the record itself (2 0 0), or a certificate among
//     intermediates or Certs — and signer chains to it (RFC 7671 §5.2).
//   - usage 1 (PKIX-EE): the record matches signer, and signer chains to
//     Roots.
//   - usage 0 (PKIX-TA): signer chains to Roots and the record matches a CA
//     certificate of that chain.
//
// Before any record, signer must pass CheckSigningCertificate; if it does
// not, every record is rejected with that reason. The caller must pass only
// records of a DNSSEC-secure answer (RFC 8162 §6).
func (s *Selector) Bind(addr string, rrs []dns.RR, signer *x509.Certificate, intermediates []*x509.Certificate, at time.Time) (*dns.SMIMEA, []Rejected) {
	var rejected []Rejected
	certReason := ""
	if signer == nil {
		certReason = "no signer certificate"
	} else {
		certReason = CheckSigningCertificate(addr, signer, at)
	}
	for _, rr := range rrs {
		r, ok := rr.(*dns.SMIMEA)
		if !ok || r == nil {
			continue
		}
		if certReason != "" {
			rejected = append(rejected, Rejected{Record: r, Reason: "signer certificate: " + certReason})
			continue
		}
		reason := s.bindOne(r, signer, intermediates, at)
		if reason == "" {
			return r, rejected
		}
		rejected = append(rejected, Rejected{Record: r, Reason: reason})
	}
	return nil, rejected
}

// bindOne returns "" when record r binds signer, else why not.
func (s *Selector) bindOne(r *dns.SMIMEA, signer *x509.Certificate, intermediates []*x509.Certificate, at time.Time) string {
	data, reason := associationData(r)
	if reason != "" {
		return reason
	}
	var others []*x509.Certificate
	if s.Certs != nil {
		others = s.Certs.Certificates()
	}
	pool := func(extra ...*x509.Certificate) *x509.CertPool {
		p := x509.NewCertPool()
		for _, c := range slices.Concat(intermediates, others, extra) {
			if c != nil {
				p.AddCert(c)
			}
		}
		return p
	}
	opts := func(roots, inter *x509.CertPool) x509.VerifyOptions {
		// RFC 8550 §4.4.4: emailProtection when an EKU is present anywhere.
		return x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	}
	name := fmt.Sprintf("record %d %d %d", r.Usage, r.Selector, r.MatchingType)
	switch r.Usage {
	case UsageDANEEE: // RFC 7671 §5.1: the certificate (or key) itself
		if !matches(r, data, signer) {
			return name + ": does not match the signer certificate"
		}
	case UsagePKIXEE: // RFC 6698 §2.1.1 usage 1: match and PKIX validation
		if !matches(r, data, signer) {
			return name + ": does not match the signer certificate"
		}
		if _, err := signer.Verify(opts(s.Roots, pool())); err != nil {
			return name + ": PKIX-EE: signer does not chain to a trusted root: " + err.Error()
		}
	case UsageDANETA: // RFC 7671 §5.2: the record names the trust anchor
		var anchors []*x509.Certificate
		var inRecord *x509.Certificate
		if r.Selector == SelectorCert && r.MatchingType == MatchingFull {
			c, err := s.parsed.parse(data, s.MaxParsed)
			if err != nil {
				return name + ": certificate does not parse: " + err.Error()
			}
			inRecord = c
			anchors = append(anchors, c)
		} else {
			for _, c := range slices.Concat(intermediates, others) {
				if c != nil && c.IsCA && matches(r, data, c) {
					anchors = append(anchors, c)
				}
			}
		}
		if len(anchors) == 0 {
			return name + ": DANE-TA: no CA certificate in the message or the certificate directory matches the record"
		}
		roots := x509.NewCertPool()
		for _, a := range anchors {
			roots.AddCert(a)
		}
		if _, err := signer.Verify(opts(roots, pool(inRecord))); err != nil {
			return name + ": DANE-TA: signer does not chain to the record's trust anchor: " + err.Error()
		}
	case UsagePKIXTA: // RFC 6698 §2.1.1 usage 0: a CA of the PKIX chain
		chains, err := signer.Verify(opts(s.Roots, pool()))
		if err != nil {
			return name + ": PKIX-TA: signer does not chain to a trusted root: " + err.Error()
		}
		for _, ch := range chains {
			for _, ca := range ch[1:] {
				if matches(r, data, ca) {
					return ""
				}
			}
		}
		return name + ": PKIX-TA: the record matches no CA of the signer's chain"
	}
	return ""
}

// associationData checks the record's parameters and returns its decoded
// certificate association data, or why the record is unusable.
func associationData(r *dns.SMIMEA) ([]byte, string) {
	if r.Usage > UsageDANEEE || r.Selector > SelectorSPKI || r.MatchingType > MatchingSHA512 {
		// RFC 6698 §2.1.1-2.1.3 via RFC 8162 §2: unknown values are unusable.
		return nil, fmt.Sprintf("unknown parameters %d %d %d (ignored, RFC 6698 §2.1)", r.Usage, r.Selector, r.MatchingType)
	}
	if len(r.Certificate) > 2*maxRecordLength {
		return nil, "certificate association data too long"
	}
	data, err := hex.DecodeString(r.Certificate)
	if err != nil || len(data) == 0 {
		return nil, "certificate association data is not valid hex"
	}
	want := 0 // the digest length of a hash matching type
	switch r.MatchingType {
	case MatchingSHA256:
		want = sha256.Size
	case MatchingSHA512:
		want = sha512.Size
	}
	if want != 0 && len(data) != want {
		return nil, fmt.Sprintf("association data of %d octets does not fit matching type %d (want %d)", len(data), r.MatchingType, want)
	}
	return data, ""
}

// CheckSigningCertificate returns "" when cert may have signed mail from
// addr at time at, and otherwise the reason why not. It does not check the
// chain of trust: that is what the record's usage does (Bind).
//
//   - addr is in the certificate: a subjectAltName rfc822Name or the
//     subject's emailAddress attribute, compared without regard to case
//     (RFC 8550 §3).
//   - at is within the validity period.
//   - The key is RSA of at least 2048 bits, ECDSA on P-256, P-384 or P-521,
//     or Ed25519 (RFC 8551 §2.2, RFC 8419).
//   - A key usage extension, when present, allows digitalSignature or
//     nonRepudiation, and an extended key usage extension, when present,
//     allows emailProtection or anyExtendedKeyUsage (RFC 8550 §4.4.2,
//     §4.4.4).
func CheckSigningCertificate(addr string, cert *x509.Certificate, at time.Time) string {
	if !certHasAddress(cert, addr) {
		return fmt.Sprintf("certificate is not for %s (it names %s)", addr, certAddresses(cert))
	}
	if at.Before(cert.NotBefore) {
		return "certificate is not valid before " + cert.NotBefore.UTC().Format(time.RFC3339)
	}
	if at.After(cert.NotAfter) {
		return "certificate expired " + cert.NotAfter.UTC().Format(time.RFC3339)
	}
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Sprintf("RSA key of %d bits is too weak (at least %d)", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521() {
			return fmt.Sprintf("EC curve %s is not supported (P-256, P-384, P-521)", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Sprintf("public key type %s is not supported for signatures (RSA, ECDSA P-256/P-384/P-521, Ed25519)", cert.PublicKeyAlgorithm)
	}
	// RFC 8550 §4.4.2: digitalSignature and/or nonRepudiation for signing.
	if cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return "key usage does not allow digital signatures"
	}
	// RFC 8550 §4.4.4: emailProtection or anyExtendedKeyUsage.
	if len(cert.ExtKeyUsage) > 0 || len(cert.UnknownExtKeyUsage) > 0 {
		if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageEmailProtection) && !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny) {
			return "extended key usage does not allow emailProtection"
		}
	}
	return ""
}

// CertAddresses returns the email addresses cert names: its
// subjectAltName rfc822Names, then the subject's emailAddress attributes
// (RFC 8550 §3), as they are written (not normalized).
func CertAddresses(cert *x509.Certificate) []string {
	return certAddressList(cert)
}

// HasAddress reports whether cert names addr (see CertAddresses), compared
// without regard to case.
func HasAddress(cert *x509.Certificate, addr string) bool {
	return certHasAddress(cert, addr)
}
