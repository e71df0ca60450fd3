package smime

// Verification of S/MIME signed messages (RFC 8551 §3.5): CMS SignedData
// (RFC 5652 §5) carried either detached in a multipart/signed entity
// (RFC 1847 §2.1, protocol application/pkcs7-signature) or opaque in an
// application/pkcs7-mime entity with smime-type signed-data.
//
//	SignedData ::= SEQUENCE {
//	  version           CMSVersion,
//	  digestAlgorithms  SET OF DigestAlgorithmIdentifier,
//	  encapContentInfo  EncapsulatedContentInfo,
//	  certificates      [0] IMPLICIT CertificateSet OPTIONAL,
//	  crls              [1] IMPLICIT RevocationInfoChoices OPTIONAL,
//	  signerInfos       SET OF SignerInfo }
//
//	EncapsulatedContentInfo ::= SEQUENCE {
//	  eContentType  ContentType,                       -- id-data for MIME
//	  eContent      [0] EXPLICIT OCTET STRING OPTIONAL } -- absent: detached
//
//	SignerInfo ::= SEQUENCE {
//	  version             CMSVersion,
//	  sid                 IssuerAndSerialNumber | [0] SubjectKeyIdentifier,
//	  digestAlgorithm     DigestAlgorithmIdentifier,
//	  signedAttrs         [0] IMPLICIT SignedAttributes OPTIONAL,
//	  signatureAlgorithm  SignatureAlgorithmIdentifier,
//	  signature           OCTET STRING,
//	  unsignedAttrs       [1] IMPLICIT UnsignedAttributes OPTIONAL }
//
// Verification answers only "did the holder of this certificate's key sign
// this content": the certificate chain, its validity dates and the binding
// of the signer to the sender (DANE, package dane) are separate questions.

