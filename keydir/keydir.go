// Package keydir holds the gateway's own private keys: the S/MIME
// certificates and keys and the OpenPGP secret keys of local users, for
// whom the gateway publishes SMIMEA and OPENPGPKEY records and decrypts
// inbound mail (issue 15).
package keydir

import (
	"crypto"
	"crypto/x509"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
)

// SMIMEKey is a local user's S/MIME certificate and its private key (an
// *rsa.PrivateKey or *ecdsa.PrivateKey), as smime.Decrypt takes them.
type SMIMEKey struct {
	Cert *x509.Certificate
	Key  crypto.PrivateKey
}

// Source is what decryption needs from the key directory: the keys held for
// a local address (compared without regard to case), newest first. The
// OpenPGP entities carry their private keys (decrypted, ready to use).
// Dir implements it; tests may use any other.
type Source interface {
	SMIME(addr string) []SMIMEKey
	OpenPGP(addr string) pgp.EntityList
}
