package smime

import (
	"encoding/asn1"
	"fmt"
	"strings"
)

// Cipher selects the content-encryption algorithm. The zero value is
// AES256CBC.
type Cipher int

const (
	// AES256CBC is id-aes256-CBC (RFC 3565 §4.1) in an EnvelopedData, the
	// zero value. RFC 5751 §2.7 agents SHOULD+ support it; every S/MIME
	// client in use reads it.
	AES256CBC Cipher = iota
	// AES128CBC is id-aes128-CBC (RFC 3565 §4.1) in an EnvelopedData; RFC
	// 8551 §2.7: MUST- (still required, on its way out).
	AES128CBC
	// AES128GCM is id-aes128-GCM (RFC 5084 §3.2) in an AuthEnvelopedData
	// (RFC 5083); RFC 8551 §2.7: MUST.
	AES128GCM
	// AES256GCM is id-aes256-GCM (RFC 5084 §3.2) in an AuthEnvelopedData
	// (RFC 5083); RFC 8551 §2.7: MUST.
	AES256GCM
)

// CipherAuto is not an algorithm but a choice: the caller picks the cipher
// of each copy from what its readers announced in their SMIMECapabilities
// (AutoCipher). Encrypt and EncryptBase64 refuse it with
// ErrUnsupportedCipher.
const CipherAuto Cipher = -1

// allCiphers lists every Cipher, in the order ParseCipher documents them.
func allCiphers() []Cipher { return []Cipher{AES256CBC, AES128CBC, AES128GCM, AES256GCM} }

// String returns the name used in configuration, logs and trace headers:
// "aes256-cbc", "aes128-cbc", "aes128-gcm" or "aes256-gcm". ParseCipher
// reads it back.
func (c Cipher) String() string {
	switch c {
	case AES256CBC:
		return "aes256-cbc"
	case AES128CBC:
		return "aes128-cbc"
	case AES128GCM:
		return "aes128-gcm"
	case AES256GCM:
		return "aes256-gcm"
	case CipherAuto:
		return "auto"
	}
	return fmt.Sprintf("Cipher(%d)", int(c))
}

// ParseCipher returns the Cipher whose String is s, compared
// case-insensitively: "aes256-cbc", "aes128-cbc", "aes128-gcm",
// "aes256-gcm" or "auto" (CipherAuto). Any other value, the empty string
// included, yields an error wrapping ErrUnsupportedCipher that lists the
// accepted names.
func ParseCipher(s string) (Cipher, error) {
	var names []string
	for _, c := range append(allCiphers(), CipherAuto) {
		if strings.EqualFold(s, c.String()) {
			return c, nil
		}
		names = append(names, c.String())
	}
	return 0, fmt.Errorf("%w: %q (want one of %s)", ErrUnsupportedCipher, s, strings.Join(names, ", "))
}

// authenticated reports whether c is an AEAD cipher, written as an
// AuthEnvelopedData (RFC 5083) rather than an EnvelopedData.
func (c Cipher) authenticated() bool { return c == AES128GCM || c == AES256GCM }

// cipherParams describes a content-encryption algorithm.
type cipherParams struct {
	keyLen int                   // CEK octets
	ivLen  int                   // IV (CBC) or nonce (GCM) octets
	oid    asn1.ObjectIdentifier // contentEncryptionAlgorithm
	gcm    bool                  // AuthEnvelopedData with AES-GCM
}

// params returns the key length and algorithm identifier of c.
func (c Cipher) params() (cipherParams, error) {
	switch c {
	case AES256CBC:
		return cipherParams{32, 16, oidAES256CBC(), false}, nil
	case AES128CBC:
		return cipherParams{16, 16, oidAES128CBC(), false}, nil
	case AES128GCM:
		// RFC 5084 §3.2: the nonce SHOULD be 12 octets, which is what GCM
		// is fast and well analysed with (NIST SP 800-38D §5.2.1.1).
		return cipherParams{16, gcmNonceSize, oidAES128GCM(), true}, nil
	case AES256GCM:
		return cipherParams{32, gcmNonceSize, oidAES256GCM(), true}, nil
	}
	return cipherParams{}, fmt.Errorf("%w: %v", ErrUnsupportedCipher, c)
}