import (
	"bytes"
	"crypto"
	"crypto/dsa" //nolint:staticcheck // PKITS and old agents sign with DSA; reported, never a pass
	"crypto/ecdsa"
	"crypto/ed25519"
	_ "crypto/md5" // registers MD5 so that MD5 signatures can be reported (never a pass)
	"crypto/rsa"
	_ "crypto/sha1" // registers SHA-1, reported but never a pass
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Errors of signature verification. A [SignerResult] carries one of them
// (wrapped, with detail) as its Err; [VerifySignedData] and [VerifyEntity]
// return ErrMalformed, ErrNotSigned or ErrUnsupportedAlgorithm for input
// they cannot read at all.
var (
	// ErrNotSigned means the entity or ContentInfo is not S/MIME signed data.
	ErrNotSigned = errors.New("smime: not a signed message")
	// ErrBadSignature means the signature value does not verify.
	ErrBadSignature = errors.New("smime: signature does not verify")
	// ErrDigestMismatch means the message-digest attribute is not the
	// digest of the content (RFC 5652 §11.2): the content was changed.
	ErrDigestMismatch = errors.New("smime: message digest does not match the content")
	// ErrContentType means the content is not id-data, or the
	// content-type attribute is missing or differs from eContentType
	// (RFC 5652 §11.1, RFC 8551 §2.4).
	ErrContentType = errors.New("smime: content type is not id-data")
	// ErrBadAttributes means the signed attributes break RFC 5652 §5.3
	// or §11 (an attribute missing, repeated or with several values).
	ErrBadAttributes = errors.New("smime: bad signed attributes")
	// ErrNoSignerCertificate means SignedData carries no certificate that
	// the SignerIdentifier names.
	ErrNoSignerCertificate = errors.New("smime: signer certificate not in the message")
	// ErrWeakAlgorithm means the signature verifies but uses SHA-1, MD5 or
	// DSA (RFC 8551 §2.1, §2.2: SHA-1 and MD5 are no longer safe): it is
	// reported and never a pass.
	ErrWeakAlgorithm = errors.New("smime: signature uses a weak algorithm")
)

// Status is the outcome of one signer's signature.
type Status int

const (
	// StatusInvalid: the signature or the signed attributes do not verify,
	// or the signer certificate is missing. SignerResult.Err says why.
	StatusInvalid Status = iota
	// StatusValid: the signature verifies with an accepted algorithm.
	StatusValid
	// StatusWeak: the signature verifies mathematically but with SHA-1,
	// MD5 or DSA; it is reported, never a pass.
	StatusWeak
	// StatusUnsupported: the digest or signature algorithm is unknown
	// here, so nothing is said about the signature.
	StatusUnsupported
)

func (s Status) String() string {
	switch s {
	case StatusValid:
		return "valid"
	case StatusWeak:
		return "weak"
	case StatusUnsupported:
		return "unsupported"
	}
	return "invalid"
}

// SignatureAlgorithm names a signature scheme as verified.
type SignatureAlgorithm string

// The schemes Verify knows.
const (
	SigRSAPKCS1v15 SignatureAlgorithm = "rsa-pkcs1v15" // RFC 3370 §3.2, RFC 5754 §3.2
	SigRSAPSS      SignatureAlgorithm = "rsa-pss"      // RFC 4056
	SigECDSA       SignatureAlgorithm = "ecdsa"        // RFC 5753 §2.1.1, RFC 5754 §3.3
	SigEd25519     SignatureAlgorithm = "ed25519"      // RFC 8419 §3
	SigDSA         SignatureAlgorithm = "dsa"          // RFC 3370 §3.1 (weak)
)

// Form is how the signed entity carries its signature.
type Form int

const (
	// FormSignedData: a bare CMS SignedData was given to VerifySignedData.
	FormSignedData Form = iota
	// FormDetached: multipart/signed with application/pkcs7-signature
	// (RFC 8551 §3.5.3).
	FormDetached
	// FormOpaque: application/pkcs7-mime; smime-type=signed-data
	// (RFC 8551 §3.5.2).
	FormOpaque
)

func (f Form) String() string {
	switch f {
	case FormDetached:
		return "detached"
	case FormOpaque:
		return "opaque"
	}
	return "signed-data"
}

// SignerResult is the verdict on one SignerInfo.
type SignerResult struct {
	Status Status
	// Err is nil when Status is StatusValid; otherwise it wraps one of
	// ErrBadSignature, ErrDigestMismatch, ErrContentType,
	// ErrBadAttributes, ErrNoSignerCertificate, ErrWeakAlgorithm,
	// ErrUnsupportedAlgorithm or ErrMalformed with detail.
	Err error
	// Certificate is the signer's certificate from SignedData's
	// certificates, nil when none matches the SignerIdentifier or when
	// crypto/x509 refuses it (CertificateErr then says why, and the
	// signature is still checked with the key read from CertificateDER:
	// whether to trust such a certificate is the binding's question).
	Certificate    *x509.Certificate
	CertificateErr error
	// CertificateDER is the signer's certificate as the message carries
	// it, nil when none matches the SignerIdentifier.
	CertificateDER []byte
	// Digest is the digest algorithm (0 when unknown); DigestOID its
	// identifier as written.
	Digest    crypto.Hash
	DigestOID asn1.ObjectIdentifier
	// Signature is the signature scheme ("" when unknown); SignatureOID
	// the signatureAlgorithm identifier as written. PSS holds the
	// RSASSA-PSS parameters when Signature is SigRSAPSS.
	Signature    SignatureAlgorithm
	SignatureOID asn1.ObjectIdentifier
	PSS          *PSSParameters
	// SignedAttributes reports whether signedAttrs were present (then the
	// content-type and message-digest attributes were checked).
	SignedAttributes bool
	// SigningTime is the signing-time attribute (RFC 5652 §11.3), zero
	// when absent. It is reported, not checked.
	SigningTime time.Time
	// Capabilities is the DER of the signed SMIMECapabilities attribute's
	// value (RFC 8551 §2.5.2: SMIMECapabilities ::= SEQUENCE OF
	// SMIMECapability, the algorithms the signer's agent can decrypt, in
	// order of preference), nil when absent or not one SEQUENCE. It is
	// copied out of the message and not otherwise checked: it is only as
	// trustworthy as the signature over it and the binding of the signer.
	Capabilities []byte
}

// PSSParameters are RSASSA-PSS-params (RFC 4055 §3.1).
type PSSParameters struct {
	Hash       crypto.Hash
	MGFHash    crypto.Hash
	SaltLength int
}

// Verification is the result of verifying one signed entity.
type Verification struct {
	Form Form
	// Content is the signed content: for FormDetached the first part of
	// the multipart/signed entity in canonical form (CRLF line ends), for
	// FormOpaque and FormSignedData the eContent (the inner MIME entity).
	Content []byte
	// Certificates are the certificates SignedData carries that
	// crypto/x509 parses, in order.
	Certificates []*x509.Certificate
	// Signers has one result per SignerInfo, in order.
	Signers []SignerResult
}

// Valid reports whether there is at least one signer and every signer's
// signature is StatusValid (RFC 8551 §3.5 leaves several signers to local
// policy; like OpenSSL, one bad signer makes the whole bad).
func (v *Verification) Valid() bool {
	if v == nil || len(v.Signers) == 0 {
		return false
	}
	for _, s := range v.Signers {
		if s.Status != StatusValid {
			return false
		}
	}
	return true
}

// Verified reports whether every signature verifies mathematically
// (StatusValid or StatusWeak): the verdict of `openssl cms -verify
// -noverify`, which accepts SHA-1.
func (v *Verification) Verified() bool {
	if v == nil || len(v.Signers) == 0 {
		return false
	}
	for _, s := range v.Signers {
		if s.Status != StatusValid && s.Status != StatusWeak {
			return false
		}
	}
	return true
}

// VerifySignedData verifies a DER or BER ContentInfo holding a SignedData
// (RFC 5652 §5.1). detached is the content for a detached signature (nil
// when the SignedData encapsulates it); it is hashed exactly as given.
//
// The returned error is about the input as a whole: ErrNotSigned when the
// ContentInfo is not SignedData, ErrMalformed when it cannot be read, and
// ErrMalformed when the content is both detached and encapsulated or
// neither. A signature that does not verify is not an error: it is a
// SignerResult whose Err says why.
func VerifySignedData(der, detached []byte) (*Verification, error) {
	sd, err := parseSignedData(der)
	if err != nil {
		return nil, err
	}
	content := sd.eContent
	switch {
	case detached != nil && sd.eContent != nil:
		return nil, malformed("content both encapsulated and detached")
	case detached != nil:
		content = detached
	case sd.eContent == nil:
		return nil, malformed("detached signature without content")
	}
	v := &Verification{Form: FormSignedData, Content: content}
	for _, c := range sd.certs {
		if c.cert != nil {
			v.Certificates = append(v.Certificates, c.cert)
		}
	}
	for _, si := range sd.signerInfos {
		v.Signers = append(v.Signers, verifySigner(si, sd, content))
	}
	return v, nil
}

// signedData is the part of a SignedData that verification reads.
type signedData struct {
	eContentType asn1.ObjectIdentifier
	eContent     []byte // nil when detached
	certs        []embeddedCert
	signerInfos  []berElem
}

func parseSignedData(der []byte) (*signedData, error) {
	ci, rest, err := parseBER(der, 0)
	if err != nil {
		return nil, err
	}
	if len(bytes.Trim(rest, "\x00\r\n\t ")) != 0 { // some agents pad the DER
		return nil, malformed("%d octets after the ContentInfo", len(rest))
	}
	if !ci.is(classUniversal, numSequence, true) {
		return nil, malformed("ContentInfo is not a SEQUENCE")
	}
	kids, err := ci.children()
	if err != nil {
		return nil, err
	}
	if len(kids) != 2 || !kids[1].is(classContext, 0, true) {
		return nil, malformed("ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content } expected")
	}
	ct, err := kids[0].oid()
	if err != nil {
		return nil, err
	}
	if !ct.Equal(oidSignedData()) { // RFC 5652 §5.1
		return nil, fmt.Errorf("%w: content type %v", ErrNotSigned, ct)
	}
	inner, err := kids[1].children()
	if err != nil {
		return nil, err
	}
	if len(inner) != 1 || !inner[0].is(classUniversal, numSequence, true) {
		return nil, malformed("SignedData is not one SEQUENCE")
	}
	f, err := inner[0].children()
	if err != nil {
		return nil, err
	}
	if len(f) < 4 {
		return nil, malformed("SignedData with %d elements", len(f))
	}
	if !f[0].is(classUniversal, numInteger, false) {
		return nil, malformed("SignedData version expected")
	}
	if !f[1].is(classUniversal, numSet, true) {
		return nil, malformed("digestAlgorithms expected")
	}
	sd := &signedData{}
	// encapContentInfo (RFC 5652 §5.2).
	if !f[2].is(classUniversal, numSequence, true) {
		return nil, malformed("EncapsulatedContentInfo expected")
	}
	eci, err := f[2].children()
	if err != nil {
		return nil, err
	}
	if len(eci) < 1 || len(eci) > 2 {
		return nil, malformed("EncapsulatedContentInfo with %d elements", len(eci))
	}
	if sd.eContentType, err = eci[0].oid(); err != nil {
		return nil, err
	}
	if len(eci) == 2 {
		if !eci[1].is(classContext, 0, true) {
			return nil, malformed("eContent is not [0] EXPLICIT")
		}
		oc, err := eci[1].children()
		if err != nil {
			return nil, err
		}
		if len(oc) != 1 || !oc[0].is(classUniversal, numOctetString, oc[0].compound) {
			return nil, malformed("eContent is not one OCTET STRING")
		}
		if sd.eContent, err = oc[0].octets(); err != nil {
			return nil, err
		}
	}
	i := 3
	if f[i].is(classContext, 0, true) { // certificates [0] IMPLICIT CertificateSet
		cs, err := f[i].children()
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			// RFC 5652 §10.2.2: only the plain Certificate choice (a
			// SEQUENCE) is read; attribute and other certificates are
			// skipped, as are certificates x509 cannot parse.
			if !c.is(classUniversal, numSequence, true) {
				continue
			}
			if ec, err := parseEmbeddedCert(c.full); err == nil {
				sd.certs = append(sd.certs, ec)
			}
		}
		i++
	}
	if i < len(f) && f[i].is(classContext, 1, true) { // crls: not needed
		i++
	}
	if i != len(f)-1 || !f[i].is(classUniversal, numSet, true) {
		return nil, malformed("signerInfos expected as the last element")
	}
	if sd.signerInfos, err = f[i].children(); err != nil {
		return nil, err
	}
	return sd, nil
}

