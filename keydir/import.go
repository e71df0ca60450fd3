package keydir

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"software.sslmate.com/src/go-pkcs12"
)

// certNames reports whether cert names addr (subjectAltName rfc822Name,
// or the subject's emailAddress attribute), without regard to case.
func certNames(cert *x509.Certificate, addr string) bool {
	for _, a := range cert.EmailAddresses {
		if strings.EqualFold(a, addr) {
			return true
		}
	}
	oidEmail := []int{1, 2, 840, 113549, 1, 9, 1}
	for _, n := range cert.Subject.Names {
		if s, ok := n.Value.(string); ok && n.Type.Equal(oidEmail) && strings.EqualFold(s, addr) {
			return true
		}
	}
	return false
}

// ImportPKCS12 reads a PKCS#12 (.p12, .pfx) file as made by
// `openssl pkcs12 -export` or a mail client's export: the first certificate
// and its private key (a chain after it is ignored). It is read with
// software.sslmate.com/src/go-pkcs12, which handles the PBES2/AES and
// PBKDF2 files current OpenSSL writes as well as the legacy 3DES and RC2
// ones. The certificate must name addr when addr is not empty. Errors wrap
// ErrBadKey.
func ImportPKCS12(data []byte, password, addr string) (SMIMEKey, error) {
	key, cert, _, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return SMIMEKey{}, fmt.Errorf("%w: PKCS#12: wrong password", ErrBadKey)
		}
		return SMIMEKey{}, fmt.Errorf("%w: PKCS#12: %v", ErrBadKey, err)
	}
	return checkImported(SMIMEKey{Cert: cert, Key: key}, addr)
}

// ImportPEM reads a certificate and an unencrypted private key from PEM
// (they may be in one input; pass it twice). Errors wrap ErrBadKey.
func ImportPEM(certPEM, keyPEM []byte, addr string) (SMIMEKey, error) {
	b := certPEM
	if !bytes.Equal(certPEM, keyPEM) {
		b = slices.Concat(certPEM, []byte("\n"), keyPEM)
	}
	k, err := ParseSMIME(b)
	if err != nil {
		return SMIMEKey{}, err
	}
	return checkImported(k, addr)
}

func checkImported(k SMIMEKey, addr string) (SMIMEKey, error) {
	switch k.Key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
	default:
		return SMIMEKey{}, fmt.Errorf("%w: private key of type %T (want RSA or ECDSA)", ErrBadKey, k.Key)
	}
	if err := keyMatches(k.Cert, k.Key); err != nil {
		return SMIMEKey{}, err
	}
	if addr != "" && !certNames(k.Cert, addr) {
		return SMIMEKey{}, fmt.Errorf("%w: the certificate does not name %s (it names %v)", ErrBadKey, addr, k.Cert.EmailAddresses)
	}
	return k, nil
}

// ImportGPG reads the output of `gpg --export-secret-keys` (binary or
// armored) and returns the keys with a user ID for addr, their private
// keys decrypted with passphrase when they are protected (GnuPG's are,
// unless made with an empty passphrase). The result is what the key
// directory stores: unencrypted (see Dir). Errors wrap ErrBadKey.
func ImportGPG(data, passphrase []byte, addr string) (pgp.EntityList, error) {
	ents, err := readKeyRing(data)
	if err != nil {
		return nil, err
	}
	var out pgp.EntityList
	for _, e := range ents {
		if !slices.Contains(entityAddresses(e), strings.ToLower(addr)) {
			continue
		}
		if e.PrivateKey == nil {
			return nil, fmt.Errorf("%w: %X is a public key (use gpg --export-secret-keys)", ErrBadKey, e.PrimaryKey.Fingerprint)
		}
		if err := e.DecryptPrivateKeys(passphrase); err != nil {
			if passphrase == nil {
				return nil, fmt.Errorf("%w: %X is protected by a passphrase (give --passphrase-file)", ErrBadKey, e.PrimaryKey.Fingerprint)
			}
			return nil, fmt.Errorf("%w: %X: %v", ErrBadKey, e.PrimaryKey.Fingerprint, err)
		}
		if err := checkSecret(e); err != nil {
			return nil, err
		}
		if len(pgp.EntityList{e}.DecryptionKeys()) == 0 {
			return nil, fmt.Errorf("%w: %X has no secret encryption key (a GnuPG stub, e.g. on a smartcard?)", ErrBadKey, e.PrimaryKey.Fingerprint)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no key with a user ID for %s", ErrBadKey, addr)
	}
	return out, nil
}
