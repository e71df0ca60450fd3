package openpgp

// PGP/MIME signature verification (RFC 3156 §5), the inbound counterpart of
// EncryptMIME: bytes and candidate keys in, one Verification out.
//
// A signed entity looks like this (RFC 3156 §5, RFC 1847 §2.1):
//
//	Content-Type: multipart/signed; micalg=pgp-sha256;
//	    protocol="application/pgp-signature"; boundary="b"
//
//	--b
//	Content-Type: text/plain            <- signed: these header fields,
//	                                       the empty line and the body,
//	Hello.                              <- with CRLF line ends
//	--b                                 <- the CRLF before this line
//	Content-Type: application/pgp-signature   belongs to the delimiter
//
//	-----BEGIN PGP SIGNATURE-----
//	...
//	-----END PGP SIGNATURE-----
//	--b--
//
// The first part is hashed exactly as it travelled, except that line ends
// become CRLF (RFC 3156 §5: the receiving MTA may have turned them into its
// local convention). Trailing whitespace is not removed: RFC 3156 §3 makes
// the sender responsible for leaving none (it must encode it), and GnuPG
// and Thunderbird hash it as it is, so a signed part whose trailing
// whitespace a gateway stripped or added fails, as it does for them.

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/danemilter/danemilter/mimeentity"
)

// Reasons a PGP/MIME signature is not valid, carried wrapped in
// Verification.Err; test with errors.Is.
var (
	// ErrNotSigned: the entity is not an RFC 3156 multipart/signed entity
	// with protocol "application/pgp-signature". Inline OpenPGP
	// (cleartext signatures in a text body), S/MIME and unsigned entities
	// get this error; the Verification then says nothing else.
	ErrNotSigned = errors.New("openpgp: not PGP/MIME signed")
	// ErrMalformedSignature: the entity claims to be PGP/MIME signed but
	// its structure is broken: no closing delimiter, not two parts, a
	// second part that is not application/pgp-signature, armor or
	// packets that do not parse, no signature packet.
	ErrMalformedSignature = errors.New("openpgp: malformed PGP/MIME signed entity")
	// ErrUnknownSigner: no key in the keyring has the key ID of any
	// signature.
	ErrUnknownSigner = errors.New("openpgp: signer key not in the keyring")
	// ErrBadSignature: the signature does not verify over the signed part
	// with the signer's key: the content, its headers or the signature
	// were changed.
	ErrBadSignature = errors.New("openpgp: bad signature")
	// ErrSignerKey: the signature verifies, but the key that made it was
	// revoked or expired when the signature was made, is not flagged for
	// signing, uses an algorithm or size not accepted for signatures (the
	// same rule as SigningKeys: RSA under 2048 bits, DSA, unsupported
	// curves), or the signature itself is expired or made in the future.
	ErrSignerKey = errors.New("openpgp: signer key not valid for this signature")
	// ErrWeakHash: the signature verifies but uses MD5, SHA-1 or
	// RIPEMD-160, which are reported, never a pass.
	ErrWeakHash = errors.New("openpgp: signature uses a broken hash algorithm")
	// ErrMICAlg: the signature verifies but the micalg parameter is
	// missing or names another hash algorithm than the signature's
	// (RFC 3156 §5).
	ErrMICAlg = errors.New("openpgp: micalg does not match the signature")
)

// maxClockSkew is how far in the future a signature may be made and still
// count: the sender's clock may run ahead of ours.
const maxClockSkew = 10 * time.Minute

// maxSignatures bounds the signature packets of one signature part.
const maxSignatures = 16

