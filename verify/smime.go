package verify

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/smime"
)

// maxReasons bounds how many record rejections a Reason lists.
const maxReasons = 3

// smime verifies an S/MIME signed entity into s; false when the entity
// turns out not to be signed (an enveloped pkcs7-mime without smime-type).
func (w *walker) smime(entity []byte, s *Signature) bool {
	sv, err := smime.VerifyEntity(entity)
	switch {
	case errors.Is(err, smime.ErrNotSigned):
		return false
	case errors.Is(err, smime.ErrUnsupportedAlgorithm):
		s.Result, s.Reason = ResultNeutral, "S/MIME signature with an unsupported algorithm or type"
		return true
	case err != nil:
		s.Result, s.Reason = ResultPermError, "malformed S/MIME signature: "+safeError(err)
		return true
	case len(sv.Signers) == 0:
		s.Result, s.Reason = ResultPermError, "S/MIME signed data without a signer"
		return true
	}

	// The signer to bind: the first whose certificate names From.
	signer := &sv.Signers[0]
	for i := range sv.Signers {
		if c := sv.Signers[i].Certificate; c != nil && w.rep.From != "" && dane.HasAddress(c, w.rep.From) {
			signer = &sv.Signers[i]
			break
		}
	}
	s.SigningTime = signer.SigningTime
	s.Algorithm = algorithmName(string(signer.Signature), signer.Digest)
	if c := signer.Certificate; c != nil {
		s.Serial = c.SerialNumber.Text(16)
		s.Issuer = c.Issuer.String()
		s.Signer = signerAddress(dane.CertAddresses(c), w.rep.From)
	}

	// RFC 8551 §3.5 leaves several signers to local policy: all must
	// verify, with a strong algorithm.
	for _, r := range sv.Signers {
		switch r.Status {
		case smime.StatusValid:
			continue
		case smime.StatusWeak:
			s.Result, s.Reason = ResultPolicy, "the signature verifies but uses a weak algorithm ("+safeError(r.Err)+"); never a pass"
		case smime.StatusUnsupported:
			s.Result, s.Reason = ResultNeutral, "unsupported algorithm: "+safeError(r.Err)
		default:
			if errors.Is(r.Err, smime.ErrNoSignerCertificate) {
				s.Result, s.Reason = ResultNeutral, "the signer certificate is not in the message"
			} else {
				s.Result, s.Reason = ResultFail, "the signature does not verify: "+safeError(r.Err)
			}
		}
		return true
	}
	s.Valid = true

	if w.rep.FromErr != "" {
		s.Result, s.Reason = ResultPolicy, "valid signature, but no single From address to bind it to: "+w.rep.FromErr
		return true
	}
	cert := signer.Certificate
	if !dane.HasAddress(cert, w.rep.From) {
		// RFC 8550 §3: the signer's address must match From.
		s.Result, s.Reason = ResultPolicy, fmt.Sprintf("valid signature, but the signer is %s and From is %s", describeAddresses(dane.CertAddresses(cert)), w.rep.From)
		return true
	}
	if reason := dane.CheckSigningCertificate(w.rep.From, cert, w.now); reason != "" {
		s.Result, s.Reason = ResultPolicy, "valid signature, but the signer certificate is not acceptable: "+reason
		return true
	}
	res, err := w.lookup(dane.SMIMEAName, dns.TypeSMIMEA)
	if err != nil {
		s.Result, s.Reason = ResultPolicy, "valid signature, but the From address has no SMIMEA owner name: "+err.Error()
		return true
	}
	if w.dnsOutcome(s, res, "SMIMEA", ResultPolicy) {
		if s.Binding == BindingNoRecord {
			s.Reason = "valid signature, but " + s.Reason
		}
		return true
	}
	rec, rejected := w.sel.Bind(w.rep.From, res.Records, cert, sv.Certificates, w.now)
	if rec == nil {
		s.Result, s.Binding = ResultPolicy, BindingMismatch
		s.Reason = "valid signature, but no secure SMIMEA record of " + w.rep.From + " binds the signer"
		if rs := rejectedReasons(rejected); rs != "" {
			s.Reason += ": " + rs
		}
		return true
	}
	s.Result, s.Binding = ResultPass, BindingBound
	s.Record = fmt.Sprintf("SMIMEA %d %d %d", rec.Usage, rec.Selector, rec.MatchingType)
	s.Reason = "valid signature, signer bound by DNSSEC-secure " + s.Record
	// Copies: the harvest queue must not keep the whole message alive.
	s.Certificate, s.Capabilities = bytes.Clone(signer.CertificateDER), bytes.Clone(signer.Capabilities)
	return true
}

func rejectedReasons(rejected []dane.Rejected) string {
	var rs []string
	for i, r := range rejected {
		if i == maxReasons {
			rs = append(rs, fmt.Sprintf("and %d more", len(rejected)-i))
			break
		}
		rs = append(rs, r.Reason)
	}
	return strings.Join(rs, "; ")
}

// algorithmName writes a signature and digest algorithm as "rsa-pss/sha256".
func algorithmName(sig string, h crypto.Hash) string {
	d := ""
	if h != 0 && h.Available() || h == crypto.MD5 || h == crypto.SHA1 {
		d = strings.ToLower(strings.ReplaceAll(h.String(), "-", ""))
	}
	switch {
	case sig == "" && d == "":
		return ""
	case d == "":
		return sig
	case sig == "":
		return d
	}
	return sig + "/" + d
}

// signerAddress picks the address among addrs that equals from, else the
// first one.
func signerAddress(addrs []string, from string) string {
	for _, a := range addrs {
		if from != "" && strings.EqualFold(a, from) {
			return a
		}
	}
	if len(addrs) > 0 {
		return addrs[0]
	}
	return ""
}

func describeAddresses(addrs []string) string {
	if len(addrs) == 0 {
		return "a certificate without an email address"
	}
	if len(addrs) > maxReasons {
		addrs = append(addrs[:maxReasons:maxReasons], "...")
	}
	return strings.Join(addrs, ", ")
}

// safeError returns err's text for a Reason without message content: Go's
// header parser quotes the offending line, which is cut off.
func safeError(err error) string {
	if err == nil {
		return ""
	}
	t := err.Error()
	for _, cut := range []string{"malformed MIME header line:", "malformed MIME header initial line:", "malformed MIME header:"} {
		if i := strings.Index(t, cut); i >= 0 {
			t = t[:i+len(cut)-1]
		}
	}
	return t
}
