package smime

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"math/big"
	"slices"
)

// algorithmIdentifier is RFC 5280 §4.1.1.2 AlgorithmIdentifier; a zero
// Parameters is left out.
type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

// issuerAndSerialNumber is RFC 5652 §10.2.4 IssuerAndSerialNumber.
type issuerAndSerialNumber struct {
	Issuer       asn1.RawValue // the certificate's DER issuer Name, verbatim
	SerialNumber *big.Int
}

// keyTransRecipientInfo is RFC 5652 §6.2.1 KeyTransRecipientInfo.
type keyTransRecipientInfo struct {
	Version                int           // 0 with IssuerAndSerialNumber, 2 with SubjectKeyIdentifier
	RID                    asn1.RawValue // RecipientIdentifier, encoded
	KeyEncryptionAlgorithm algorithmIdentifier
	EncryptedKey           []byte
}

// keyAgreeRecipientInfo is RFC 5652 §6.2.2 KeyAgreeRecipientInfo, without
// the [1] IMPLICIT tag that RecipientInfo puts on it and without ukm.
type keyAgreeRecipientInfo struct {
	Version                int           // always 3
	Originator             asn1.RawValue // [0] EXPLICIT OriginatorIdentifierOrKey, encoded
	KeyEncryptionAlgorithm algorithmIdentifier
	RecipientEncryptedKeys []recipientEncryptedKey
}

// recipientEncryptedKey is RFC 5652 §6.2.2 RecipientEncryptedKey.
type recipientEncryptedKey struct {
	RID          asn1.RawValue // KeyAgreeRecipientIdentifier, encoded
	EncryptedKey []byte
}

// originatorPublicKey is RFC 5652 §6.2.2 OriginatorPublicKey.
type originatorPublicKey struct {
	Algorithm algorithmIdentifier
	PublicKey asn1.BitString
}

// eccCMSSharedInfo is RFC 5753 §7.2 ECC-CMS-SharedInfo, the SharedInfo of
// the X9.63 KDF.
type eccCMSSharedInfo struct {
	KeyInfo     algorithmIdentifier // the key-wrap algorithm, parameters absent for AES wrap
	EntityUInfo []byte              `asn1:"optional,explicit,tag:0"` // the ukm; never sent here
	SuppPubInfo []byte              `asn1:"explicit,tag:2"`          // KEK length in bits, 32-bit big-endian
}

// ecScheme is how one elliptic curve is used for ECDH key agreement.
type ecScheme struct {
	curve    ecdh.Curve
	curveOID asn1.ObjectIdentifier
	kdfOID   asn1.ObjectIdentifier // dhSinglePass-stdDH-sha*kdf-scheme
	hash     crypto.Hash           // of the X9.63 KDF
}

// ecSchemeFor returns the scheme for the curve of a NIST public key, with
// the KDF hash matched to the curve's strength (P-256 with SHA-256, P-384
// with SHA-384, P-521 with SHA-512, as RFC 5753 §8 and NIST SP 800-56A
// pair them; RFC 8551 §2.3 requires ECDH ephemeral-static, RFC 5753).
func ecSchemeFor(c ecdh.Curve) (ecScheme, bool) {
	switch c {
	case ecdh.P256():
		return ecScheme{c, oidP256(), oidStdDH(1), crypto.SHA256}, true
	case ecdh.P384():
		return ecScheme{c, oidP384(), oidStdDH(2), crypto.SHA384}, true
	case ecdh.P521():
		return ecScheme{c, oidP521(), oidStdDH(3), crypto.SHA512}, true
	}
	return ecScheme{}, false
}

// recipient is a certificate checked for use, with its key.
type recipient struct {
	cert *x509.Certificate
	rsa  *rsa.PublicKey  // RSA key transport, or
	ec   *ecdh.PublicKey // ECDH key agreement
	ecs  ecScheme
	ski  bool // identify by SubjectKeyIdentifier
}

