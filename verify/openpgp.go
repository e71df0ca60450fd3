package verify

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/openpgp"
)

// openpgp verifies a PGP/MIME signed entity into s. The signer's key can
// only come from the From address's OPENPGPKEY records, so the entity is
// first read without a key (structure, signature packet), then the records
// are looked up and the signature is checked against the keys they hold.
func (w *walker) openpgp(entity []byte, s *Signature) bool {
	first := openpgp.VerifyMIME(entity, nil, w.now)
	switch {
	case errors.Is(first.Err, openpgp.ErrNotSigned):
		return false
	case errors.Is(first.Err, openpgp.ErrUnknownSigner): // the expected outcome without a key
	case errors.Is(first.Err, openpgp.ErrMalformedSignature):
		s.Result, s.Reason = ResultPermError, "malformed PGP/MIME signature: "+safeError(first.Err)
		return true
	default:
		s.Result, s.Reason = ResultPermError, "PGP/MIME signature not readable: "+safeError(first.Err)
		return true
	}
	s.SigningTime = first.Created
	s.Algorithm = algorithmName("openpgp", first.Hash)
	s.Fingerprint = first.IssuerFingerprint
	keyID := fmt.Sprintf("%016X", first.KeyID)

	if w.rep.FromErr != "" {
		s.Result, s.Reason = ResultPolicy, "PGP/MIME signature by key ID "+keyID+", but no single From address to find the signer key for: "+w.rep.FromErr
		return true
	}
	res, err := w.lookup(dane.OPENPGPKEYName, dns.TypeOPENPGPKEY)
	if err != nil {
		s.Result, s.Reason = ResultPolicy, "the From address has no OPENPGPKEY owner name: "+err.Error()
		return true
	}
	if w.dnsOutcome(s, res, "OPENPGPKEY", ResultNeutral) {
		if s.Binding == BindingNoRecord {
			s.Reason += ": the signature by key ID " + keyID + " cannot be checked without the signer's key"
		}
		return true
	}
	var keys []openpgp.Key
	var rejected []openpgp.Rejected
	if w.v.Keys != nil {
		keys, rejected = w.v.Keys.SigningKeys(w.rep.From, res.Records, w.now)
	} else {
		keys, rejected = openpgp.SigningKeys(w.rep.From, res.Records, w.now)
	}
	v := openpgp.VerifyMIME(entity, openpgp.Keyring(keys), w.now)
	if v.Fingerprint != "" {
		s.Fingerprint = v.Fingerprint
	}
	switch {
	case v.Err == nil:
		s.Valid = true
		s.Result, s.Binding, s.Record = ResultPass, BindingBound, "OPENPGPKEY"
		s.Signer = w.rep.From // SigningKeys took only keys with a user ID for From
		s.Reason = "valid signature, signer bound by DNSSEC-secure OPENPGPKEY"
	case errors.Is(v.Err, openpgp.ErrUnknownSigner):
		s.Result, s.Binding = ResultPolicy, BindingMismatch
		if len(keys) == 0 {
			s.Reason = "the OPENPGPKEY records of " + w.rep.From + " hold no usable signing key"
			var rs []dane.Rejected
			for _, r := range rejected {
				rs = append(rs, dane.Rejected{Reason: r.Reason})
			}
			if t := rejectedReasons(rs); t != "" {
				s.Reason += ": " + t
			}
		} else {
			s.Reason = fmt.Sprintf("signed by key ID %s, which is not among the %d key(s) the OPENPGPKEY records of %s publish", keyID, len(keys), w.rep.From)
		}
	case errors.Is(v.Err, openpgp.ErrBadSignature):
		s.Result, s.Reason = ResultFail, "the signature does not verify: "+safeError(v.Err)
	case errors.Is(v.Err, openpgp.ErrWeakHash):
		s.Result, s.Reason = ResultPolicy, "the signature uses a broken hash algorithm; never a pass"
	case errors.Is(v.Err, openpgp.ErrSignerKey), errors.Is(v.Err, openpgp.ErrMICAlg):
		s.Result, s.Reason = ResultPolicy, "the signature is not acceptable: "+safeError(v.Err)
	default:
		s.Result, s.Reason = ResultPermError, "malformed PGP/MIME signature: "+safeError(v.Err)
	}
	return true
}
