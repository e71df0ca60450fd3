package openpgp

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/address"
)

// Limits on what a record may make the parser do. A record comes from the
// recipient's zone, so its publisher is not trusted to be reasonable.
const (
	// maxRecordLength bounds the binary key data of one record: RDLENGTH is
	// 16 bits (RFC 1035 §3.2.1), so no record can be longer.
	maxRecordLength = 65535
	// minRSABits is the smallest RSA modulus accepted for encryption.
	minRSABits = 2048
	// maxRSABits and maxDSABits bound the keys whose self-signatures the
	// parser verifies, so that a hostile record cannot make it spend
	// seconds on modular exponentiation. 3072 is the largest DSA size of
	// FIPS 186-4 §4.2 and of GnuPG.
	maxRSABits = 16384
	maxDSABits = 3072
	// maxUIDsInReason is how many user IDs a rejection reason lists.
	maxUIDsInReason = 5
)

// Key is an OpenPGP key (a transferable public key, RFC 9580 §10.1) that
// may be used to encrypt mail to a recipient, and the record that vouches
// for it.
type Key struct {
	Record *dns.OPENPGPKEY
	// Entity is the parsed key, ready for [EncryptMIME].
	Entity *pgp.Entity
	// Fingerprint is the primary key's fingerprint in upper-case hex (40
	// digits for a v4 key, 64 for a v6 key), as GnuPG shows it.
	Fingerprint string
	// Algorithm names the key that encryption will use (the newest valid
	// encryption subkey, or the primary key), in GnuPG's words: "rsa3072",
	// "cv25519", "nistp256", "nistp384", "nistp521", "x25519", "x448".
	Algorithm string
}

// Rejected is a record, or one key within a record, that yields no usable
// key, and why. A record holding several keys can yield several Rejected
// values, and Key values too.
type Rejected struct {
	Record *dns.OPENPGPKEY
	Reason string
}

// SelectKeys returns the keys among the OPENPGPKEY records rrs (other record
// types are ignored) that may be used to encrypt mail to addr at time now,
// and a reason for every record, or key within a record, that yields none.
// Several usable keys — a key rollover, in one record or several — all
// yield keys; one broken key never hides the others. A key found in more
// than one record yields one Key, and a Rejected for each repetition.
//
// The record data is one or more binary transferable public keys, without
// ASCII armor (RFC 7929 §2.1). A key is usable when
//   - it parses, its self-signatures verify, and it holds no secret key
//     material;
//   - one of its user IDs, with a valid, unrevoked self-signature, carries
//     the address addr (RFC 7929 §5), compared without regard to case, the
//     domain in A-label form;
//   - the primary key is neither revoked nor expired at now, and has a
//     valid self-signature;
//   - it has an unexpired, unrevoked key flagged for encrypting
//     communications (RFC 9580 §5.2.3.29) — the one go-crypto's
//     Entity.EncryptionKey picks, the newest such subkey or else the
//     primary key, which is the key EncryptMIME will use;
//   - that key is RSA of at least 2048 bits, ECDH over Curve25519 or NIST
//     P-256, P-384 or P-521 (RFC 9580 §5.5.5.6, formerly RFC 6637), or
//     X25519 or X448 (RFC 9580 §5.5.5.7-8). ElGamal, Brainpool and the
//     post-quantum algorithms are refused.
//
// The caller must pass only records of a DNSSEC-secure answer (RFC 7929 §7).
// SelectKeys never panics on hostile data: a record on which the parser
// panics is rejected with a reason.
func SelectKeys(addr string, rrs []dns.RR, now time.Time) ([]Key, []Rejected) {
	return selectWith(addr, rrs, now, parseRecord, checkEntity)
}

// parseRecord decodes the base64 presentation of a record's data and parses
// every transferable public key in it. It returns the keys that parse and a
// reason for each part that does not.
func parseRecord(b64 string) (entities []*pgp.Entity, reasons []string) {
	if len(b64) > base64.StdEncoding.EncodedLen(maxRecordLength)+1024 {
		return nil, []string{"record data too long"}
	}
	// miekg/dns keeps the presentation form; it may hold the blanks of a
	// zone file that split the base64 into several strings.
	b64 = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, b64)
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, []string{"record data is not valid base64"}
	}
	if len(data) == 0 {
		return nil, []string{"record is empty"}
	}
	if len(data) > maxRecordLength {
		return nil, []string{"record data too long"}
	}
	defer func() {
		// A parser bug on hostile input must not take the daemon down.
		if p := recover(); p != nil {
			entities = nil
			reasons = []string{fmt.Sprintf("does not parse: parser panic: %v", p)}
		}
	}()
	if reason := precheck(data); reason != "" {
		return nil, []string{reason}
	}
	return readEntities(data)
}