// prepareRecipients checks that every certificate can receive a key and
// returns what recipientInfos needs.
func prepareRecipients(certs []*x509.Certificate, opts Options) ([]recipient, error) {
	if len(certs) == 0 {
		return nil, ErrNoRecipients
	}
	rs := make([]recipient, len(certs))
	for i, c := range certs {
		if c == nil {
			return nil, &RecipientError{Index: i, Err: fmt.Errorf("%w: nil certificate", ErrUnsupportedKey)}
		}
		subject := c.Subject.String()
		fail := func(format string, a ...any) error {
			return &RecipientError{Index: i, Subject: subject, Err: fmt.Errorf("%w: "+format, append([]any{ErrUnsupportedKey}, a...)...)}
		}
		r := recipient{cert: c}
		switch pub := c.PublicKey.(type) {
		case *rsa.PublicKey:
			r.rsa = pub
		case *ecdsa.PublicKey:
			ek, err := pub.ECDH()
			if err != nil {
				return nil, fail("EC key: %v", err)
			}
			s, ok := ecSchemeFor(ek.Curve())
			if !ok {
				return nil, fail("curve %s", pub.Curve.Params().Name)
			}
			r.ec, r.ecs = ek, s
		case *ecdh.PublicKey:
			// X25519 (RFC 8418) would go here; OpenSSL 3.0 cannot read it
			// (see the package documentation), so it is not offered.
			return nil, fail("%v key agreement (RFC 8418) is not supported", pub.Curve())
		default:
			return nil, fail("public key type %T", c.PublicKey)
		}
		// RFC 5652 §6.2.1, §6.2.2: the certificate is named by its
		// SubjectKeyIdentifier when asked and it has one, else by issuer
		// and serial number.
		r.ski = opts.UseSKI && len(c.SubjectKeyId) > 0
		if !r.ski && (len(c.RawIssuer) == 0 || c.SerialNumber == nil) {
			return nil, fail("certificate has no issuer or serial number (not parsed?)")
		}
		rs[i] = r
	}
	return rs, nil
}

// recipientInfos wraps cek for every recipient and returns the DER of the
// RecipientInfos in DER SET OF order, and whether all of them are version
// 0, which the EnvelopedData version depends on (RFC 5652 §6.1).
func recipientInfos(cek []byte, rs []recipient, opts Options) (ris [][]byte, allV0 bool, err error) {
	ris = make([][]byte, len(rs))
	allV0 = true
	for i, r := range rs {
		var ri []byte
		var v0 bool
		if r.rsa != nil {
			oaep := opts.RSAOAEP
			if opts.RSAOAEPFor != nil {
				oaep = opts.RSAOAEPFor(r.cert)
			}
			ri, v0, err = keyTrans(cek, r, oaep)
		} else {
			ri, err = keyAgree(cek, r)
		}
		if err != nil {
			return nil, false, &RecipientError{Index: i, Subject: r.cert.Subject.String(), Err: err}
		}
		ris[i] = ri
		allV0 = allV0 && v0
	}
	// X.690 §11.6: DER orders the elements of a SET OF by their encodings.
	slices.SortFunc(ris, bytes.Compare)
	return ris, allV0, nil
}

// ridIssuerSerial encodes an IssuerAndSerialNumber (RFC 5652 §10.2.4).
func ridIssuerSerial(c *x509.Certificate) ([]byte, error) {
	return asn1.Marshal(issuerAndSerialNumber{
		Issuer:       asn1.RawValue{FullBytes: c.RawIssuer},
		SerialNumber: c.SerialNumber,
	})
}

// nullParams is an AlgorithmIdentifier's NULL parameters.
func nullParams() asn1.RawValue { return asn1.RawValue{Tag: asn1.TagNull} }

// oaepSHA256Params is RSAES-OAEP-params for SHA-256 (RFC 4055 §4.1,
// rSAES-OAEP-SHA256-Params): hashFunc sha256Identifier and maskGenFunc
// mgf1SHA256Identifier written out (both differ from the SHA-1 DEFAULT),
// pSourceFunc left at its DEFAULT, the empty label, which DER omits.
// RFC 4055 §2.1 gives sha256Identifier NULL parameters; readers accept
// both NULL and absent.
func oaepSHA256Params() ([]byte, error) {
	sha256ID, err := asn1.Marshal(algorithmIdentifier{Algorithm: oidSHA256(), Parameters: nullParams()})
	if err != nil {
		return nil, err
	}
	mgf1ID, err := asn1.Marshal(algorithmIdentifier{Algorithm: oidMGF1(), Parameters: asn1.RawValue{FullBytes: sha256ID}})
	if err != nil {
		return nil, err
	}
	// RSAES-OAEP-params ::= SEQUENCE { hashFunc [0] ..., maskGenFunc [1]
	// ..., pSourceFunc [2] ... }, EXPLICIT tags (RFC 4055 §4.1 and its
	// module, RFC 8017 A.2.1).
	var body []byte
	body = appendHeader(body, tagExplicit0, int64(len(sha256ID)))
	body = append(body, sha256ID...)
	body = appendHeader(body, tagExplicit1, int64(len(mgf1ID)))
	body = append(body, mgf1ID...)
	return append(appendHeader(nil, tagSequence, int64(len(body))), body...), nil
}