// verifySigner checks one SignerInfo (RFC 5652 §5.3, §5.4, §5.6).
func verifySigner(si berElem, sd *signedData, content []byte) (r SignerResult) {
	r.Status = StatusInvalid
	fail := func(status Status, err error) SignerResult {
		r.Status, r.Err = status, err
		return r
	}
	if !si.is(classUniversal, numSequence, true) {
		return fail(StatusInvalid, malformed("SignerInfo is not a SEQUENCE"))
	}
	f, err := si.children()
	if err != nil {
		return fail(StatusInvalid, err)
	}
	if len(f) < 5 || !f[0].is(classUniversal, numInteger, false) {
		return fail(StatusInvalid, malformed("SignerInfo with %d elements", len(f)))
	}
	sid := f[1]
	var digestParams *berElem
	if r.DigestOID, digestParams, err = f[2].algorithm(); err != nil {
		return fail(StatusInvalid, err)
	}
	i := 3
	var attrs *berElem
	if f[i].is(classContext, 0, true) {
		attrs = &f[i]
		i++
	}
	if i+1 >= len(f) {
		return fail(StatusInvalid, malformed("SignerInfo: signature expected"))
	}
	var sigParams *berElem
	if r.SignatureOID, sigParams, err = f[i].algorithm(); err != nil {
		return fail(StatusInvalid, err)
	}
	if !f[i+1].is(classUniversal, numOctetString, f[i+1].compound) {
		return fail(StatusInvalid, malformed("SignerInfo: signature is not an OCTET STRING"))
	}
	sig, err := f[i+1].octets()
	if err != nil {
		return fail(StatusInvalid, err)
	}
	if rest := f[i+2:]; len(rest) > 1 || (len(rest) == 1 && !rest[0].is(classContext, 1, true)) {
		return fail(StatusInvalid, malformed("SignerInfo: unexpected element after the signature"))
	}

	// The signer's certificate (RFC 5652 §5.3 sid).
	signer, err := findSigner(sid, sd.certs)
	if err != nil {
		return fail(StatusInvalid, err)
	}
	if signer != nil {
		r.Certificate, r.CertificateErr, r.CertificateDER = signer.cert, signer.err, signer.der
	}

	// Algorithms. The digest parameters must be absent or NULL (RFC 5754
	// §2: SHOULD be absent; NULL is accepted as §2 asks of receivers).
	h, ok := hashByOID(r.DigestOID)
	if !ok && r.DigestOID.Equal(oidMD5()) {
		h, ok = crypto.MD5, true
	}
	if !ok || !absentOrNull(digestParams) {
		return fail(StatusUnsupported, fmt.Errorf("%w: digest algorithm %v", ErrUnsupportedAlgorithm, r.DigestOID))
	}
	r.Digest = h
	if err := r.signatureScheme(sigParams); err != nil {
		return fail(StatusUnsupported, err)
	}
	if signer == nil {
		return fail(StatusInvalid, ErrNoSignerCertificate)
	}

	// What was signed: the content itself, or the DER SET OF the signed
	// attributes (RFC 5652 §5.4: the [0] IMPLICIT tag becomes EXPLICIT
	// SET OF for the digest).
	contentDigest := digest(h, content)
	signed := content
	if attrs == nil {
		// RFC 5652 §5.3: without signed attributes the content type
		// must be id-data.
		if !sd.eContentType.Equal(oidData()) {
			return fail(StatusInvalid, fmt.Errorf("%w: eContentType %v without signed attributes", ErrContentType, sd.eContentType))
		}
	} else {
		r.SignedAttributes = true
		if err := r.checkAttributes(*attrs, sd.eContentType, contentDigest); err != nil {
			return fail(StatusInvalid, err)
		}
		signed = append([]byte{tagSet}, attrs.full[1:]...)
	}

	if err := r.checkSignature(signer.pub, signed, sig); err != nil {
		return fail(StatusInvalid, err)
	}
	// RFC 8551 §2.1, §2.2: SHA-256 and up with RSA, RSA-PSS, ECDSA,
	// Ed25519. SHA-1 and MD5 (and DSA) are reported, never a pass.
	if h == crypto.SHA1 || h == crypto.MD5 || r.Signature == SigDSA {
		return fail(StatusWeak, fmt.Errorf("%w: %v with %s", ErrWeakAlgorithm, h, r.Signature))
	}
	if h == crypto.SHA224 {
		return fail(StatusWeak, fmt.Errorf("%w: %v is not an S/MIME 4.0 digest", ErrWeakAlgorithm, h))
	}
	r.Status = StatusValid
	return r
}

