package keydir

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ErrBadKey is wrapped by the errors of ParseSMIME, ParseOpenPGP and the
// import functions for input that is not a usable key.
var ErrBadKey = errors.New("keydir: bad key")

// maxKeyFile bounds one key file (and one import).
const maxKeyFile = 1 << 20

// Key file names: smime-<first 16 hex digits of the certificate's SHA-256>.pem
// and openpgp-<fingerprint in hex>.asc, in the address's subdirectory.
const (
	smimePrefix   = "smime-"
	smimeSuffix   = ".pem"
	openpgpPrefix = "openpgp-"
	openpgpSuffix = ".asc"
)

// smimeFileName is the name of the file holding cert.
func smimeFileName(cert *x509.Certificate) string {
	return smimePrefix + smimeFingerprint(cert)[:16] + smimeSuffix
}

// openpgpFileName is the name of the file holding e.
func openpgpFileName(e *pgp.Entity) string {
	return openpgpPrefix + hex.EncodeToString(e.PrimaryKey.Fingerprint) + openpgpSuffix
}

// smimeFingerprint is the SHA-256 of the certificate's DER, in hex.
func smimeFingerprint(cert *x509.Certificate) string {
	s := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(s[:])
}

// ParseSMIME reads an S/MIME key file: PEM with the certificate first (other
// CERTIFICATE blocks after it, a chain, are ignored) and the private key as
// PKCS#8 ("PRIVATE KEY"; "RSA PRIVATE KEY" and "EC PRIVATE KEY" are read
// too). The key must be RSA or ECDSA and belong to the certificate. Errors
// wrap ErrBadKey.
func ParseSMIME(b []byte) (SMIMEKey, error) {
	var k SMIMEKey
	for len(b) > 0 {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			if k.Cert != nil {
				continue
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return SMIMEKey{}, fmt.Errorf("%w: certificate: %v", ErrBadKey, err)
			}
			k.Cert = c
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if k.Key != nil {
				return SMIMEKey{}, fmt.Errorf("%w: more than one private key", ErrBadKey)
			}
			key, err := parsePrivateKey(blk)
			if err != nil {
				return SMIMEKey{}, err
			}
			k.Key = key
		case "ENCRYPTED PRIVATE KEY":
			return SMIMEKey{}, fmt.Errorf("%w: the private key is encrypted (import it with a password to store it decrypted)", ErrBadKey)
		}
	}
	if k.Cert == nil {
		return SMIMEKey{}, fmt.Errorf("%w: no CERTIFICATE block", ErrBadKey)
	}
	if k.Key == nil {
		return SMIMEKey{}, fmt.Errorf("%w: no PRIVATE KEY block", ErrBadKey)
	}
	if err := keyMatches(k.Cert, k.Key); err != nil {
		return SMIMEKey{}, err
	}
	return k, nil
}

func parsePrivateKey(blk *pem.Block) (crypto.PrivateKey, error) {
	var key any
	var err error
	switch blk.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %v", ErrBadKey, err)
	}
	switch key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
		return key, nil
	}
	return nil, fmt.Errorf("%w: private key of type %T (want RSA or ECDSA)", ErrBadKey, key)
}

// keyMatches checks that key is the private half of cert's public key.
func keyMatches(cert *x509.Certificate, key crypto.PrivateKey) error {
	type publicKeyer interface {
		Public() crypto.PublicKey
		Equal(crypto.PrivateKey) bool
	}
	pk, ok := key.(publicKeyer)
	if !ok {
		return fmt.Errorf("%w: private key of type %T", ErrBadKey, key)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if eq, ok := pk.Public().(equaler); !ok || !eq.Equal(cert.PublicKey) {
		return fmt.Errorf("%w: the private key does not belong to the certificate", ErrBadKey)
	}
	return nil
}

// encodeSMIME renders k as ParseSMIME reads it: the certificate, then the
// key as PKCS#8.
func encodeSMIME(k SMIMEKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	var buf bytes.Buffer
	pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: k.Cert.Raw}) // bytes.Buffer: no error
	pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: der})        // bytes.Buffer: no error
	return buf.Bytes(), nil
}