// keyTrans builds a KeyTransRecipientInfo (RFC 5652 §6.2.1) for an RSA
// recipient. It reports whether its version is 0.
func keyTrans(cek []byte, r recipient, oaep bool) ([]byte, bool, error) {
	var ek []byte
	var alg algorithmIdentifier
	var err error
	if oaep {
		// RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 8551 §2.3 SHOULD+,
		// RFC 3560 §3, RFC 4055 §4.1).
		ek, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, r.rsa, cek, nil)
		if err != nil {
			return nil, false, fmt.Errorf("RSA-OAEP key transport: %w", err)
		}
		params, err := oaepSHA256Params()
		if err != nil {
			return nil, false, err
		}
		alg = algorithmIdentifier{Algorithm: oidRSAESOAEP(), Parameters: asn1.RawValue{FullBytes: params}}
	} else {
		// RSA PKCS #1 v1.5 key transport (RFC 3370 §4.2.1; RFC 8551 §2.3
		// MUST). Go deprecates it for the decryption oracle it offers a
		// receiver; encrypting is not affected, and every S/MIME client
		// reads it. (Since Go 1.26 the random source is crypto/rand.)
		ek, err = rsa.EncryptPKCS1v15(rand.Reader, r.rsa, cek)
		if err != nil {
			return nil, false, fmt.Errorf("RSA key transport: %w", err)
		}
		alg = algorithmIdentifier{Algorithm: oidRSAEncryption(), Parameters: nullParams()} // RFC 3370 §4.2.1: NULL
	}
	// RFC 5652 §6.2.1: version 0 with issuerAndSerialNumber, 2 with
	// subjectKeyIdentifier [0] IMPLICIT SubjectKeyIdentifier (an OCTET
	// STRING, so a primitive [0]).
	version := 0
	var rid []byte
	if r.ski {
		version = 2
		rid = append(appendHeader(nil, tagImplicit0Raw, int64(len(r.cert.SubjectKeyId))), r.cert.SubjectKeyId...)
	} else if rid, err = ridIssuerSerial(r.cert); err != nil {
		return nil, false, err
	}
	ri, err := asn1.Marshal(keyTransRecipientInfo{
		Version:                version,
		RID:                    asn1.RawValue{FullBytes: rid},
		KeyEncryptionAlgorithm: alg,
		EncryptedKey:           ek,
	})
	if err != nil {
		return nil, false, fmt.Errorf("encode KeyTransRecipientInfo: %w", err)
	}
	return ri, version == 0, nil
}

// wrapOID returns the AES key-wrap algorithm for a CEK of keyLen octets:
// RFC 8551 §2.3: the key sizes of the key wrap and the content-encryption
// algorithm MUST be the same.
func wrapOID(keyLen int) asn1.ObjectIdentifier {
	switch keyLen {
	case 16:
		return oidAES128Wrap()
	case 24:
		return oidAES192Wrap()
	}
	return oidAES256Wrap()
}

// eccSharedInfo encodes the ECC-CMS-SharedInfo (RFC 5753 §7.2) for a KEK of
// kekLen octets made for the key-wrap algorithm wrap.
func eccSharedInfo(wrap asn1.ObjectIdentifier, ukm []byte, kekLen int) ([]byte, error) {
	var bits [4]byte
	binary.BigEndian.PutUint32(bits[:], uint32(kekLen)*8)
	return asn1.Marshal(eccCMSSharedInfo{
		KeyInfo:     algorithmIdentifier{Algorithm: wrap}, // RFC 5753 §7.2: AES wrap parameters absent
		EntityUInfo: ukm,
		SuppPubInfo: bits[:],
	})
}

// ecdhKEK derives the key-encryption key from the ECDH shared secret z by
// the X9.63 KDF (RFC 5753 §3.1.1) with hash h.
func ecdhKEK(h crypto.Hash, z []byte, wrap asn1.ObjectIdentifier, ukm []byte, kekLen int) ([]byte, error) {
	si, err := eccSharedInfo(wrap, ukm, kekLen)
	if err != nil {
		return nil, err
	}
	return x963KDF(h.New, z, si, kekLen), nil
}