func digest(h crypto.Hash, b []byte) []byte {
	w := h.New()
	w.Write(b)
	return w.Sum(nil)
}

// findSigner returns the certificate a SignerIdentifier names (RFC 5652
// §5.3, §10.2.4), nil when none does.
func findSigner(sid berElem, certs []embeddedCert) (*embeddedCert, error) {
	switch {
	case sid.is(classUniversal, numSequence, true): // issuerAndSerialNumber
		kids, err := sid.children()
		if err != nil {
			return nil, err
		}
		if len(kids) != 2 {
			return nil, malformed("IssuerAndSerialNumber")
		}
		serial, err := kids[1].bigInt()
		if err != nil {
			return nil, err
		}
		for i, c := range certs {
			if bytes.Equal(kids[0].full, c.rawIssuer) && serial.Cmp(c.serial) == 0 {
				return &certs[i], nil
			}
		}
	case sid.is(classContext, 0, false): // [0] subjectKeyIdentifier
		for i, c := range certs {
			if c.cert != nil && namesSKI(sid.content, c.cert) {
				return &certs[i], nil
			}
		}
	default:
		return nil, malformed("SignerIdentifier")
	}
	return nil, nil
}

// signatureScheme maps signatureAlgorithm to a scheme and checks that it
// agrees with the digest algorithm.
func (r *SignerResult) signatureScheme(params *berElem) error {
	o := r.SignatureOID
	unsupported := fmt.Errorf("%w: signature algorithm %v", ErrUnsupportedAlgorithm, o)
	var implied crypto.Hash // the hash the OID names, if any
	switch {
	case o.Equal(oidRSAEncryption()): // RFC 3370 §3.2: the hash is the digestAlgorithm
		r.Signature = SigRSAPKCS1v15
	case o.Equal(oidRSAPSS()): // RFC 4056 §2
		p, err := parsePSSParams(params)
		if err != nil {
			return err
		}
		r.Signature, r.PSS, implied = SigRSAPSS, p, p.Hash
	case o.Equal(oidEd25519()): // RFC 8419 §3.1: digest SHA-512, parameters absent
		if params != nil {
			return malformed("Ed25519 with parameters")
		}
		r.Signature = SigEd25519
	case o.Equal(oidECPublicKey()): // seen in the wild; the hash is the digestAlgorithm
		r.Signature = SigECDSA
	default:
		s, h, ok := signatureByOID(o)
		if !ok {
			return unsupported
		}
		r.Signature, implied = s, h
	}
	if r.Signature == SigRSAPKCS1v15 || r.Signature == SigECDSA || r.Signature == SigDSA {
		// RFC 5754 §3.2, §3.3: parameters absent or NULL.
		if !absentOrNull(params) {
			return malformed("parameters of %v", o)
		}
	}
	// RFC 5754 §3: the hash of a combined OID and that of PSS must be the
	// digestAlgorithm. OpenSSL refuses a mismatch too.
	if implied != 0 && implied != r.Digest {
		return fmt.Errorf("%w: signature algorithm %v with digest %v", ErrUnsupportedAlgorithm, o, r.Digest)
	}
	return nil
}