// Verification is the outcome of [VerifyMIME]: whether the signature is
// valid, why not, and what it says about itself. Fields the signature did
// not reach stay zero: after ErrNotSigned or an ErrMalformedSignature from
// the MIME structure all of them are.
type Verification struct {
	// Err is nil when the signature is valid, else one of the errors
	// above, wrapped with the detail.
	Err error
	// KeyID is the issuer key ID of the signature (the signing key, a
	// subkey or the primary key).
	KeyID uint64
	// IssuerFingerprint is the signing key's fingerprint as the
	// signature names it (upper-case hex), empty when it names none.
	IssuerFingerprint string
	// Signer is the keyring entity that holds the signing key, nil when
	// none does.
	Signer *pgp.Entity
	// Fingerprint is Signer's primary key fingerprint in upper-case hex,
	// as [Key].Fingerprint spells it, so that binding the signer to an
	// OPENPGPKEY record is a comparison. Empty when Signer is nil.
	Fingerprint string
	// SigningKeyFingerprint is the fingerprint of the (sub)key that made
	// the signature, when Signer is set.
	SigningKeyFingerprint string
	// Hash is the signature's hash algorithm; MICAlg the micalg parameter
	// as given.
	Hash   crypto.Hash
	MICAlg string
	// Created is the signature's creation time.
	Created time.Time
	// Signed is the first part as it was hashed: its header fields, the
	// empty line and its body, with CRLF line ends, without the CRLF
	// that belongs to the following delimiter (RFC 3156 §5, RFC 2046
	// §5.1.1).
	Signed []byte
	// Signatures is the number of signature packets in the second part;
	// the first by a key in the keyring is the one verified.
	Signatures int
}

// Valid reports whether the signature is valid: good, by a key in the
// keyring valid when it signed, with a strong hash that micalg names.
func (v *Verification) Valid() bool { return v.Err == nil }

// VerifyMIME verifies the RFC 3156 §5 multipart/signed entity (its header
// fields, an empty line and its body; other header fields such as From may
// be present and are ignored) against keyring, the candidate signer keys,
// at time now, and returns the outcome; it never panics on any input.
//
// The signer key must be valid at the signature's creation time: not
// expired, not revoked before it (a revocation for a compromised key counts
// whenever it was made), flagged for signing. Verification.Err is nil for a
// valid signature and otherwise wraps one of ErrNotSigned,
// ErrMalformedSignature, ErrUnknownSigner, ErrBadSignature, ErrSignerKey,
// ErrWeakHash or ErrMICAlg, checked in that order.
func VerifyMIME(entity []byte, keyring pgp.EntityList, now time.Time) *Verification {
	v := &Verification{}
	defer func() {
		if r := recover(); r != nil { // go-crypto on hostile packets
			v.Err = fmt.Errorf("%w: parser panic: %v", ErrMalformedSignature, r)
		}
	}()
	signed, sigPart, micalg, err := splitSigned(entity)
	if err != nil {
		v.Err = err
		return v
	}
	v.MICAlg = micalg
	v.Signed = mimeentity.CanonicalCRLF(signed) // RFC 3156 §5 (1)
	sigs, err := readSignatures(sigPart)
	if err != nil {
		v.Err = err
		return v
	}
	v.Signatures = len(sigs)
	v.Err = v.check(sigs, keyring, now)
	return v
}

// check picks the signature to verify and verifies it.
func (v *Verification) check(sigs []*packet.Signature, keyring pgp.EntityList, now time.Time) error {
	sig, keys := sigs[0], []pgp.Key(nil)
	for _, s := range sigs {
		if ks := keyring.KeysById(*s.IssuerKeyId); len(ks) > 0 {
			sig, keys = s, ks
			break
		}
	}
	v.KeyID = *sig.IssuerKeyId
	if sig.IssuerFingerprint != nil {
		v.IssuerFingerprint = fmt.Sprintf("%X", sig.IssuerFingerprint)
	}
	v.Hash = sig.Hash
	v.Created = sig.CreationTime
	if len(keys) == 0 {
		return fmt.Errorf("%w: signed by key ID %016X, not among the %d candidate keys", ErrUnknownSigner, v.KeyID, len(keyring))
	}
	if sig.SigType != packet.SigTypeBinary && sig.SigType != packet.SigTypeText {
		return fmt.Errorf("%w: signature type %#02x is not a document signature", ErrBadSignature, uint8(sig.SigType))
	}
	if !sig.Hash.Available() {
		if weakHash(sig.Hash) {
			return fmt.Errorf("%w: %s (not even checked)", ErrWeakHash, hashName(sig.Hash))
		}
		return fmt.Errorf("%w: hash algorithm %d not supported", ErrBadSignature, sig.Hash)
	}
	var key *pgp.Key
	var verr error
	for i := range keys {
		h, err := sig.PrepareVerify()
		if err != nil {
			return fmt.Errorf("%w: %s", ErrBadSignature, parseError(err))
		}
		w := io.Writer(h)
		if sig.SigType == packet.SigTypeText {
			w = pgp.NewCanonicalTextHash(h) // RFC 9580 §5.2.1.2
		}
		w.Write(v.Signed)
		if verr = keys[i].PublicKey.VerifySignature(h, sig); verr == nil {
			key = &keys[i]
			break
		}
	}
	if key == nil {
		return fmt.Errorf("%w: by key ID %016X: %s", ErrBadSignature, v.KeyID, parseError(verr))
	}
	v.Signer = key.Entity
	v.Fingerprint = fingerprint(key.Entity)
	v.SigningKeyFingerprint = fmt.Sprintf("%X", key.PublicKey.Fingerprint)
	if err := signerKeyValid(key, sig, now); err != nil {
		return err
	}
	if weakHash(sig.Hash) {
		return fmt.Errorf("%w: %s", ErrWeakHash, hashName(sig.Hash))
	}
	if want := "pgp-" + strings.ToLower(hashName(sig.Hash)); !strings.EqualFold(v.MICAlg, want) {
		if v.MICAlg == "" {
			return fmt.Errorf("%w: no micalg parameter, signature uses %s", ErrMICAlg, want)
		}
		return fmt.Errorf("%w: micalg=%s, signature uses %s", ErrMICAlg, v.MICAlg, want) // RFC 3156 §5
	}
	return nil
}

