package keydir

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Algorithms for generated keys.
const (
	SMIMERSA3072 = "rsa3072"
	SMIMEP256    = "p256"

	OpenPGPCv25519 = "cv25519" // EdDSA (Ed25519) primary, ECDH Curve25519 subkey
	OpenPGPRSA3072 = "rsa3072"
)

// DefaultValidity is how long generated keys are valid when Options
// leaves it zero: two years.
const DefaultValidity = 2 * 365 * 24 * time.Hour

// Options for GenerateSMIME and GenerateOpenPGP. The zero value is usable.
type Options struct {
	Now      time.Time     // creation time; zero: time.Now()
	Validity time.Duration // zero: DefaultValidity
	Rand     io.Reader     // zero: crypto/rand
}

func (o Options) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

func (o Options) validity() time.Duration {
	if o.Validity <= 0 {
		return DefaultValidity
	}
	return o.Validity
}

func (o Options) rand() io.Reader {
	if o.Rand == nil {
		return rand.Reader
	}
	return o.Rand
}

// GenerateSMIME makes a key (SMIMERSA3072 or SMIMEP256) and a self-signed
// certificate for addr: the address as the subject's commonName and as
// the only subjectAltName rfc822Name (RFC 8550 §3), key usage
// digitalSignature with keyEncipherment (RSA) or keyAgreement (EC) (RFC
// 8550 §4.4.2), extended key usage emailProtection, not a CA. A
// self-signed certificate needs no CA because it is published with SMIMEA
// usage 3, DANE-EE (RFC 8162 §6: the record itself is the trust).
func GenerateSMIME(addr, alg string, opts Options) (SMIMEKey, error) {
	if _, err := AddressDir("/", addr); err != nil {
		return SMIMEKey{}, err
	}
	rnd := opts.rand()
	var key crypto.Signer
	var usage x509.KeyUsage
	var err error
	switch alg {
	case SMIMERSA3072, "":
		key, err = rsa.GenerateKey(rnd, 3072)
		usage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	case SMIMEP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rnd)
		usage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement
	default:
		return SMIMEKey{}, fmt.Errorf("keydir: S/MIME algorithm %q (want %s or %s)", alg, SMIMERSA3072, SMIMEP256)
	}
	if err != nil {
		return SMIMEKey{}, fmt.Errorf("keydir: %w", err)
	}
	serial, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return SMIMEKey{}, fmt.Errorf("keydir: %w", err)
	}
	now := opts.now().UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               pkix.Name{CommonName: addr},
		NotBefore:             now.Add(-5 * time.Minute), // clock skew
		NotAfter:              now.Add(opts.validity()),
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses:        []string{addr},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return SMIMEKey{}, fmt.Errorf("keydir: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return SMIMEKey{}, fmt.Errorf("keydir: %w", err)
	}
	return SMIMEKey{Cert: cert, Key: key}, nil
}

// GenerateOpenPGP makes an OpenPGP key for addr (OpenPGPCv25519 or
// OpenPGPRSA3072): a certifying and signing primary key, an encryption
// subkey, the user ID "<addr>", expiring after opts.Validity (RFC 9580
// §5.2.3.13), preferring AES-256 and SHA-256. Its private keys are not
// encrypted (see Dir).
func GenerateOpenPGP(addr, alg string, opts Options) (*pgp.Entity, error) {
	if _, err := AddressDir("/", addr); err != nil {
		return nil, err
	}
	now := opts.now()
	cfg := &packet.Config{
		Rand:            opts.rand(),
		Time:            func() time.Time { return now },
		DefaultHash:     crypto.SHA256,
		DefaultCipher:   packet.CipherAES256,
		KeyLifetimeSecs: uint32(opts.validity() / time.Second),
	}
	switch alg {
	case OpenPGPCv25519, "":
		cfg.Algorithm = packet.PubKeyAlgoEdDSA
		cfg.Curve = packet.Curve25519
	case OpenPGPRSA3072:
		cfg.Algorithm = packet.PubKeyAlgoRSA
		cfg.RSABits = 3072
	default:
		return nil, fmt.Errorf("keydir: OpenPGP algorithm %q (want %s or %s)", alg, OpenPGPCv25519, OpenPGPRSA3072)
	}
	e, err := pgp.NewEntity("", "", addr, cfg)
	if err != nil {
		return nil, fmt.Errorf("keydir: %w", err)
	}
	return e, nil
}