// precheck walks the packets of data once, before any signature is
// verified, and refuses key sizes whose verification would be slow.
func precheck(data []byte) string {
	pr := packet.NewReader(bytes.NewReader(data))
	for {
		p, err := pr.Next()
		if err == io.EOF {
			return ""
		}
		if err != nil {
			// readEntities reports it, with its context.
			return ""
		}
		var pk *packet.PublicKey
		switch k := p.(type) {
		case *packet.PublicKey:
			pk = k
		case *packet.PrivateKey:
			pk = &k.PublicKey
		default:
			continue
		}
		bits, err := pk.BitLength()
		if err != nil {
			continue
		}
		switch pk.PubKeyAlgo {
		case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly, packet.PubKeyAlgoRSASignOnly:
			if bits > maxRSABits {
				return fmt.Sprintf("RSA key of %d bits is too large (at most %d)", bits, maxRSABits)
			}
		case packet.PubKeyAlgoDSA:
			if bits > maxDSABits {
				return fmt.Sprintf("DSA key of %d bits is too large (at most %d)", bits, maxDSABits)
			}
		}
	}
}

// readEntities parses the transferable public keys in data (RFC 9580
// §10.1) with go-crypto's parser. It is openpgp.ReadKeyRing, except that it
// reports why each key that does not parse was skipped.
func readEntities(data []byte) ([]*pgp.Entity, []string) {
	var entities []*pgp.Entity
	var reasons []string
	pr := packet.NewReader(bytes.NewReader(data))
	for {
		e, err := pgp.ReadEntity(pr)
		if err == nil {
			entities = append(entities, e)
			continue
		}
		if err == io.EOF {
			break
		}
		reasons = append(reasons, "does not parse: "+parseError(err))
		var unsupported pgperrors.UnsupportedError
		var structural pgperrors.StructuralError
		if !errors.As(err, &unsupported) && !errors.As(err, &structural) {
			// Truncated or otherwise unreadable: nothing after it can be
			// trusted to start at a packet boundary.
			break
		}
		if err := skipToNextKey(pr); err != nil {
			break // the reason given covers the rest
		}
	}
	if len(entities) == 0 && len(reasons) == 0 {
		reasons = append(reasons, "does not parse: no OpenPGP key found")
	}
	return entities, reasons
}

// skipToNextKey reads packets up to the next primary key and leaves that
// packet in pr, as ReadKeyRing does after a key it cannot read.
func skipToNextKey(pr *packet.Reader) error {
	for {
		p, err := pr.Next()
		if err != nil {
			var unsupported pgperrors.UnsupportedError
			if errors.As(err, &unsupported) {
				continue
			}
			return err
		}
		switch k := p.(type) {
		case *packet.PublicKey:
			if !k.IsSubkey {
				pr.Unread(p)
				return nil
			}
		case *packet.PrivateKey:
			if !k.IsSubkey {
				pr.Unread(p)
				return nil
			}
		}
	}
}

// parseError turns a parser error into reason text without go-crypto's
// "openpgp: " prefix.
func parseError(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "truncated"
	}
	return strings.TrimPrefix(err.Error(), "openpgp: ")
}

// checkEntity returns the name of the algorithm encryption to e will use,
// or the reason why e is unusable for addr at now (see SelectKeys).
func checkEntity(addr string, e *pgp.Entity, now time.Time) (alg, reason string) {
	if e.PrivateKey != nil || slices.ContainsFunc(e.Subkeys, func(s pgp.Subkey) bool { return s.PrivateKey != nil }) {
		return "", "record holds secret key material; refusing a key its owner has published"
	}
	if e.PrimaryKey.CreationTime.After(now) {
		return "", "key not valid before " + stamp(e.PrimaryKey.CreationTime)
	}
	// RFC 7929 §5: the user ID of the key should match the address
	// the record was looked up for.
	if reason := checkUserID(addr, e, now); reason != "" {
		return "", reason
	}
	sig, primaryID := e.PrimarySelfSignature()
	if sig == nil {
		return "", "primary key has no valid self-signature"
	}
	// RFC 9580 §5.2.1: key revocation signature (0x20); §5.2.3.31: reason.
	if e.Revoked(now) {
		return "", "revoked" + revocationDetail(e.Revocations)
	}
	// RFC 9580 §5.2.3.13: key expiration time, relative to creation.
	if e.PrimaryKey.KeyExpired(sig, now) {
		return "", expiredReason("key", e.PrimaryKey, sig, now)
	}
	if sig.SigExpired(now) {
		return "", "self-signature " + sigExpiredReason(sig, now)
	}
	if primaryID != nil && primaryID.Revoked(now) {
		return "", fmt.Sprintf("primary user ID %q revoked", primaryID.Name)
	}
	ek, ok := e.EncryptionKey(now)
	if !ok {
		return "", noEncryptionKeyReason(e, sig, now)
	}
	return checkAlgorithm(ek.PublicKey)
}

