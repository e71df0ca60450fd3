package smime

// Test-only helpers: recipients with keys and certificates generated on the
// spot, and a small, strict CMS EnvelopedData and AuthEnvelopedData reader
// (RSA v1.5 recipients by issuer and serial number) written from RFC 5652,
// 5083 and 5084 without any of the package's own code, so that tests (and
// fuzzing) check the writer against an independent reading when OpenSSL is
// not at hand. Decrypt, the package's own reader, is tested against it and
// against OpenSSL.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
)

// testRecipient is a certificate and its private key.
type testRecipient struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

var (
	recipientsOnce sync.Once
	recipientsPool []testRecipient
	recipientsErr  error
)

// testRecipients returns n (at most 4) RSA recipients, generated once per
// test binary: RSA-2048 keys with self-signed certificates that differ in
// subject and serial number. The last one has a serial number with the high
// bit set, so its DER INTEGER needs a leading zero octet.
func testRecipients(tb testing.TB, n int) []testRecipient {
	tb.Helper()
	recipientsOnce.Do(func() {
		serials := []*big.Int{
			big.NewInt(1),
			big.NewInt(0x7f),
			new(big.Int).Lsh(big.NewInt(1), 100),
			new(big.Int).SetBytes(bytes.Repeat([]byte{0xff}, 16)),
		}
		for i, serial := range serials {
			key, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				recipientsErr = err
				return
			}
			cert, err := selfSigned(fmt.Sprintf("rcpt%d@example.test", i), serial, key.Public(), key)
			if err != nil {
				recipientsErr = err
				return
			}
			recipientsPool = append(recipientsPool, testRecipient{cert, key})
		}
	})
	if recipientsErr != nil {
		tb.Fatal(recipientsErr)
	}
	if n > len(recipientsPool) {
		tb.Fatalf("testRecipients(%d): only %d available", n, len(recipientsPool))
	}
	return recipientsPool[:n]
}

func certsOf(rs []testRecipient) []*x509.Certificate {
	certs := make([]*x509.Certificate, len(rs))
	for i, r := range rs {
		certs[i] = r.Cert
	}
	return certs
}

// selfSigned makes an S/MIME style certificate for email with the given
// public key, signed by signer.
func selfSigned(email string, serial *big.Int, pub any, signer any) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: email, Organization: []string{"danemilter test"}},
		EmailAddresses: []string{email},
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(24 * time.Hour),
		KeyUsage:       x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// unsupportedCert returns a certificate with an Ed25519 key, which no
// S/MIME key transport or agreement uses.
func unsupportedCert(tb testing.TB) *x509.Certificate {
	tb.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := selfSigned("ed@example.test", big.NewInt(42), pub, key)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

// The reader's own ASN.1 types (RFC 5652), independent of the writer's.
type tContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,tag:0"`
}

type tEnvelopedData struct {
	Version        int
	RecipientInfos []asn1.RawValue `asn1:"set"`
	EncryptedCI    tEncryptedContentInfo
}

type tAuthEnvelopedData struct { // RFC 5083 §2.1, without the optional fields
	Version         int
	RecipientInfos  []asn1.RawValue `asn1:"set"`
	AuthEncryptedCI tEncryptedContentInfo
	MAC             []byte
}

type tEncryptedContentInfo struct {
	ContentType      asn1.ObjectIdentifier
	Algorithm        tAlgorithm
	EncryptedContent []byte `asn1:"tag:0"` // [0] IMPLICIT OCTET STRING, primitive
}

type tAlgorithm struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue
}

type tKeyTrans struct {
	Version int
	RID     struct {
		Issuer asn1.RawValue
		Serial *big.Int
	}
	KeyEncryptionAlgorithm tAlgorithm
	EncryptedKey           []byte
}