// signerKeyValid checks the key that made sig at the signature's creation
// time, its algorithm (checkSigningAlgorithm), and the signature's own
// lifetime at now.
func signerKeyValid(key *pgp.Key, sig *packet.Signature, now time.Time) error {
	t := sig.CreationTime
	e := key.Entity
	bySubkey := key.PublicKey != e.PrimaryKey
	primarySig, primaryID := e.PrimarySelfSignature()
	switch {
	case t.After(now.Add(maxClockSkew)):
		return fmt.Errorf("%w: signature made in the future (%s)", ErrSignerKey, stamp(t))
	case sig.SigLifetimeSecs != nil && *sig.SigLifetimeSecs != 0 &&
		now.After(t.Add(time.Duration(*sig.SigLifetimeSecs)*time.Second)): // RFC 9580 §5.2.3.18
		return fmt.Errorf("%w: signature expired", ErrSignerKey)
	case t.Before(key.PublicKey.CreationTime):
		return fmt.Errorf("%w: signature (%s) older than its key (%s)", ErrSignerKey, stamp(t), stamp(key.PublicKey.CreationTime))
	case revokedAt(e.Revocations, t):
		return fmt.Errorf("%w: primary key %s revoked", ErrSignerKey, fingerprint(e))
	case bySubkey && revokedAt(key.Revocations, t):
		return fmt.Errorf("%w: signing subkey %016X revoked", ErrSignerKey, key.PublicKey.KeyId)
	case primaryID != nil && primaryID.Revoked(t):
		return fmt.Errorf("%w: primary user ID revoked", ErrSignerKey)
	case primarySig == nil:
		return fmt.Errorf("%w: primary key has no valid self-signature", ErrSignerKey)
	case e.PrimaryKey.KeyExpired(primarySig, t):
		return fmt.Errorf("%w: primary key %s expired before the signature (%s)", ErrSignerKey, fingerprint(e), stamp(t))
	case bySubkey && (key.SelfSignature == nil || key.PublicKey.KeyExpired(key.SelfSignature, t)):
		return fmt.Errorf("%w: signing subkey %016X expired before the signature (%s)", ErrSignerKey, key.PublicKey.KeyId, stamp(t))
	case key.SelfSignature == nil || (key.SelfSignature.FlagsValid && !key.SelfSignature.FlagSign):
		return fmt.Errorf("%w: key %016X is not flagged for signing", ErrSignerKey, key.PublicKey.KeyId)
	case bySubkey && key.SelfSignature.EmbeddedSignature == nil:
		return fmt.Errorf("%w: signing subkey %016X has no back-signature", ErrSignerKey, key.PublicKey.KeyId) // RFC 9580 §5.2.3.34
	}
	// The key that verified, not the one SigningKeys judged (the newest
	// signing key): an older, weak signing subkey of the same entity
	// (RSA-1024, DSA) must not make a valid signature.
	if _, reason := checkSigningAlgorithm(key.PublicKey); reason != "" {
		return fmt.Errorf("%w: key %016X: %s", ErrSignerKey, key.PublicKey.KeyId, reason)
	}
	return nil
}