// checkUserID returns "" when e has a valid user ID for addr.
func checkUserID(addr string, e *pgp.Entity, now time.Time) string {
	names := make([]string, 0, len(e.Identities))
	for name := range e.Identities {
		names = append(names, name)
	}
	slices.Sort(names)
	var found []string
	reason := ""
	for _, name := range names {
		id := e.Identities[name]
		a := uidAddress(name)
		if a != "" {
			found = append(found, a)
		}
		if a == "" || !sameAddress(a, addr) {
			continue
		}
		switch {
		case id.SelfSignature == nil:
			reason = fmt.Sprintf("user ID %q has no valid self-signature", name)
		case id.Revoked(now):
			reason = fmt.Sprintf("user ID %q revoked", name) + revocationDetail(id.Revocations)
		case id.SelfSignature.SigExpired(now):
			reason = fmt.Sprintf("user ID %q self-signature ", name) + sigExpiredReason(id.SelfSignature, now)
		default:
			return ""
		}
	}
	if reason != "" {
		return reason
	}
	switch {
	case len(found) == 0:
		return "no user ID for " + addr + " (the key has no user ID with an address)"
	case len(found) > maxUIDsInReason:
		found = append(found[:maxUIDsInReason], "...")
	}
	return "no user ID for " + addr + " (it names " + strings.Join(found, ", ") + ")"
}

// uidAddress returns the address in a user ID: the text in its last pair of
// angle brackets ("Name (comment) <addr>", RFC 9580 §5.11), or the whole
// user ID when it is a bare address; "" when it has none.
func uidAddress(id string) string {
	if i := strings.LastIndexByte(id, '<'); i >= 0 {
		if j := strings.IndexByte(id[i:], '>'); j > 0 {
			return strings.TrimSpace(id[i+1 : i+j])
		}
		return ""
	}
	s := strings.TrimSpace(id)
	if strings.Contains(s, "@") && !strings.ContainsAny(s, " \t<>") {
		return s
	}
	return ""
}

// sameAddress compares two addresses: local parts without regard to case,
// domains as A-labels in lower case (address.Split).
func sameAddress(a, b string) bool {
	al, ad, err := address.Split(a)
	if err != nil {
		return false
	}
	bl, bd, err := address.Split(b)
	if err != nil {
		return false
	}
	return ad == bd && strings.EqualFold(al, bl)
}

// noEncryptionKeyReason explains why e.EncryptionKey found nothing, the
// primary key being valid.
func noEncryptionKeyReason(e *pgp.Entity, primary *packet.Signature, now time.Time) string {
	var candidates, revoked, expired, storage int
	var lastExpired string
	for i := range e.Subkeys {
		sk := &e.Subkeys[i]
		if sk.Sig == nil || !sk.Sig.FlagsValid || !sk.PublicKey.PubKeyAlgo.CanEncrypt() {
			continue
		}
		if !sk.Sig.FlagEncryptCommunications {
			if sk.Sig.FlagEncryptStorage {
				storage++
			}
			continue
		}
		candidates++
		switch {
		case sk.Revoked(now):
			revoked++
		case sk.PublicKey.KeyExpired(sk.Sig, now):
			expired++
			lastExpired = expiredReason("encryption subkey", sk.PublicKey, sk.Sig, now)
		case sk.Sig.SigExpired(now):
			expired++
			lastExpired = "encryption subkey binding signature " + sigExpiredReason(sk.Sig, now)
		}
	}
	switch {
	case candidates == 0 && storage > 0:
		// RFC 9580 §5.2.3.29: 0x04 communications, 0x08 storage.
		return "no subkey may encrypt communications (only storage)"
	case candidates == 0 && primary.FlagsValid && primary.FlagEncryptCommunications && !e.PrimaryKey.PubKeyAlgo.CanEncrypt():
		return "no encryption-capable subkey, and the primary key's algorithm cannot encrypt"
	case candidates == 0 && len(e.Subkeys) > 0 && !slices.ContainsFunc(e.Subkeys, func(s pgp.Subkey) bool { return s.Sig != nil && s.Sig.FlagsValid }):
		return "no encryption-capable subkey (the subkeys carry no key flags)"
	case candidates == 0:
		return "no encryption-capable subkey (signing only)"
	case revoked == candidates:
		return "encryption subkey revoked"
	case expired > 0 && revoked+expired == candidates:
		return lastExpired
	}
	return "no valid encryption subkey"
}