// checkAttributes reads the signed attributes (RFC 5652 §5.3, §11): the
// content-type must be present once and equal eContentType, which must be
// id-data for a MIME entity (RFC 8551 §2.4.1); the message-digest must be
// present once and equal the content's digest; signing-time and
// SMIMECapabilities are reported.
func (r *SignerResult) checkAttributes(attrs berElem, eContentType asn1.ObjectIdentifier, contentDigest []byte) error {
	list, err := attrs.children()
	if err != nil {
		return err
	}
	var seenCT, seenMD bool
	seen := map[string]bool{}
	for _, a := range list {
		kids, err := a.children()
		if err != nil {
			return err
		}
		if len(kids) != 2 || !kids[1].is(classUniversal, numSet, true) {
			return malformed("Attribute ::= SEQUENCE { attrType, attrValues SET } expected")
		}
		typ, err := kids[0].oid()
		if err != nil {
			return err
		}
		// RFC 5652 §5.3: no attribute type more than once.
		if seen[typ.String()] {
			return fmt.Errorf("%w: attribute %v more than once", ErrBadAttributes, typ)
		}
		seen[typ.String()] = true
		vals, err := kids[1].children()
		if err != nil {
			return err
		}
		switch {
		case typ.Equal(oidAttrContentType()): // RFC 5652 §11.1
			if len(vals) != 1 {
				return fmt.Errorf("%w: content-type with %d values", ErrBadAttributes, len(vals))
			}
			ct, err := vals[0].oid()
			if err != nil {
				return err
			}
			if !ct.Equal(eContentType) {
				return fmt.Errorf("%w: content-type attribute %v, eContentType %v", ErrContentType, ct, eContentType)
			}
			seenCT = true
		case typ.Equal(oidAttrMessageDigest()): // RFC 5652 §11.2
			if len(vals) != 1 || !vals[0].is(classUniversal, numOctetString, false) {
				return fmt.Errorf("%w: message-digest is not one OCTET STRING", ErrBadAttributes)
			}
			if !bytes.Equal(vals[0].content, contentDigest) {
				return ErrDigestMismatch
			}
			seenMD = true
		case typ.Equal(oidAttrSigningTime()): // RFC 5652 §11.3: reported
			if len(vals) != 1 {
				return fmt.Errorf("%w: signing-time with %d values", ErrBadAttributes, len(vals))
			}
			var t time.Time
			if _, err := asn1.Unmarshal(vals[0].full, &t); err == nil {
				r.SigningTime = t
			}
		case typ.Equal(oidAttrSMIMECapabilities()): // RFC 8551 §2.5.2: reported
			// A malformed value is not the signature's fault (OpenSSL
			// does not read it either): it is left out, not refused.
			if len(vals) == 1 && vals[0].is(classUniversal, numSequence, true) {
				r.Capabilities = append([]byte(nil), vals[0].full...)
			}
		}
	}
	if !seenCT || !seenMD { // RFC 5652 §5.3: both MUST be present
		return fmt.Errorf("%w: content-type or message-digest missing", ErrBadAttributes)
	}
	// RFC 8551 §3.1: S/MIME signs MIME entities, eContentType id-data.
	if !eContentType.Equal(oidData()) {
		return fmt.Errorf("%w: %v", ErrContentType, eContentType)
	}
	return nil
}