// decrypted is what decryptCMS found besides the plaintext.
type decrypted struct {
	Plaintext  []byte
	CEK        []byte
	IV         []byte
	Cipher     Cipher
	Recipients int // number of RecipientInfos
}

// unmarshalAll is asn1.Unmarshal that refuses trailing octets.
func unmarshalAll(b []byte, v any, what string) error {
	rest, err := asn1.Unmarshal(b, v)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%s: %d trailing octets", what, len(rest))
	}
	return nil
}

// decryptCMS reads a DER ContentInfo holding an EnvelopedData (AES-CBC) or
// an AuthEnvelopedData (AES-GCM, RFC 5083/5084), finds the
// KeyTransRecipientInfo of r by issuer and serial number, unwraps the CEK
// with RSA PKCS #1 v1.5 and decrypts the content, GCM with crypto/cipher's
// one-shot AEAD (independent of the package's streaming GCM). It is
// strict: it checks every version number, algorithm identifier, DER length
// form (Go's encoding/asn1 refuses non-minimal lengths and the indefinite
// form), the DER order of the SET OF RecipientInfo, and the padding.
func decryptCMS(der []byte, r testRecipient) (*decrypted, error) {
	var ci tContentInfo
	if err := unmarshalAll(der, &ci, "ContentInfo"); err != nil {
		return nil, err
	}
	var ris []asn1.RawValue
	var eci tEncryptedContentInfo
	var mac []byte
	auth := false
	switch {
	case ci.ContentType.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}):
		var env tEnvelopedData
		if err := unmarshalAll(ci.Content.Bytes, &env, "EnvelopedData"); err != nil {
			return nil, err
		}
		if env.Version != 0 {
			return nil, fmt.Errorf("EnvelopedData version %d, want 0", env.Version)
		}
		ris, eci = env.RecipientInfos, env.EncryptedCI
	case ci.ContentType.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23}):
		var env tAuthEnvelopedData
		if err := unmarshalAll(ci.Content.Bytes, &env, "AuthEnvelopedData"); err != nil {
			return nil, err
		}
		if env.Version != 0 {
			return nil, fmt.Errorf("AuthEnvelopedData version %d, want 0", env.Version)
		}
		ris, eci, mac, auth = env.RecipientInfos, env.AuthEncryptedCI, env.MAC, true
	default:
		return nil, fmt.Errorf("content type %v, want id-envelopedData or id-ct-authEnvelopedData", ci.ContentType)
	}
	if len(ris) == 0 {
		return nil, errors.New("no RecipientInfos")
	}
	var ek []byte
	for i, raw := range ris {
		if i > 0 && bytes.Compare(ris[i-1].FullBytes, raw.FullBytes) > 0 {
			return nil, errors.New("SET OF RecipientInfo not in DER order")
		}
		var kt tKeyTrans
		if err := unmarshalAll(raw.FullBytes, &kt, "KeyTransRecipientInfo"); err != nil {
			return nil, err
		}
		if kt.Version != 0 {
			return nil, fmt.Errorf("KeyTransRecipientInfo version %d, want 0", kt.Version)
		}
		if !kt.KeyEncryptionAlgorithm.Algorithm.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}) {
			return nil, fmt.Errorf("key encryption algorithm %v", kt.KeyEncryptionAlgorithm.Algorithm)
		}
		if p := kt.KeyEncryptionAlgorithm.Parameters.FullBytes; !bytes.Equal(p, []byte{5, 0}) {
			return nil, fmt.Errorf("rsaEncryption parameters %x, want NULL", p)
		}
		if bytes.Equal(kt.RID.Issuer.FullBytes, r.Cert.RawIssuer) && kt.RID.Serial.Cmp(r.Cert.SerialNumber) == 0 {
			ek = kt.EncryptedKey
		}
	}
	if ek == nil {
		return nil, errors.New("no RecipientInfo for this recipient")
	}
	if !eci.ContentType.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}) {
		return nil, fmt.Errorf("encrypted content type %v, want id-data", eci.ContentType)
	}
	var c Cipher
	var keyLen int
	switch alg := eci.Algorithm.Algorithm; {
	case alg.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}):
		c, keyLen = AES256CBC, 32
	case alg.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}):
		c, keyLen = AES128CBC, 16
	case alg.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}):
		c, keyLen = AES256GCM, 32
	case alg.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}):
		c, keyLen = AES128GCM, 16
	default:
		return nil, fmt.Errorf("content encryption algorithm %v", alg)
	}
	gcm := c == AES256GCM || c == AES128GCM
	if gcm != auth {
		return nil, fmt.Errorf("%v in the wrong content type", c)
	}
	cek, err := rsa.DecryptPKCS1v15(nil, r.Key, ek)
	if err != nil {
		return nil, fmt.Errorf("unwrap CEK: %w", err)
	}
	if len(cek) != keyLen {
		return nil, fmt.Errorf("CEK of %d octets for %v", len(cek), c)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	ct := eci.EncryptedContent
	if gcm {
		// RFC 5084 §3.2 GCMParameters: a 12-octet nonce and, written out
		// because it is not the DEFAULT 12, an ICV length of 16.
		var params struct {
			Nonce  []byte
			ICVLen int `asn1:"optional,default:12"`
		}
		if err := unmarshalAll(eci.Algorithm.Parameters.FullBytes, &params, "GCMParameters"); err != nil {
			return nil, err
		}
		if len(params.Nonce) != 12 || params.ICVLen != 16 || len(mac) != 16 {
			return nil, fmt.Errorf("GCM nonce %d, ICV length %d, mac %d octets; want 12, 16, 16", len(params.Nonce), params.ICVLen, len(mac))
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		pt, err := aead.Open(nil, params.Nonce, append(bytes.Clone(ct), mac...), nil)
		if err != nil {
			return nil, fmt.Errorf("GCM: %w", err)
		}
		if pt == nil {
			pt = []byte{}
		}
		return &decrypted{Plaintext: pt, CEK: cek, IV: params.Nonce, Cipher: c, Recipients: len(ris)}, nil
	}
	var iv []byte
	if err := unmarshalAll(eci.Algorithm.Parameters.FullBytes, &iv, "AES IV"); err != nil {
		return nil, err
	}
	if len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("IV of %d octets", len(iv))
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("ciphertext of %d octets", len(ct))
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	pad := int(pt[len(pt)-1])
	if pad < 1 || pad > aes.BlockSize {
		return nil, fmt.Errorf("bad padding length %d", pad)
	}
	for _, b := range pt[len(pt)-pad:] {
		if int(b) != pad {
			return nil, errors.New("bad padding")
		}
	}
	return &decrypted{
		Plaintext:  pt[:len(pt)-pad],
		CEK:        cek,
		IV:         iv,
		Cipher:     c,
		Recipients: len(ris),
	}, nil
}

// decodeBase64Body checks that b is what EncryptBase64 promises (lines of
// at most 76 base64 characters, every line CRLF-terminated, all full lines
// but the last exactly 76) and returns the decoded octets.
func decodeBase64Body(b []byte) ([]byte, error) {
	s := string(b)
	if !strings.HasSuffix(s, "\r\n") {
		return nil, errors.New("body does not end in CRLF")
	}
	lines := strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n")
	for i, l := range lines {
		if len(l) > 76 {
			return nil, fmt.Errorf("line %d has %d characters", i, len(l))
		}
		if i < len(lines)-1 && len(l) != 76 {
			return nil, fmt.Errorf("inner line %d has %d characters, want 76", i, len(l))
		}
		if strings.ContainsAny(l, "\r\n") || l == "" {
			return nil, fmt.Errorf("line %d is empty or has a bare CR/LF", i)
		}
	}
	return base64.StdEncoding.Strict().DecodeString(strings.Join(lines, ""))
}