// checkAlgorithm returns the GnuPG-style name of pk's algorithm, or why pk
// may not be used for encryption.
func checkAlgorithm(pk *packet.PublicKey) (alg, reason string) {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly:
		bits, err := pk.BitLength()
		if err != nil {
			return "", "RSA key: " + err.Error()
		}
		if bits < minRSABits {
			return "", fmt.Sprintf("RSA key of %d bits too weak (at least %d)", bits, minRSABits)
		}
		return fmt.Sprintf("rsa%d", bits), ""
	case packet.PubKeyAlgoECDH: // RFC 9580 §5.5.5.6 (formerly RFC 6637)
		curve, err := pk.Curve()
		if err != nil {
			return "", "ECDH key on an unknown curve"
		}
		switch curve {
		case packet.Curve25519:
			return "cv25519", ""
		case packet.CurveNistP256:
			return "nistp256", ""
		case packet.CurveNistP384:
			return "nistp384", ""
		case packet.CurveNistP521:
			return "nistp521", ""
		}
		return "", fmt.Sprintf("ECDH over %s is not supported (Curve25519, P-256, P-384, P-521)", curve)
	case packet.PubKeyAlgoX25519: // RFC 9580 §5.5.5.7
		return "x25519", ""
	case packet.PubKeyAlgoX448: // RFC 9580 §5.5.5.8
		return "x448", ""
	case packet.PubKeyAlgoElGamal:
		return "", "ElGamal encryption keys are not supported"
	}
	return "", fmt.Sprintf("public-key algorithm %d is not supported for encryption", pk.PubKeyAlgo)
}

// expiredReason says when pk, whose expiry sig carries, expired, or that it
// is not valid yet.
func expiredReason(what string, pk *packet.PublicKey, sig *packet.Signature, now time.Time) string {
	if pk.CreationTime.After(now) {
		return what + " not valid before " + stamp(pk.CreationTime)
	}
	if sig.KeyLifetimeSecs != nil && *sig.KeyLifetimeSecs != 0 {
		return what + " expired " + stamp(pk.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs)*time.Second))
	}
	return what + " expired"
}

// sigExpiredReason completes "... signature " with when sig expired.
func sigExpiredReason(sig *packet.Signature, now time.Time) string {
	if sig.CreationTime.After(now) {
		return "not valid before " + stamp(sig.CreationTime)
	}
	if sig.SigLifetimeSecs != nil && *sig.SigLifetimeSecs != 0 {
		return "expired " + stamp(sig.CreationTime.Add(time.Duration(*sig.SigLifetimeSecs)*time.Second))
	}
	return "expired"
}

// revocationDetail renders the reason of the first revocation signature
// (RFC 9580 §5.2.3.31), or "".
func revocationDetail(revs []*packet.Signature) string {
	for _, r := range revs {
		var parts []string
		if r.RevocationReason != nil {
			switch *r.RevocationReason {
			case packet.KeySuperseded:
				parts = append(parts, "key superseded")
			case packet.KeyCompromised:
				parts = append(parts, "key compromised")
			case packet.KeyRetired:
				parts = append(parts, "key retired")
			case packet.UserIDNotValid:
				parts = append(parts, "user ID no longer valid")
			}
		}
		if t := strings.TrimSpace(r.RevocationReasonText); t != "" {
			if len(t) > 100 {
				t = t[:100] + "..."
			}
			parts = append(parts, fmt.Sprintf("%q", t))
		}
		if len(parts) > 0 {
			return " (" + strings.Join(parts, ": ") + ")"
		}
	}
	return ""
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func fingerprint(e *pgp.Entity) string { return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint) }

// keyLabel names a key in a rejection reason: "key 0123ABCD...".
func keyLabel(e *pgp.Entity) string { return "key " + fingerprint(e) }