// checkSignature verifies sig over signed with the signer's public key.
func (r *SignerResult) checkSignature(pub crypto.PublicKey, signed, sig []byte) error {
	bad := func(detail string) error { return fmt.Errorf("%w: %s", ErrBadSignature, detail) }
	switch r.Signature {
	case SigRSAPKCS1v15, SigRSAPSS:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return bad("certificate key is not RSA")
		}
		d := digest(r.Digest, signed)
		var err error
		if r.Signature == SigRSAPSS {
			if r.PSS.MGFHash != r.PSS.Hash { // crypto/rsa uses one hash for both
				return fmt.Errorf("%w: RSASSA-PSS with MGF1 %v and hash %v", ErrUnsupportedAlgorithm, r.PSS.MGFHash, r.PSS.Hash)
			}
			err = rsa.VerifyPSS(k, r.Digest, d, sig, &rsa.PSSOptions{SaltLength: r.PSS.SaltLength, Hash: r.Digest})
		} else {
			err = rsa.VerifyPKCS1v15(k, r.Digest, d, sig)
		}
		if err != nil {
			return bad(err.Error())
		}
	case SigECDSA:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return bad("certificate key is not ECDSA")
		}
		// RFC 5753 §2.1.1, RFC 5480 §2: the digest is the hash of the
		// signed octets; ECDSA truncates it to the curve order itself.
		if !ecdsa.VerifyASN1(k, digest(r.Digest, signed), sig) {
			return bad("ECDSA")
		}
	case SigEd25519:
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return bad("certificate key is not Ed25519")
		}
		// RFC 8419 §3.1: PureEdDSA over the signed attributes; the
		// digestAlgorithm (SHA-512) only hashes the content for the
		// message-digest attribute.
		if !ed25519.Verify(k, signed, sig) {
			return bad("Ed25519")
		}
	case SigDSA:
		k, ok := pub.(*dsa.PublicKey)
		if !ok {
			return bad("certificate key is not DSA")
		}
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(sig, &rs); err != nil || len(rest) != 0 {
			return bad("DSA signature is not Dss-Sig-Value")
		}
		d := digest(r.Digest, signed)
		if n := (k.Q.BitLen() + 7) / 8; len(d) > n { // FIPS 186-4 §4.6: leftmost bits
			d = d[:n]
		}
		if !dsa.Verify(k, d, rs.R, rs.S) {
			return bad("DSA")
		}
	default:
		return fmt.Errorf("%w: %s", ErrUnsupportedAlgorithm, r.Signature)
	}
	return nil
}