// revokedAt reports whether revs revoke a key for a signature made at t. A
// soft revocation (key superseded or retired) counts from its creation
// time on; any other, a compromised key or no reason given, is a hard
// revocation and counts for every signature, made before it or after (RFC
// 9580 §5.2.3.31). go-crypto's Revoked treats only "compromised" as hard.
func revokedAt(revs []*packet.Signature, t time.Time) bool {
	for _, r := range revs {
		if r.RevocationReason == nil || (*r.RevocationReason != packet.KeySuperseded && *r.RevocationReason != packet.KeyRetired) {
			return true
		}
		if !r.CreationTime.After(t) {
			return true
		}
	}
	return false
}

// weakHash reports hash algorithms whose signatures never pass: collisions
// are practical for MD5 and SHA-1 (RFC 9580 §9.5), RIPEMD-160 is
// deprecated with them.
func weakHash(h crypto.Hash) bool {
	return h == crypto.MD5 || h == crypto.SHA1 || h == crypto.RIPEMD160
}

// hashName names h as RFC 3156 §5's micalg values do after "pgp-"
// (upper-cased here for messages: "SHA256", "SHA3-256").
func hashName(h crypto.Hash) string {
	switch h {
	case crypto.MD5:
		return "MD5"
	case crypto.SHA1:
		return "SHA1"
	case crypto.RIPEMD160:
		return "RIPEMD160"
	case crypto.SHA224:
		return "SHA224"
	case crypto.SHA256:
		return "SHA256"
	case crypto.SHA384:
		return "SHA384"
	case crypto.SHA512:
		return "SHA512"
	case crypto.SHA3_256:
		return "SHA3-256"
	case crypto.SHA3_512:
		return "SHA3-512"
	}
	return fmt.Sprintf("hash%d", int(h))
}

// splitSigned parses the header of a multipart/signed entity and returns
// the first part (as stored), the body of the second part (transfer
// decoded), and the micalg parameter.
func splitSigned(entity []byte) (signed, sig []byte, micalg string, err error) {
	header, body, ok := splitEntity(entity)
	if !ok {
		return nil, nil, "", fmt.Errorf("%w: no header section", ErrNotSigned)
	}
	ct := headerValue(header, "Content-Type")
	mt, params, perr := mime.ParseMediaType(ct)
	if perr != nil && mt == "" {
		return nil, nil, "", fmt.Errorf("%w: Content-Type %q does not parse", ErrNotSigned, ct)
	}
	if mt != "multipart/signed" {
		if bytes.Contains(body, []byte("-----BEGIN PGP SIGNED MESSAGE-----")) {
			return nil, nil, "", fmt.Errorf("%w: inline OpenPGP (cleartext signature in %s)", ErrNotSigned, mt)
		}
		return nil, nil, "", fmt.Errorf("%w: Content-Type is %s", ErrNotSigned, mt)
	}
	if p := params["protocol"]; !strings.EqualFold(p, "application/pgp-signature") { // RFC 3156 §5
		return nil, nil, "", fmt.Errorf("%w: multipart/signed with protocol %q", ErrNotSigned, p)
	}
	boundary := params["boundary"]
	if boundary == "" { // RFC 2046 §5.1.1 (its 70-character limit is not enforced: readers accept longer ones)
		return nil, nil, "", fmt.Errorf("%w: no boundary parameter", ErrMalformedSignature)
	}
	parts, err := splitParts(body, boundary)
	if err != nil {
		return nil, nil, "", err
	}
	if len(parts) != 2 { // RFC 1847 §2.1
		return nil, nil, "", fmt.Errorf("%w: %d body parts, want 2 (content and signature)", ErrMalformedSignature, len(parts))
	}
	sh, sb, ok := splitEntity(parts[1])
	if !ok {
		return nil, nil, "", fmt.Errorf("%w: signature part has no header section", ErrMalformedSignature)
	}
	if smt, _, _ := mime.ParseMediaType(headerValue(sh, "Content-Type")); smt != "application/pgp-signature" { // RFC 3156 §5
		return nil, nil, "", fmt.Errorf("%w: second part is %q, not application/pgp-signature", ErrMalformedSignature, smt)
	}
	switch cte := strings.ToLower(strings.TrimSpace(headerValue(sh, "Content-Transfer-Encoding"))); cte {
	case "", "7bit", "8bit", "binary":
	case "base64":
		dec, err := io.ReadAll(mimeentity.NewBase64Reader(bytes.NewReader(sb)))
		if err != nil {
			return nil, nil, "", fmt.Errorf("%w: signature part: base64: %v", ErrMalformedSignature, err)
		}
		sb = dec
	default:
		return nil, nil, "", fmt.Errorf("%w: signature part has Content-Transfer-Encoding %s", ErrMalformedSignature, cte)
	}
	return parts[0], sb, params["micalg"], nil
}

