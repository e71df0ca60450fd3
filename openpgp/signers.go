package openpgp

import (
	"fmt"
	"slices"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/address"
)

// SigningKeys returns the keys among the OPENPGPKEY records rrs (other
// record types are ignored) that may have signed mail from addr at time
// now, and a reason for every record, or key within a record, that yields
// none: the keyring against which [VerifyMIME] checks a PGP/MIME signature
// of a message from addr. It is the inbound counterpart of SelectKeys and
// parses records the same way (RFC 7929 §2.1, the same limits, never a
// panic on hostile data). A key is a signer when
//   - it parses, its self-signatures verify, and it holds no secret key
//     material;
//   - one of its user IDs, with a valid, unrevoked self-signature, carries
//     addr (RFC 7929 §5), compared as SelectKeys compares;
//   - the primary key is neither revoked nor expired at now and has a valid
//     self-signature;
//   - it has an unexpired, unrevoked key flagged for signing (RFC 9580
//     §5.2.3.29: 0x02), the one go-crypto's Entity.SigningKey picks, the
//     newest such subkey or else the primary key;
//   - that key is RSA of at least 2048 bits, ECDSA over NIST P-256, P-384
//     or P-521, EdDSA over Ed25519 (legacy, RFC 9580 §5.5.5.5), Ed25519
//     or Ed448 (RFC 9580 §5.5.5.9-10). DSA and Brainpool are refused.
//
// Key.Algorithm names that signing key. VerifyMIME then checks the key
// that made a given signature at the signature's time (flags, expiry,
// revocation). The caller must pass only records of a DNSSEC-secure answer
// (RFC 7929 §7).
func SigningKeys(addr string, rrs []dns.RR, now time.Time) ([]Key, []Rejected) {
	return selectWith(addr, rrs, now, parseRecord, checkSigner)
}

// selectWith parses the OPENPGPKEY records among rrs with parse
// (parseRecord, or a KeyCache's remembering one) and keeps the keys that
// check accepts for addr at now (it returns the algorithm name, or a reason
// to reject), once each: the loop of SelectKeys (checkEntity) and of
// SigningKeys (checkSigner).
func selectWith(addr string, rrs []dns.RR, now time.Time, parse func(string) ([]*pgp.Entity, []string), check func(string, *pgp.Entity, time.Time) (string, string)) ([]Key, []Rejected) {
	var keys []Key
	var rejected []Rejected
	seen := map[string]bool{}
	_, _, addrErr := address.Split(addr)
	for _, rr := range rrs {
		r, ok := rr.(*dns.OPENPGPKEY)
		if !ok || r == nil {
			continue
		}
		if addrErr != nil {
			rejected = append(rejected, Rejected{Record: r, Reason: "address is not usable: " + addrErr.Error()})
			continue
		}
		entities, reasons := parse(r.PublicKey)
		for _, reason := range reasons {
			rejected = append(rejected, Rejected{Record: r, Reason: reason})
		}
		for _, e := range entities {
			alg, reason := check(addr, e, now)
			if reason != "" {
				rejected = append(rejected, Rejected{Record: r, Reason: keyLabel(e) + ": " + reason})
				continue
			}
			fp := fingerprint(e)
			if seen[fp] {
				rejected = append(rejected, Rejected{Record: r, Reason: keyLabel(e) + ": duplicate of a key already selected"})
				continue
			}
			seen[fp] = true
			keys = append(keys, Key{Record: r, Entity: e, Fingerprint: fp, Algorithm: alg})
		}
	}
	return keys, rejected
}

// Keyring returns the entities of keys, for VerifyMIME.
func Keyring(keys []Key) pgp.EntityList {
	out := make(pgp.EntityList, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.Entity)
	}
	return out
}

// checkSigner returns the name of e's signing key algorithm, or why e
// cannot have signed mail from addr at now (see SigningKeys).
func checkSigner(addr string, e *pgp.Entity, now time.Time) (alg, reason string) {
	if e.PrivateKey != nil || slices.ContainsFunc(e.Subkeys, func(s pgp.Subkey) bool { return s.PrivateKey != nil }) {
		return "", "record holds secret key material; refusing a key its owner has published"
	}
	if e.PrimaryKey.CreationTime.After(now.Add(maxClockSkew)) {
		return "", "key not valid before " + stamp(e.PrimaryKey.CreationTime)
	}
	// RFC 7929 §5: the user ID must carry the address looked up.
	if reason := checkUserID(addr, e, now); reason != "" {
		return "", reason
	}
	sig, primaryID := e.PrimarySelfSignature()
	if sig == nil {
		return "", "primary key has no valid self-signature"
	}
	if e.Revoked(now) { // RFC 9580 §5.2.1: key revocation signature
		return "", "revoked" + revocationDetail(e.Revocations)
	}
	if e.PrimaryKey.KeyExpired(sig, now) { // RFC 9580 §5.2.3.13
		return "", expiredReason("key", e.PrimaryKey, sig, now)
	}
	if sig.SigExpired(now) {
		return "", "self-signature " + sigExpiredReason(sig, now)
	}
	if primaryID != nil && primaryID.Revoked(now) {
		return "", fmt.Sprintf("primary user ID %q revoked", primaryID.Name)
	}
	sk, ok := e.SigningKey(now) // RFC 9580 §5.2.3.29: flag 0x02
	if !ok {
		return "", "no valid key flagged for signing"
	}
	return checkSigningAlgorithm(sk.PublicKey)
}

// checkSigningAlgorithm returns a GnuPG-style name of pk's algorithm, or
// why pk may not be trusted for signatures.
func checkSigningAlgorithm(pk *packet.PublicKey) (alg, reason string) {
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		bits, err := pk.BitLength()
		if err != nil {
			return "", "RSA key: " + err.Error()
		}
		if bits < minRSABits {
			return "", fmt.Sprintf("RSA signing key of %d bits too weak (at least %d)", bits, minRSABits)
		}
		return fmt.Sprintf("rsa%d", bits), ""
	case packet.PubKeyAlgoECDSA: // RFC 9580 §5.5.5.4
		curve, err := pk.Curve()
		if err != nil {
			return "", "ECDSA key on an unknown curve"
		}
		switch curve {
		case packet.CurveNistP256:
			return "nistp256", ""
		case packet.CurveNistP384:
			return "nistp384", ""
		case packet.CurveNistP521:
			return "nistp521", ""
		}
		return "", fmt.Sprintf("ECDSA over %s is not supported (P-256, P-384, P-521)", curve)
	case packet.PubKeyAlgoEdDSA: // RFC 9580 §5.5.5.5 (legacy EdDSA)
		curve, err := pk.Curve()
		if err != nil || curve != packet.Curve25519 {
			return "", "EdDSA key on a curve other than Ed25519"
		}
		return "ed25519", ""
	case packet.PubKeyAlgoEd25519: // RFC 9580 §5.5.5.9
		return "ed25519", ""
	case packet.PubKeyAlgoEd448: // RFC 9580 §5.5.5.10
		return "ed448", ""
	case packet.PubKeyAlgoDSA:
		return "", "DSA signing keys are not accepted"
	}
	return "", fmt.Sprintf("public-key algorithm %d is not supported for signatures", pk.PubKeyAlgo)
}