// signatureByOID maps the combined signature OIDs of RFC 3370 §3, RFC
// 5754 §3 and RFC 5758 §3.2 to a scheme and its hash.
func signatureByOID(o asn1.ObjectIdentifier) (SignatureAlgorithm, crypto.Hash, bool) {
	rsa := func(n int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, n} }
	ec := func(arc ...int) asn1.ObjectIdentifier {
		return append(asn1.ObjectIdentifier{1, 2, 840, 10045, 4}, arc...)
	}
	dsaOID := func(arc ...int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier(arc) }
	for _, m := range []struct {
		oid asn1.ObjectIdentifier
		s   SignatureAlgorithm
		h   crypto.Hash
	}{
		{rsa(4), SigRSAPKCS1v15, crypto.MD5},
		{rsa(5), SigRSAPKCS1v15, crypto.SHA1},
		{rsa(14), SigRSAPKCS1v15, crypto.SHA224},
		{rsa(11), SigRSAPKCS1v15, crypto.SHA256},
		{rsa(12), SigRSAPKCS1v15, crypto.SHA384},
		{rsa(13), SigRSAPKCS1v15, crypto.SHA512},
		{ec(1), SigECDSA, crypto.SHA1},
		{ec(3, 1), SigECDSA, crypto.SHA224},
		{ec(3, 2), SigECDSA, crypto.SHA256},
		{ec(3, 3), SigECDSA, crypto.SHA384},
		{ec(3, 4), SigECDSA, crypto.SHA512},
		{dsaOID(1, 2, 840, 10040, 4, 1), SigDSA, 0}, // id-dsa: hash from digestAlgorithm
		{dsaOID(1, 2, 840, 10040, 4, 3), SigDSA, crypto.SHA1},
		{dsaOID(2, 16, 840, 1, 101, 3, 4, 3, 1), SigDSA, crypto.SHA224},
		{dsaOID(2, 16, 840, 1, 101, 3, 4, 3, 2), SigDSA, crypto.SHA256},
	} {
		if o.Equal(m.oid) {
			return m.s, m.h, true
		}
	}
	return "", 0, false
}

