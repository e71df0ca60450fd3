package smime

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/textproto"
	"strings"

	"github.com/danemilter/danemilter/mimeentity"
)

// Errors returned by [Decrypt] and [DecryptMIME], possibly wrapped; test
// with errors.Is. Their texts stay generic: in particular a bad padding, a
// bad GCM tag, a failed key unwrap and a wrong RSA key all yield the same
// ErrDecrypt, so that the error offers no padding oracle.
var (
	// ErrNoRecipientInfo: no RecipientInfo of the message names the
	// certificate (by issuer and serial number or subject key identifier)
	// with a key of its type: the message is not for this key.
	ErrNoRecipientInfo = errors.New("smime: no RecipientInfo for this certificate")
	// ErrUnsupportedAlgorithm: the content type or an algorithm that the
	// message uses for this recipient is not one Decrypt implements.
	ErrUnsupportedAlgorithm = errors.New("smime: unsupported algorithm")
	// ErrDecrypt: decryption failed: a wrong key, a bad padding, a GCM
	// tag that does not verify, a failed key unwrap.
	ErrDecrypt = errors.New("smime: decryption failed")
	// ErrMalformed: the input is not a well-formed CMS EnvelopedData or
	// AuthEnvelopedData, or not an application/pkcs7-mime entity.
	ErrMalformed = errors.New("smime: malformed message")
)

// Decrypt reads a BER- or DER-encoded CMS ContentInfo holding an
// EnvelopedData (RFC 5652 §6) or an AuthEnvelopedData (RFC 5083), finds the
// RecipientInfo for cert, recovers the content-encryption key with key and
// returns the decrypted content (for S/MIME, a MIME entity).
//
// key is the private key of cert:
//
//   - an RSA key, as *rsa.PrivateKey or any crypto.Decrypter with an RSA
//     public key, for a KeyTransRecipientInfo with rsaEncryption (PKCS #1
//     v1.5, RFC 3370 §4.2.1) or id-RSAES-OAEP with SHA-1, SHA-224, SHA-256,
//     SHA-384 or SHA-512 (RFC 4055 §4.1, RFC 3560);
//   - an EC key on P-256, P-384 or P-521, as *ecdsa.PrivateKey or
//     *ecdh.PrivateKey, for a KeyAgreeRecipientInfo with ephemeral-static
//     ECDH (originatorKey), the dhSinglePass-stdDH or -cofactorDH scheme
//     with the X9.63 KDF over SHA-1, SHA-224, SHA-256, SHA-384 or SHA-512,
//     and id-aes128-wrap, id-aes192-wrap or id-aes256-wrap (RFC 5753 §3.1).
//
// The recipient may be named by issuer and serial number or by subject key
// identifier. Content encryption: AES-128, -192 or -256 in CBC mode in an
// EnvelopedData (RFC 3565), in GCM mode in an AuthEnvelopedData (RFC 5084,
// ICV of 12 to 16 octets, 12-octet nonce; authAttrs are authenticated).
// Lengths may be definite or indefinite and the encrypted content a
// constructed OCTET STRING, as OpenSSL's -stream output has it.
//
// Decrypt holds the message and the plaintext in memory; bound the input.
// The plaintext is returned only after the GCM tag or the CBC padding
// checked out. A GCM tag authenticates the content, not the sender: anyone
// can encrypt to a public key. Decrypt returns ErrNoRecipientInfo,
// ErrUnsupportedAlgorithm, ErrDecrypt, ErrMalformed, or ErrUnsupportedKey
// for a key of another type.
func Decrypt(msg []byte, key crypto.PrivateKey, cert *x509.Certificate) ([]byte, error) {
	if cert == nil {
		return nil, fmt.Errorf("%w: nil certificate", ErrNoRecipientInfo)
	}
	k, err := newPrivateKey(key, cert)
	if err != nil {
		return nil, err
	}
	env, err := parseEnveloped(msg)
	if err != nil {
		return nil, err
	}
	ca, err := parseContentAlgorithm(env.alg, env.params)
	if err != nil {
		return nil, err
	}
	// RFC 5083 §1 and RFC 5084: GCM belongs in an AuthEnvelopedData,
	// whose mac it fills; CBC in an EnvelopedData. A mismatch is refused
	// rather than read without authentication.
	if ca.gcm != env.auth {
		return nil, fmt.Errorf("%w: %v in the wrong content type", ErrUnsupportedAlgorithm, env.alg)
	}
	cek, err := findCEK(env.ris, k, cert, ca.keyLen)
	if err != nil {
		return nil, err
	}
	defer clear(cek)
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, ErrDecrypt
	}
	if ca.gcm {
		return openGCM(block, ca, env)
	}
	return openCBC(block, ca.iv, env.ciphertext)
}

