package smime

// Test-only helpers: recipients with keys and certificates generated on the
// spot, and a small, strict CMS EnvelopedData reader written from RFC 5652
// without any of the package's own types, so that tests (and fuzzing) check
// the writer against an independent reading when OpenSSL is not at hand.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
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

// ecdsaCert returns a certificate with a P-256 key, which Encrypt cannot use.
func ecdsaCert(tb testing.TB) *x509.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := selfSigned("ec@example.test", big.NewInt(42), key.Public(), key)
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

// decryptCMS reads a DER ContentInfo holding an EnvelopedData, finds the
// KeyTransRecipientInfo of r by issuer and serial number, unwraps the CEK
// with RSA PKCS #1 v1.5 and decrypts the AES-CBC content. It is strict: it
// checks every version number, algorithm identifier, DER length form (Go's
// encoding/asn1 refuses non-minimal lengths and the indefinite form), the
// DER order of the SET OF RecipientInfo, and the padding.
func decryptCMS(der []byte, r testRecipient) (*decrypted, error) {
	var ci tContentInfo
	if err := unmarshalAll(der, &ci, "ContentInfo"); err != nil {
		return nil, err
	}
	if !ci.ContentType.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}) {
		return nil, fmt.Errorf("content type %v, want id-envelopedData", ci.ContentType)
	}
	var env tEnvelopedData
	if err := unmarshalAll(ci.Content.Bytes, &env, "EnvelopedData"); err != nil {
		return nil, err
	}
	if env.Version != 0 {
		return nil, fmt.Errorf("EnvelopedData version %d, want 0", env.Version)
	}
	if len(env.RecipientInfos) == 0 {
		return nil, errors.New("no RecipientInfos")
	}
	var ek []byte
	for i, raw := range env.RecipientInfos {
		if i > 0 && bytes.Compare(env.RecipientInfos[i-1].FullBytes, raw.FullBytes) > 0 {
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
	eci := env.EncryptedCI
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
	default:
		return nil, fmt.Errorf("content encryption algorithm %v", alg)
	}
	var iv []byte
	if err := unmarshalAll(eci.Algorithm.Parameters.FullBytes, &iv, "AES IV"); err != nil {
		return nil, err
	}
	if len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("IV of %d octets", len(iv))
	}
	cek, err := rsa.DecryptPKCS1v15(nil, r.Key, ek)
	if err != nil {
		return nil, fmt.Errorf("unwrap CEK: %w", err)
	}
	if len(cek) != keyLen {
		return nil, fmt.Errorf("CEK of %d octets for %v", len(cek), c)
	}
	ct := eci.EncryptedContent
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("ciphertext of %d octets", len(ct))
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
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
		Recipients: len(env.RecipientInfos),
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