// readSignatures reads the signature packets of the signature part, armored
// (RFC 3156 §2 requires armor) or binary. go-crypto's armor reader does not
// check the CRC-24 line: a damaged armor that still parses is judged by the
// signature (bad), as Thunderbird judges it, where GnuPG 2.2 rejects the
// armor (no data). Not valid either way.
func readSignatures(b []byte) ([]*packet.Signature, error) {
	var r io.Reader = bytes.NewReader(b)
	if t := bytes.TrimLeft(b, " \t\r\n"); bytes.HasPrefix(t, []byte("-----BEGIN ")) {
		block, err := armor.Decode(bytes.NewReader(t))
		if err != nil {
			return nil, fmt.Errorf("%w: armor: %s", ErrMalformedSignature, parseError(err))
		}
		if block.Type != "PGP SIGNATURE" && block.Type != "PGP MESSAGE" { // RFC 3156 §5's example says MESSAGE
			return nil, fmt.Errorf("%w: armor type %q", ErrMalformedSignature, block.Type)
		}
		r = block.Body
	}
	var sigs []*packet.Signature
	pr := packet.NewReader(r)
	for {
		p, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: signature packets: %s", ErrMalformedSignature, parseError(err))
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			return nil, fmt.Errorf("%w: %T in the signature part", ErrMalformedSignature, p)
		}
		if s.IssuerKeyId == nil {
			return nil, fmt.Errorf("%w: signature names no issuer", ErrMalformedSignature)
		}
		if sigs = append(sigs, s); len(sigs) > maxSignatures {
			return nil, fmt.Errorf("%w: more than %d signatures", ErrMalformedSignature, maxSignatures)
		}
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%w: no signature packet", ErrMalformedSignature)
	}
	return sigs, nil
}

// splitEntity splits an entity at the first empty line; body starts after
// it. An entity without an empty line has no body: ok is false unless the
// whole entity is header lines ending at its end.
func splitEntity(e []byte) (header, body []byte, ok bool) {
	for off := 0; off < len(e); {
		end := bytes.IndexByte(e[off:], '\n')
		if end < 0 {
			return nil, nil, false
		}
		line := e[off : off+end+1]
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			return e[:off], e[off+len(line):], true
		}
		off += len(line)
	}
	return nil, nil, false
}

// headerValue returns the unfolded value of the first field name in header,
// "" when absent.
func headerValue(header []byte, name string) string {
	var val []string
	found := false
	for _, line := range strings.SplitAfter(string(header), "\n") {
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' { // RFC 5322 §2.2.3 folding
			if found {
				val = append(val, line)
			}
			continue
		}
		if found {
			break
		}
		if n, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(n), name) {
			found = true
			val = append(val, v)
		}
	}
	return strings.TrimSpace(mimeentity.UnfoldValue(strings.Join(val, "")))
}

// splitParts returns the body parts of a multipart body as signed
// (mimeentity.SplitMultipart); a body without a closing delimiter is
// malformed here.
func splitParts(body []byte, boundary string) ([][]byte, error) {
	parts, closed, err := mimeentity.SplitMultipart(body, boundary)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrMalformedSignature, err)
	case !closed:
		return nil, fmt.Errorf("%w: no closing delimiter", ErrMalformedSignature)
	}
	return parts, nil
}