// keyAgree builds a KeyAgreeRecipientInfo (RFC 5652 §6.2.2) for an EC
// recipient by ephemeral-static ECDH (RFC 5753 §3.1.1, RFC 8551 §2.3): a
// fresh key pair per recipient, its public key as originatorKey, the X9.63
// KDF, and the CEK wrapped with AES Key Wrap (RFC 3394, RFC 3565 §4.2).
// Its version is always 3.
func keyAgree(cek []byte, r recipient) ([]byte, error) {
	// Since Go 1.26 the ephemeral key always comes from crypto/rand.
	eph, err := r.ec.Curve().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ECDH ephemeral key: %w", err)
	}
	z, err := eph.ECDH(r.ec)
	if err != nil {
		return nil, fmt.Errorf("ECDH: %w", err)
	}
	defer clear(z)
	wrap := wrapOID(len(cek))
	kek, err := ecdhKEK(r.ecs.hash, z, wrap, nil, len(cek)) // no ukm (RFC 5753 §3.1.1: OPTIONAL)
	if err != nil {
		return nil, err
	}
	defer clear(kek)
	wrapped, err := aesKeyWrap(kek, cek)
	if err != nil {
		return nil, err
	}

	// originator [0] EXPLICIT OriginatorIdentifierOrKey, the choice
	// originatorKey [1] IMPLICIT OriginatorPublicKey (RFC 5652 §6.2.2):
	// id-ecPublicKey with the named curve, and the uncompressed point
	// (RFC 5753 §3.1.1, §7.2 ECPoint; RFC 5480 §2.2).
	curve, err := asn1.Marshal(r.ecs.curveOID)
	if err != nil {
		return nil, err
	}
	opk, err := asn1.Marshal(originatorPublicKey{
		Algorithm: algorithmIdentifier{Algorithm: oidECPublicKey(), Parameters: asn1.RawValue{FullBytes: curve}},
		PublicKey: asn1.BitString{Bytes: eph.PublicKey().Bytes(), BitLength: 8 * len(eph.PublicKey().Bytes())},
	})
	if err != nil {
		return nil, err
	}
	opk[0] = tagImplicit1 // [1] IMPLICIT replaces the SEQUENCE tag
	originator := append(appendHeader(nil, tagExplicit0, int64(len(opk))), opk...)

	// KeyAgreeRecipientIdentifier: issuerAndSerialNumber, or rKeyId [0]
	// IMPLICIT RecipientKeyIdentifier ::= SEQUENCE { subjectKeyIdentifier,
	// date OPTIONAL, other OPTIONAL } (RFC 5652 §6.2.2).
	var rid []byte
	if r.ski {
		ski := append(appendHeader(nil, tagOctetString, int64(len(r.cert.SubjectKeyId))), r.cert.SubjectKeyId...)
		rid = append(appendHeader(nil, tagExplicit0, int64(len(ski))), ski...)
	} else if rid, err = ridIssuerSerial(r.cert); err != nil {
		return nil, err
	}
	wrapAlg, err := asn1.Marshal(algorithmIdentifier{Algorithm: wrap})
	if err != nil {
		return nil, err
	}
	ri, err := asn1.Marshal(keyAgreeRecipientInfo{
		Version:    3, // RFC 5652 §6.2.2: always 3
		Originator: asn1.RawValue{FullBytes: originator},
		// RFC 5753 §3.1.1: keyEncryptionAlgorithm is the key-agreement
		// scheme, its parameters the key-wrap AlgorithmIdentifier.
		KeyEncryptionAlgorithm: algorithmIdentifier{Algorithm: r.ecs.kdfOID, Parameters: asn1.RawValue{FullBytes: wrapAlg}},
		RecipientEncryptedKeys: []recipientEncryptedKey{{RID: asn1.RawValue{FullBytes: rid}, EncryptedKey: wrapped}},
	})
	if err != nil {
		return nil, fmt.Errorf("encode KeyAgreeRecipientInfo: %w", err)
	}
	ri[0] = tagImplicit1 // RecipientInfo: kari [1] KeyAgreeRecipientInfo (implicit)
	return ri, nil
}