// privateKey is the recipient's key in the form the RecipientInfo needs.
type privateKey struct {
	rsa crypto.Decrypter // RSA key transport, or
	ec  *ecdh.PrivateKey // ECDH key agreement (NIST curves)
}

// newPrivateKey checks that key is of a supported type and belongs to cert.
func newPrivateKey(key crypto.PrivateKey, cert *x509.Certificate) (privateKey, error) {
	var k privateKey
	switch key := key.(type) {
	case *ecdsa.PrivateKey:
		ek, err := key.ECDH()
		if err != nil {
			return k, fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
		}
		k.ec = ek
	case *ecdh.PrivateKey:
		k.ec = key
	case crypto.Decrypter:
		if _, ok := key.Public().(*rsa.PublicKey); !ok {
			return k, fmt.Errorf("%w: decrypter with a %T public key", ErrUnsupportedKey, key.Public())
		}
		k.rsa = key
	default:
		return k, fmt.Errorf("%w: private key type %T", ErrUnsupportedKey, key)
	}
	if k.ec != nil {
		if _, ok := ecSchemeFor(k.ec.Curve()); !ok {
			return k, fmt.Errorf("%w: %v key agreement is not supported", ErrUnsupportedKey, k.ec.Curve())
		}
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok {
			return k, fmt.Errorf("%w: private key does not belong to the certificate", ErrDecrypt)
		}
		if cp, err := pub.ECDH(); err != nil || !cp.Equal(k.ec.PublicKey()) {
			return k, fmt.Errorf("%w: private key does not belong to the certificate", ErrDecrypt)
		}
		return k, nil
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(k.rsa.Public()) {
		return k, fmt.Errorf("%w: private key does not belong to the certificate", ErrDecrypt)
	}
	return k, nil
}

// enveloped is what Decrypt needs of an EnvelopedData or AuthEnvelopedData.
type enveloped struct {
	auth       bool      // AuthEnvelopedData
	ris        []berElem // RecipientInfos
	alg        asn1.ObjectIdentifier
	params     *berElem // contentEncryptionAlgorithm parameters
	ciphertext []byte
	authAttrs  *berElem // AuthEnvelopedData authAttrs [1]
	mac        []byte
}

// parseEnveloped walks ContentInfo (RFC 5652 §3) down to the fields of an
// EnvelopedData (RFC 5652 §6.1) or AuthEnvelopedData (RFC 5083 §2.1).
func parseEnveloped(msg []byte) (*enveloped, error) {
	ci, rest, err := parseBER(msg, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
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
	env := &enveloped{}
	switch {
	case ct.Equal(oidEnvelopedData()):
	case ct.Equal(oidAuthEnvelopedData()):
		env.auth = true
	default:
		return nil, fmt.Errorf("%w: content type %v is neither EnvelopedData nor AuthEnvelopedData", ErrUnsupportedAlgorithm, ct)
	}
	inner, err := kids[1].children()
	if err != nil {
		return nil, err
	}
	if len(inner) != 1 || !inner[0].is(classUniversal, numSequence, true) {
		return nil, malformed("content is not one SEQUENCE")
	}
	f, err := inner[0].children()
	if err != nil {
		return nil, err
	}
	// version CMSVersion, originatorInfo [0] IMPLICIT OPTIONAL,
	// recipientInfos SET, (auth)encryptedContentInfo SEQUENCE, then
	// unprotectedAttrs [1] (EnvelopedData) or authAttrs [1], mac OCTET
	// STRING, unauthAttrs [2] (AuthEnvelopedData). The version is not
	// checked: it only tells what may follow, which is checked instead.
	next := func() *berElem {
		if len(f) == 0 {
			return nil
		}
		e := f[0]
		f = f[1:]
		return &e
	}
	if v := next(); v == nil || !v.is(classUniversal, numInteger, false) {
		return nil, malformed("version expected")
	}
	e := next()
	if e != nil && e.is(classContext, 0, true) { // originatorInfo: certificates and CRLs, not needed
		e = next()
	}
	if e == nil || !e.is(classUniversal, numSet, true) {
		return nil, malformed("recipientInfos expected")
	}
	if env.ris, err = e.children(); err != nil {
		return nil, err
	}
	if len(env.ris) == 0 {
		return nil, malformed("no RecipientInfo") // RFC 5652 §6.1: SIZE (1..MAX)
	}
	eci := next()
	if eci == nil || !eci.is(classUniversal, numSequence, true) {
		return nil, malformed("EncryptedContentInfo expected")
	}
	ef, err := eci.children()
	if err != nil {
		return nil, err
	}
	// EncryptedContentInfo ::= SEQUENCE { contentType,
	// contentEncryptionAlgorithm, encryptedContent [0] IMPLICIT OCTET
	// STRING OPTIONAL } (RFC 5652 §6.1).
	if len(ef) != 3 || !ef[2].is(classContext, 0, ef[2].compound) {
		if len(ef) == 2 {
			return nil, fmt.Errorf("%w: detached encrypted content", ErrUnsupportedAlgorithm)
		}
		return nil, malformed("EncryptedContentInfo ::= SEQUENCE { contentType, algorithm, [0] encryptedContent } expected")
	}
	if _, err := ef[0].oid(); err != nil {
		return nil, err
	}
	if env.alg, env.params, err = ef[1].algorithm(); err != nil {
		return nil, err
	}
	if env.ciphertext, err = ef[2].octets(); err != nil {
		return nil, err
	}
	e = next()
	if !env.auth {
		if e != nil && e.is(classContext, 1, true) { // unprotectedAttrs
			e = next()
		}
		if e != nil {
			return nil, malformed("unexpected element after EncryptedContentInfo")
		}
		return env, nil
	}
	if e != nil && e.is(classContext, 1, true) {
		env.authAttrs = e
		e = next()
	}
	if e == nil || !e.is(classUniversal, numOctetString, e.compound) {
		return nil, malformed("mac expected")
	}
	if env.mac, err = e.octets(); err != nil {
		return nil, err
	}
	if e = next(); e != nil && e.is(classContext, 2, true) { // unauthAttrs
		e = next()
	}
	if e != nil {
		return nil, malformed("unexpected element after mac")
	}
	return env, nil
}

// contentAlg is a content-encryption algorithm with its parameters.
type contentAlg struct {
	keyLen int
	gcm    bool
	iv     []byte // CBC IV or GCM nonce
	icvLen int    // GCM tag length
}

func parseContentAlgorithm(alg asn1.ObjectIdentifier, params *berElem) (contentAlg, error) {
	var ca contentAlg
	switch {
	case alg.Equal(oidAES128CBC()):
		ca.keyLen = 16
	case alg.Equal(oidAES192CBC()):
		ca.keyLen = 24
	case alg.Equal(oidAES256CBC()):
		ca.keyLen = 32
	case alg.Equal(oidAES128GCM()):
		ca.keyLen, ca.gcm = 16, true
	case alg.Equal(oidAES192GCM()):
		ca.keyLen, ca.gcm = 24, true
	case alg.Equal(oidAES256GCM()):
		ca.keyLen, ca.gcm = 32, true
	default:
		return ca, fmt.Errorf("%w: content encryption %v", ErrUnsupportedAlgorithm, alg)
	}
	if params == nil {
		return ca, malformed("content encryption parameters missing")
	}
	if !ca.gcm {
		// RFC 3565 §4.1: AES-IV ::= OCTET STRING (SIZE(16)).
		iv, err := params.octets()
		if err != nil || !params.is(classUniversal, numOctetString, params.compound) || len(iv) != aes.BlockSize {
			return ca, malformed("AES-CBC IV")
		}
		ca.iv = iv
		return ca, nil
	}
	// RFC 5084 §3.2: GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING,
	// aes-ICVlen AES-GCM-ICVlen DEFAULT 12 }, AES-GCM-ICVlen ::= INTEGER
	// (12 | 13 | 14 | 15 | 16).
	if !params.is(classUniversal, numSequence, true) {
		return ca, malformed("GCMParameters")
	}
	kids, err := params.children()
	if err != nil {
		return ca, err
	}
	if len(kids) < 1 || len(kids) > 2 || !kids[0].is(classUniversal, numOctetString, kids[0].compound) {
		return ca, malformed("GCMParameters")
	}
	if ca.iv, err = kids[0].octets(); err != nil {
		return ca, err
	}
	ca.icvLen = 12
	if len(kids) == 2 {
		if ca.icvLen, err = kids[1].smallInt(); err != nil {
			return ca, err
		}
	}
	if ca.icvLen < 12 || ca.icvLen > 16 {
		return ca, malformed("GCM ICV length %d", ca.icvLen)
	}
	if len(ca.iv) != gcmNonceSize {
		return ca, fmt.Errorf("%w: GCM nonce of %d octets", ErrUnsupportedAlgorithm, len(ca.iv))
	}
	return ca, nil
}

// openCBC decrypts AES-CBC content and removes the RFC 5652 §6.3 padding,
// checking it without data-dependent branches.
func openCBC(block cipher.Block, iv, ct []byte) ([]byte, error) {
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, ErrDecrypt
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	last := pt[len(pt)-aes.BlockSize:]
	pad := int(last[len(last)-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	for i := range aes.BlockSize {
		// Octets within the padding must equal pad.
		in := subtle.ConstantTimeLessOrEq(aes.BlockSize-pad, i)
		same := subtle.ConstantTimeByteEq(last[i], byte(pad))
		good &= subtle.ConstantTimeSelect(in, same, 1)
	}
	if good != 1 {
		clear(pt)
		return nil, ErrDecrypt
	}
	return pt[:len(pt)-pad], nil
}

// openGCM decrypts and authenticates AES-GCM content (RFC 5084, RFC 5083
// §2.2), with crypto/cipher's one-shot GCM: the message is in memory.
func openGCM(block cipher.Block, ca contentAlg, env *enveloped) ([]byte, error) {
	if len(env.mac) != ca.icvLen {
		return nil, malformed("mac of %d octets for an ICV of %d", len(env.mac), ca.icvLen)
	}
	aead, err := cipher.NewGCMWithTagSize(block, ca.icvLen)
	if err != nil {
		return nil, ErrDecrypt
	}
	var aad []byte
	if env.authAttrs != nil {
		// RFC 5083 §2.2: the additional data is the DER encoding of
		// authAttrs with the EXPLICIT SET OF tag in place of [1].
		aad = append(appendHeader(nil, tagSet, int64(len(env.authAttrs.content))), env.authAttrs.content...)
	}
	sealed := make([]byte, 0, len(env.ciphertext)+len(env.mac))
	sealed = append(append(sealed, env.ciphertext...), env.mac...)
	pt, err := aead.Open(sealed[:0], ca.iv, sealed, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// findCEK looks for the RecipientInfo of cert and recovers the CEK of
// keyLen octets from it.
func findCEK(ris []berElem, k privateKey, cert *x509.Certificate, keyLen int) ([]byte, error) {
	var firstErr error // of a RecipientInfo that names cert
	for _, ri := range ris {
		var cek []byte
		var named bool
		var err error
		switch {
		case ri.is(classUniversal, numSequence, true): // ktri (RFC 5652 §6.2)
			if k.rsa == nil {
				continue
			}
			cek, named, err = openKeyTrans(ri, k.rsa, cert, keyLen)
		case ri.is(classContext, 1, true): // kari [1]
			if k.ec == nil {
				continue
			}
			cek, named, err = openKeyAgree(ri, k.ec, cert, keyLen)
		default: // kekri [2], pwri [3], ori [4]: not for a certificate
			continue
		}
		if !named {
			if err != nil && errors.Is(err, ErrMalformed) {
				return nil, err
			}
			continue
		}
		if err == nil {
			return cek, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, ErrNoRecipientInfo
}

// namesCert reports whether an IssuerAndSerialNumber (RFC 5652 §10.2.4)
// element names cert.
func namesCert(ias berElem, cert *x509.Certificate) (bool, error) {
	kids, err := ias.children()
	if err != nil {
		return false, err
	}
	if len(kids) != 2 {
		return false, malformed("IssuerAndSerialNumber")
	}
	serial, err := kids[1].bigInt()
	if err != nil {
		return false, err
	}
	return cert.SerialNumber != nil && bytes.Equal(kids[0].full, cert.RawIssuer) && serial.Cmp(cert.SerialNumber) == 0, nil
}

// namesSKI reports whether a SubjectKeyIdentifier value names cert.
func namesSKI(ski []byte, cert *x509.Certificate) bool {
	return len(cert.SubjectKeyId) > 0 && bytes.Equal(ski, cert.SubjectKeyId)
}

// openKeyTrans reads a KeyTransRecipientInfo (RFC 5652 §6.2.1). named
// reports whether it is for cert; the CEK is returned only then.
func openKeyTrans(ri berElem, dec crypto.Decrypter, cert *x509.Certificate, keyLen int) (cek []byte, named bool, err error) {
	kids, err := ri.children()
	if err != nil {
		return nil, false, err
	}
	if len(kids) != 4 {
		return nil, false, malformed("KeyTransRecipientInfo")
	}
	// rid: issuerAndSerialNumber, or subjectKeyIdentifier [0] IMPLICIT.
	switch rid := kids[1]; {
	case rid.is(classUniversal, numSequence, true):
		if named, err = namesCert(rid, cert); err != nil {
			return nil, false, err
		}
	case rid.is(classContext, 0, rid.compound):
		ski, err := rid.octets()
		if err != nil {
			return nil, false, err
		}
		named = namesSKI(ski, cert)
	default:
		return nil, false, malformed("RecipientIdentifier")
	}
	if !named {
		return nil, false, nil
	}
	alg, params, err := kids[2].algorithm()
	if err != nil {
		return nil, true, err
	}
	if !kids[3].is(classUniversal, numOctetString, kids[3].compound) {
		return nil, true, malformed("encryptedKey")
	}
	ek, err := kids[3].octets()
	if err != nil {
		return nil, true, err
	}
	var opts crypto.DecrypterOpts
	switch {
	case alg.Equal(oidRSAEncryption()):
		// RFC 3370 §4.2.1. On a padding error, a random key of the
		// expected length comes back instead (in constant time), so that
		// the failure shows only later and as the same ErrDecrypt as a
		// bad content padding or tag (RFC 3218, Bleichenbacher).
		opts = &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keyLen}
	case alg.Equal(oidRSAESOAEP()):
		oo, err := parseOAEPParams(params)
		if err != nil {
			return nil, true, err
		}
		opts = oo
	default:
		return nil, true, fmt.Errorf("%w: key transport %v", ErrUnsupportedAlgorithm, alg)
	}
	cek, err = dec.Decrypt(rand.Reader, ek, opts)
	if err != nil || len(cek) != keyLen {
		clear(cek)
		return nil, true, ErrDecrypt
	}
	return cek, true, nil
}

// hashByOID maps the hash functions RFC 4055 §2.1 names.
func hashByOID(o asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case o.Equal(oidSHA1()):
		return crypto.SHA1, true
	case o.Equal(oidSHA224()):
		return crypto.SHA224, true
	case o.Equal(oidSHA256()):
		return crypto.SHA256, true
	case o.Equal(oidSHA384()):
		return crypto.SHA384, true
	case o.Equal(oidSHA512()):
		return crypto.SHA512, true
	}
	return 0, false
}

// parseOAEPParams reads RSAES-OAEP-params (RFC 4055 §4.1, RFC 8017 A.2.1):
// hashFunc [0], maskGenFunc [1] (MGF1 only) and pSourceFunc [2]
// (pSpecified: the label), each EXPLICIT and each DEFAULTing to SHA-1,
// MGF1-SHA-1 and the empty label.
func parseOAEPParams(p *berElem) (*rsa.OAEPOptions, error) {
	o := &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}
	if absentOrNull(p) { // RFC 3560 §3: absent parameters are all defaults
		return o, nil
	}
	if !p.is(classUniversal, numSequence, true) {
		return nil, malformed("RSAES-OAEP-params")
	}
	kids, err := p.children()
	if err != nil {
		return nil, err
	}
	hashOf := func(e berElem) (crypto.Hash, error) {
		alg, _, err := e.algorithm()
		if err != nil {
			return 0, err
		}
		h, ok := hashByOID(alg)
		if !ok {
			return 0, fmt.Errorf("%w: OAEP hash %v", ErrUnsupportedAlgorithm, alg)
		}
		return h, nil
	}
	last := -1
	for _, k := range kids {
		if k.class != classContext || !k.compound || k.num <= last || k.num > 2 {
			return nil, malformed("RSAES-OAEP-params")
		}
		last = k.num
		inner, err := k.children()
		if err != nil {
			return nil, err
		}
		if len(inner) != 1 {
			return nil, malformed("RSAES-OAEP-params")
		}
		switch k.num {
		case 0: // hashFunc
			if o.Hash, err = hashOf(inner[0]); err != nil {
				return nil, err
			}
		case 1: // maskGenFunc: id-mgf1 with the hash as parameters
			alg, params, err := inner[0].algorithm()
			if err != nil {
				return nil, err
			}
			if !alg.Equal(oidMGF1()) || params == nil {
				return nil, fmt.Errorf("%w: OAEP mask generation %v", ErrUnsupportedAlgorithm, alg)
			}
			if o.MGFHash, err = hashOf(*params); err != nil {
				return nil, err
			}
		case 2: // pSourceFunc: id-pSpecified with the label
			alg, params, err := inner[0].algorithm()
			if err != nil {
				return nil, err
			}
			if !alg.Equal(oidPSpecified()) {
				return nil, fmt.Errorf("%w: OAEP label source %v", ErrUnsupportedAlgorithm, alg)
			}
			if params != nil {
				if o.Label, err = params.octets(); err != nil {
					return nil, err
				}
			}
		}
	}
	return o, nil
}

// kdfHash maps the key-agreement schemes of RFC 5753 §7.1.4 to the hash of
// their X9.63 KDF. On the NIST curves (cofactor 1) cofactor DH equals
// standard DH.
func kdfHash(o asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case o.Equal(oidStdDHSHA1KDF()), o.Equal(oidCofactorDHSHA1KDF()):
		return crypto.SHA1, true
	}
	hashes := []crypto.Hash{crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512}
	for n, h := range hashes {
		if o.Equal(oidStdDH(n)) || o.Equal(oidCofactorDH(n)) {
			return h, true
		}
	}
	return 0, false
}

// wrapKEKLen returns the KEK length of an AES key-wrap algorithm.
func wrapKEKLen(o asn1.ObjectIdentifier) (int, bool) {
	switch {
	case o.Equal(oidAES128Wrap()):
		return 16, true
	case o.Equal(oidAES192Wrap()):
		return 24, true
	case o.Equal(oidAES256Wrap()):
		return 32, true
	}
	return 0, false
}

// openKeyAgree reads a KeyAgreeRecipientInfo (RFC 5652 §6.2.2, RFC 5753
// §3.1.2). named reports whether one of its RecipientEncryptedKeys is for
// cert; the CEK is returned only then.
func openKeyAgree(ri berElem, priv *ecdh.PrivateKey, cert *x509.Certificate, keyLen int) (cek []byte, named bool, err error) {
	kids, err := ri.children()
	if err != nil {
		return nil, false, err
	}
	// version, originator [0] EXPLICIT, ukm [1] EXPLICIT OPTIONAL,
	// keyEncryptionAlgorithm, recipientEncryptedKeys.
	if len(kids) != 4 && len(kids) != 5 {
		return nil, false, malformed("KeyAgreeRecipientInfo")
	}
	if !kids[1].is(classContext, 0, true) {
		return nil, false, malformed("KeyAgreeRecipientInfo originator")
	}
	var ukm []byte
	if len(kids) == 5 {
		if !kids[2].is(classContext, 1, true) {
			return nil, false, malformed("KeyAgreeRecipientInfo ukm")
		}
		u, err := kids[2].children()
		if err != nil {
			return nil, false, err
		}
		if len(u) != 1 || !u[0].is(classUniversal, numOctetString, u[0].compound) {
			return nil, false, malformed("KeyAgreeRecipientInfo ukm")
		}
		if ukm, err = u[0].octets(); err != nil {
			return nil, false, err
		}
	}
	keys := kids[len(kids)-1]
	if !keys.is(classUniversal, numSequence, true) {
		return nil, false, malformed("RecipientEncryptedKeys")
	}
	reks, err := keys.children()
	if err != nil {
		return nil, false, err
	}
	var ek []byte
	for _, rek := range reks {
		f, err := rek.children()
		if err != nil {
			return nil, false, err
		}
		if len(f) != 2 || !f[1].is(classUniversal, numOctetString, f[1].compound) {
			return nil, false, malformed("RecipientEncryptedKey")
		}
		// rid: issuerAndSerialNumber, or rKeyId [0] IMPLICIT
		// RecipientKeyIdentifier ::= SEQUENCE { subjectKeyIdentifier,
		// date OPTIONAL, other OPTIONAL }.
		var match bool
		switch rid := f[0]; {
		case rid.is(classUniversal, numSequence, true):
			if match, err = namesCert(rid, cert); err != nil {
				return nil, false, err
			}
		case rid.is(classContext, 0, true):
			rk, err := rid.children()
			if err != nil {
				return nil, false, err
			}
			if len(rk) < 1 || !rk[0].is(classUniversal, numOctetString, rk[0].compound) {
				return nil, false, malformed("RecipientKeyIdentifier")
			}
			ski, err := rk[0].octets()
			if err != nil {
				return nil, false, err
			}
			match = namesSKI(ski, cert)
		default:
			return nil, false, malformed("KeyAgreeRecipientIdentifier")
		}
		if match {
			if ek, err = f[1].octets(); err != nil {
				return nil, false, err
			}
			break
		}
	}
	if ek == nil {
		return nil, false, nil
	}

	// originator: only originatorKey [1] (ephemeral-static, RFC 5753
	// §3.1.1) carries a key; the static forms name a certificate.
	orig, err := kids[1].children()
	if err != nil {
		return nil, true, err
	}
	if len(orig) != 1 || !orig[0].is(classContext, 1, true) {
		return nil, true, fmt.Errorf("%w: originator is not an ephemeral originatorKey", ErrUnsupportedAlgorithm)
	}
	opk, err := orig[0].children()
	if err != nil {
		return nil, true, err
	}
	if len(opk) != 2 || !opk[1].is(classUniversal, numBitString, false) {
		return nil, true, malformed("OriginatorPublicKey")
	}
	kt, ktParams, err := opk[0].algorithm()
	if err != nil {
		return nil, true, err
	}
	scheme, _ := ecSchemeFor(priv.Curve())
	if !kt.Equal(oidECPublicKey()) {
		return nil, true, fmt.Errorf("%w: originator key type %v", ErrUnsupportedAlgorithm, kt)
	}
	// RFC 5753 §7.1.2: the parameters may be absent or NULL (the curve is
	// the recipient's), or name the curve, which must then be ours.
	if !absentOrNull(ktParams) {
		curve, err := ktParams.oid()
		if err != nil || !curve.Equal(scheme.curveOID) {
			return nil, true, fmt.Errorf("%w: originator key on another curve", ErrDecrypt)
		}
	}
	bits := opk[1].content
	if len(bits) < 2 || bits[0] != 0 {
		return nil, true, malformed("originator public key BIT STRING")
	}
	peer, err := priv.Curve().NewPublicKey(bits[1:])
	if err != nil {
		return nil, true, ErrDecrypt
	}

	scheme0, wrapParams, err := kids[len(kids)-2].algorithm()
	if err != nil {
		return nil, true, err
	}
	h, ok := kdfHash(scheme0)
	if !ok {
		return nil, true, fmt.Errorf("%w: key agreement %v", ErrUnsupportedAlgorithm, scheme0)
	}
	if wrapParams == nil {
		return nil, true, malformed("key agreement without a key-wrap algorithm")
	}
	wrap, _, err := wrapParams.algorithm()
	if err != nil {
		return nil, true, err
	}
	kekLen, ok := wrapKEKLen(wrap)
	if !ok {
		return nil, true, fmt.Errorf("%w: key wrap %v", ErrUnsupportedAlgorithm, wrap)
	}
	if !h.Available() {
		return nil, true, fmt.Errorf("%w: hash %v", ErrUnsupportedAlgorithm, h)
	}
	z, err := priv.ECDH(peer)
	if err != nil {
		return nil, true, ErrDecrypt
	}
	defer clear(z)
	kek, err := ecdhKEK(h, z, wrap, ukm, kekLen)
	if err != nil {
		return nil, true, err
	}
	defer clear(kek)
	cek, err = aesKeyUnwrap(kek, ek)
	if err != nil || len(cek) != keyLen {
		clear(cek)
		return nil, true, ErrDecrypt
	}
	return cek, true, nil
}

// DecryptMIME reads an application/pkcs7-mime entity (RFC 8551 §3.3): a
// header, an empty line and the body, base64 or binary as its
// Content-Transfer-Encoding says. The header may be a whole message's
// (From, To, ... are ignored); its Content-Type must be
// application/pkcs7-mime or application/x-pkcs7-mime with smime-type
// enveloped-data or authEnveloped-data, or without smime-type. DecryptMIME
// returns what Decrypt returns for the body: the inner MIME entity.
//
// DecryptMIME reads r to its end; bound it (io.LimitReader). Besides
// Decrypt's errors it returns ErrMalformed for a header or body it cannot
// read and ErrUnsupportedAlgorithm for another smime-type.
func DecryptMIME(r io.Reader, key crypto.PrivateKey, cert *x509.Certificate) ([]byte, error) {
	br := bufio.NewReader(r)
	h, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		return nil, malformed("header: %v", err)
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return nil, malformed("Content-Type: %v", err)
	}
	if mt != "application/pkcs7-mime" && mt != "application/x-pkcs7-mime" { // RFC 8551 §3.2
		return nil, malformed("Content-Type %s is not application/pkcs7-mime", mt)
	}
	// RFC 8551 §3.2.2: smime-type values.
	if st, ok := params["smime-type"]; ok && !strings.EqualFold(st, "enveloped-data") && !strings.EqualFold(st, "authEnveloped-data") {
		return nil, fmt.Errorf("%w: smime-type %s", ErrUnsupportedAlgorithm, st)
	}
	var body io.Reader = br
	switch cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte {
	case "base64": // RFC 2045 §6.8; RFC 8551 §3.1.2
		body = mimeentity.NewBase64Reader(br)
	case "", "binary", "7bit", "8bit":
	default:
		return nil, malformed("Content-Transfer-Encoding %s", cte)
	}
	der, err := io.ReadAll(body)
	if err != nil {
		var corrupt base64.CorruptInputError
		if errors.As(err, &corrupt) {
			return nil, malformed("base64 body: %v", err)
		}
		return nil, fmt.Errorf("smime: read body: %w", err)
	}
	return Decrypt(der, key, cert)
}