// parsePSSParams reads RSASSA-PSS-params (RFC 4055 §3.1): hashAlgorithm
// [0], maskGenAlgorithm [1] (MGF1 only), saltLength [2], trailerField [3]
// (must be 1), each EXPLICIT, defaulting to SHA-1, MGF1-SHA-1, 20 and 1.
func parsePSSParams(p *berElem) (*PSSParameters, error) {
	out := &PSSParameters{Hash: crypto.SHA1, MGFHash: crypto.SHA1, SaltLength: 20}
	if p == nil || absentOrNull(p) {
		// RFC 4056 §2: the parameters MUST be present; absent means the
		// defaults, which the SHA-1 check then reports.
		return out, nil
	}
	if !p.is(classUniversal, numSequence, true) {
		return nil, malformed("RSASSA-PSS-params is not a SEQUENCE")
	}
	kids, err := p.children()
	if err != nil {
		return nil, err
	}
	last := -1
	for _, k := range kids {
		if k.class != classContext || !k.compound || k.num <= last || k.num > 3 {
			return nil, malformed("RSASSA-PSS-params field")
		}
		last = k.num
		inner, err := k.children()
		if err != nil {
			return nil, err
		}
		if len(inner) != 1 {
			return nil, malformed("RSASSA-PSS-params field [%d]", k.num)
		}
		v := inner[0]
		switch k.num {
		case 0:
			o, params, err := v.algorithm()
			if err != nil {
				return nil, err
			}
			h, ok := hashByOID(o)
			if !ok || !absentOrNull(params) {
				return nil, fmt.Errorf("%w: RSASSA-PSS hash %v", ErrUnsupportedAlgorithm, o)
			}
			out.Hash = h
		case 1:
			o, params, err := v.algorithm()
			if err != nil {
				return nil, err
			}
			if !o.Equal(oidMGF1()) || params == nil {
				return nil, fmt.Errorf("%w: RSASSA-PSS mask generation %v", ErrUnsupportedAlgorithm, o)
			}
			ho, hp, err := params.algorithm()
			if err != nil {
				return nil, err
			}
			h, ok := hashByOID(ho)
			if !ok || !absentOrNull(hp) {
				return nil, fmt.Errorf("%w: MGF1 hash %v", ErrUnsupportedAlgorithm, ho)
			}
			out.MGFHash = h
		case 2:
			n, err := v.smallInt()
			if err != nil {
				return nil, err
			}
			out.SaltLength = n
		case 3:
			if n, err := v.smallInt(); err != nil || n != 1 { // RFC 4055 §3.1: trailerField 1
				return nil, malformed("RSASSA-PSS trailerField")
			}
		}
	}
	return out, nil
}

// Object identifiers of signed data (functions, like oid.go's, so that
// the package keeps no mutable state).
func oidSignedData() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2} // RFC 5652 §5.1
}
func oidMD5() asn1.ObjectIdentifier     { return asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5} }     // RFC 3370 §2.2
func oidRSAPSS() asn1.ObjectIdentifier  { return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10} } // RFC 4055 §3.1
func oidEd25519() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 3, 101, 112} }              // RFC 8410 §3
func oidAttrContentType() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3} // RFC 5652 §11.1
}
func oidAttrMessageDigest() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4} // RFC 5652 §11.2
}
func oidAttrSigningTime() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5} // RFC 5652 §11.3
}
func oidAttrSMIMECapabilities() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15} // RFC 8551 §2.5.2
}

// embeddedCert is a certificate from SignedData's certificates: parsed by
// crypto/x509 when it can, else read just far enough to name and verify
// the signer (issuer, serial number and public key). crypto/x509 refuses
// some certificates OpenSSL reads (a negative serial number, some CRL
// distribution point forms, as in PKITS); the signature question does not
// depend on them.
type embeddedCert struct {
	der       []byte
	cert      *x509.Certificate // nil when crypto/x509 refuses it
	err       error             // why crypto/x509 refused it
	rawIssuer []byte
	serial    *big.Int
	pub       crypto.PublicKey
}

// parseEmbeddedCert reads a Certificate (RFC 5280 §4.1).
func parseEmbeddedCert(der []byte) (embeddedCert, error) {
	c := embeddedCert{der: der}
	if cert, err := x509.ParseCertificate(der); err == nil {
		c.cert, c.rawIssuer, c.serial, c.pub = cert, cert.RawIssuer, cert.SerialNumber, cert.PublicKey
		return c, nil
	} else {
		c.err = err
	}
	// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
	// signatureValue }; TBSCertificate ::= SEQUENCE { [0] version
	// OPTIONAL, serialNumber, signature, issuer, validity, subject,
	// subjectPublicKeyInfo, ... } (RFC 5280 §4.1).
	var cert struct {
		TBS asn1.RawValue
		Alg asn1.RawValue
		Sig asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &cert); err != nil || len(rest) != 0 {
		return c, malformed("certificate: %v", err)
	}
	tbs, _, err := parseBER(cert.TBS.FullBytes, 0)
	if err != nil {
		return c, err
	}
	f, err := tbs.children()
	if err != nil {
		return c, err
	}
	if len(f) > 0 && f[0].is(classContext, 0, true) {
		f = f[1:]
	}
	if len(f) < 6 {
		return c, malformed("TBSCertificate")
	}
	if c.serial, err = f[0].bigInt(); err != nil {
		return c, err
	}
	c.rawIssuer = f[2].full
	if c.pub, err = x509.ParsePKIXPublicKey(f[5].full); err != nil {
		return c, malformed("subjectPublicKeyInfo: %v", err)
	}
	return c, nil
}