// ParseOpenPGP reads an OpenPGP key file: one ASCII-armored (or binary)
// transferable secret key whose private keys are not encrypted. Errors wrap
// ErrBadKey.
func ParseOpenPGP(b []byte) (*pgp.Entity, error) {
	ents, err := readKeyRing(b)
	if err != nil {
		return nil, err
	}
	if len(ents) != 1 {
		return nil, fmt.Errorf("%w: %d keys in one file (want 1)", ErrBadKey, len(ents))
	}
	e := ents[0]
	if err := checkSecret(e); err != nil {
		return nil, err
	}
	return e, nil
}

// readKeyRing reads armored or binary keys.
func readKeyRing(b []byte) (pgp.EntityList, error) {
	var ents pgp.EntityList
	var err error
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) {
		ents, err = pgp.ReadArmoredKeyRing(bytes.NewReader(b))
	} else {
		ents, err = pgp.ReadKeyRing(bytes.NewReader(b))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if len(ents) == 0 {
		return nil, fmt.Errorf("%w: no key", ErrBadKey)
	}
	return ents, nil
}

// checkSecret checks that e carries its private keys, decrypted.
func checkSecret(e *pgp.Entity) error {
	if e.PrivateKey == nil {
		return fmt.Errorf("%w: %X is a public key (want the secret key)", ErrBadKey, e.PrimaryKey.Fingerprint)
	}
	if e.PrivateKey.Encrypted {
		return fmt.Errorf("%w: %X: the secret key is encrypted with a passphrase", ErrBadKey, e.PrimaryKey.Fingerprint)
	}
	for _, s := range e.Subkeys {
		if s.PrivateKey != nil && s.PrivateKey.Encrypted {
			return fmt.Errorf("%w: %X: a secret subkey is encrypted with a passphrase", ErrBadKey, e.PrimaryKey.Fingerprint)
		}
	}
	return nil
}

// encodeOpenPGP renders e's secret key ASCII-armored, unencrypted.
func encodeOpenPGP(e *pgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, "PGP PRIVATE KEY BLOCK", nil)
	if err != nil {
		return nil, err
	}
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// entityAddresses returns the e-mail addresses of e's user IDs, lowercased.
func entityAddresses(e *pgp.Entity) []string {
	var out []string
	for _, id := range e.Identities {
		if id.UserId != nil && id.UserId.Email != "" {
			out = append(out, strings.ToLower(id.UserId.Email))
		}
	}
	return out
}

// pgpAlgorithm names e's primary key and encryption subkey algorithms.
func pgpAlgorithm(e *pgp.Entity) string {
	s := pgpKeyAlgorithm(e.PrimaryKey)
	for _, sk := range e.Subkeys {
		if sk.Sig != nil && sk.Sig.FlagsValid && (sk.Sig.FlagEncryptCommunications || sk.Sig.FlagEncryptStorage) {
			if a := pgpKeyAlgorithm(sk.PublicKey); a != s {
				s += " + " + a
			}
			break
		}
	}
	return s
}

func pgpKeyAlgorithm(k *packet.PublicKey) string {
	switch k.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly, packet.PubKeyAlgoRSASignOnly:
		n, _ := k.BitLength()
		return fmt.Sprintf("RSA-%d", n)
	case packet.PubKeyAlgoEdDSA:
		return "EdDSA"
	case packet.PubKeyAlgoECDH:
		return "ECDH"
	case packet.PubKeyAlgoECDSA:
		return "ECDSA"
	case packet.PubKeyAlgoEd25519:
		return "Ed25519"
	case packet.PubKeyAlgoX25519:
		return "X25519"
	}
	return fmt.Sprintf("algorithm %d", k.PubKeyAlgo)
}

// smimeAlgorithm names cert's key algorithm.
func smimeAlgorithm(cert *x509.Certificate) string {
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return cert.PublicKeyAlgorithm.String()
}
