package smime

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
)

// Cipher selects the content-encryption algorithm. The zero value is
// AES256CBC.
type Cipher int

const (
	// AES256CBC is id-aes256-CBC (RFC 3565 §4.1), the default. RFC 8551 §2.7
	// requires receiving agents to support it.
	AES256CBC Cipher = iota
	// AES128CBC is id-aes128-CBC (RFC 3565 §4.1).
	AES128CBC
)

// String returns the name used in logs and trace headers: "aes256-cbc" or
// "aes128-cbc".
func (c Cipher) String() string {
	switch c {
	case AES256CBC:
		return "aes256-cbc"
	case AES128CBC:
		return "aes128-cbc"
	}
	return fmt.Sprintf("Cipher(%d)", int(c))
}

// params returns the key length and algorithm identifier of c.
func (c Cipher) params() (keyLen int, oid asn1.ObjectIdentifier, err error) {
	switch c {
	case AES256CBC:
		return 32, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, nil // RFC 3565 §4.1 id-aes256-CBC
	case AES128CBC:
		return 16, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}, nil // RFC 3565 §4.1 id-aes128-CBC
	}
	return 0, nil, fmt.Errorf("%w: %v", ErrUnsupportedCipher, c)
}

// Options configure one call of [Encrypt] or [EncryptBase64]. The zero value
// encrypts with AES-256-CBC and crypto/rand.
type Options struct {
	// Cipher is the content-encryption algorithm; the zero value is AES256CBC.
	Cipher Cipher
	// Rand is the source of the content-encryption key and IV; nil means
	// crypto/rand.Reader. (Since Go 1.26 the RSA encryption itself always
	// draws from crypto/rand.)
	Rand io.Reader
}

// Errors returned by [Encrypt] and [EncryptBase64], possibly wrapped; test
// with errors.Is.
var (
	// ErrNoRecipients: the recipient list is empty.
	ErrNoRecipients = errors.New("smime: no recipients")
	// ErrUnsupportedKey: a recipient certificate has no RSA public key (or is
	// nil or unparsed). It comes wrapped in a *RecipientError.
	ErrUnsupportedKey = errors.New("smime: unsupported recipient key")
	// ErrUnsupportedCipher: Options.Cipher is not a known Cipher.
	ErrUnsupportedCipher = errors.New("smime: unsupported cipher")
	// ErrSizeMismatch: the reader yielded fewer or more bytes than the size
	// given, or the size is negative or too large. The output written so far
	// is incomplete and must be discarded.
	ErrSizeMismatch = errors.New("smime: plaintext size mismatch")
)

// RecipientError reports a recipient certificate that cannot be used.
type RecipientError struct {
	Index   int    // position in the recipients slice
	Subject string // certificate subject, RFC 2253 form
	Err     error  // wraps ErrUnsupportedKey or the RSA encryption error
}

func (e *RecipientError) Error() string {
	return fmt.Sprintf("smime: recipient %d (%s): %v", e.Index, e.Subject, e.Err)
}

func (e *RecipientError) Unwrap() error { return e.Err }

// chunkSize is how much plaintext is read, encrypted and written at a time; a
// multiple of the AES block size.
const chunkSize = 64 << 10

// maxSize bounds the plaintext size so that length arithmetic cannot
// overflow; it is far beyond any mail.
const maxSize = 1 << 50

// Encrypt writes to w a DER-encoded CMS ContentInfo holding an EnvelopedData
// (RFC 5652 §6) of exactly size bytes of plaintext read from r, with one
// KeyTransRecipientInfo (RSA PKCS #1 v1.5, IssuerAndSerialNumber) per
// recipient. Every recipient certificate must carry an RSA public key.
//
// Encrypt streams: its memory use does not depend on size. It draws a fresh
// content-encryption key and IV from opts.Rand for every call.
//
// After reading size bytes Encrypt checks that r is at its end. It returns
// ErrNoRecipients, ErrUnsupportedCipher, a *RecipientError wrapping
// ErrUnsupportedKey, ErrSizeMismatch, or a wrapped error from r, w or
// opts.Rand. On error, what was written to w is incomplete and must be
// discarded.
func Encrypt(w io.Writer, r io.Reader, size int64, recipients []*x509.Certificate, opts Options) error {
	return encrypt(w, r, size, recipients, opts)
}

// EncryptBase64 is like [Encrypt] but writes the DER in base64 (RFC 2045
// §6.8), in CRLF-terminated lines of at most 76 characters, the last one
// CRLF-terminated too: the body of the application/pkcs7-mime entity (RFC
// 8551 §3.3) whose header fields [OuterFields] lists.
func EncryptBase64(w io.Writer, r io.Reader, size int64, recipients []*x509.Certificate, opts Options) error {
	bw := newBase64Writer(w)
	if err := encrypt(bw, r, size, recipients, opts); err != nil {
		return err
	}
	return bw.Close()
}

// Object identifiers and fixed structures. They are built per call (a few
// hundred bytes) so that the package keeps no shared state.
func oidData() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1} } // RFC 5652 §4

func oidEnvelopedData() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3} // RFC 5652 §6.1
}

func oidRSAEncryption() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1} // RFC 3370 §4.2.1
}

// algorithmIdentifier is RFC 5280 §4.1.1.2 AlgorithmIdentifier.
type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue
}

// issuerAndSerialNumber is RFC 5652 §10.2.4 IssuerAndSerialNumber.
type issuerAndSerialNumber struct {
	Issuer       asn1.RawValue // the certificate's DER issuer Name, verbatim
	SerialNumber *big.Int
}

// keyTransRecipientInfo is RFC 5652 §6.2.1 KeyTransRecipientInfo.
type keyTransRecipientInfo struct {
	Version                int // 0 with IssuerAndSerialNumber (RFC 5652 §6.2.1)
	RID                    issuerAndSerialNumber
	KeyEncryptionAlgorithm algorithmIdentifier
	EncryptedKey           []byte
}

// recipientKeys checks that every certificate can receive a key and returns
// the RSA public keys.
func recipientKeys(recipients []*x509.Certificate) ([]*rsa.PublicKey, error) {
	if len(recipients) == 0 {
		return nil, ErrNoRecipients
	}
	pubs := make([]*rsa.PublicKey, len(recipients))
	for i, c := range recipients {
		if c == nil {
			return nil, &RecipientError{Index: i, Err: fmt.Errorf("%w: nil certificate", ErrUnsupportedKey)}
		}
		subject := c.Subject.String()
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			// RFC 8551 §2.3 also knows ECDH key agreement; not implemented.
			return nil, &RecipientError{Index: i, Subject: subject, Err: fmt.Errorf("%w: public key type %T", ErrUnsupportedKey, c.PublicKey)}
		}
		if len(c.RawIssuer) == 0 || c.SerialNumber == nil {
			return nil, &RecipientError{Index: i, Subject: subject, Err: fmt.Errorf("%w: certificate has no issuer or serial number (not parsed?)", ErrUnsupportedKey)}
		}
		pubs[i] = pub
	}
	return pubs, nil
}

// recipientInfos wraps cek for every recipient and returns the DER of the
// KeyTransRecipientInfos in DER SET OF order.
func recipientInfos(rnd io.Reader, cek []byte, recipients []*x509.Certificate, pubs []*rsa.PublicKey) ([][]byte, error) {
	ris := make([][]byte, len(recipients))
	for i, c := range recipients {
		// RSA PKCS #1 v1.5 key transport (RFC 3370 §4.2.1; RFC 8551 §2.3 MUST).
		// Go deprecates it for the decryption oracle it offers a receiver;
		// encrypting is not affected, and OpenSSL and every S/MIME client
		// read it.
		ek, err := rsa.EncryptPKCS1v15(rnd, pubs[i], cek)
		if err != nil {
			return nil, &RecipientError{Index: i, Subject: c.Subject.String(), Err: fmt.Errorf("RSA key transport: %w", err)}
		}
		ri, err := asn1.Marshal(keyTransRecipientInfo{
			Version: 0,
			RID: issuerAndSerialNumber{
				Issuer:       asn1.RawValue{FullBytes: c.RawIssuer},
				SerialNumber: c.SerialNumber,
			},
			KeyEncryptionAlgorithm: algorithmIdentifier{
				Algorithm:  oidRSAEncryption(),
				Parameters: asn1.RawValue{Tag: asn1.TagNull}, // RFC 3370 §4.2.1: parameters MUST be NULL
			},
			EncryptedKey: ek,
		})
		if err != nil {
			return nil, &RecipientError{Index: i, Subject: c.Subject.String(), Err: fmt.Errorf("encode RecipientInfo: %w", err)}
		}
		ris[i] = ri
	}
	// X.690 §11.6: DER orders the elements of a SET OF by their encodings.
	slices.SortFunc(ris, bytes.Compare)
	return ris, nil
}

func encrypt(w io.Writer, r io.Reader, size int64, recipients []*x509.Certificate, opts Options) error {
	if size < 0 || size > maxSize {
		return fmt.Errorf("%w: size %d out of range", ErrSizeMismatch, size)
	}
	keyLen, algOID, err := opts.Cipher.params()
	if err != nil {
		return err
	}
	pubs, err := recipientKeys(recipients)
	if err != nil {
		return err
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}

	// Fresh CEK and IV for every message (RFC 5652 §6.3, RFC 3565 §2.1).
	secret := make([]byte, keyLen+aes.BlockSize)
	defer clear(secret)
	if _, err := io.ReadFull(rnd, secret); err != nil {
		return fmt.Errorf("smime: random key: %w", err)
	}
	cek, iv := secret[:keyLen], secret[keyLen:]
	block, err := aes.NewCipher(cek)
	if err != nil {
		return fmt.Errorf("smime: %w", err)
	}
	ris, err := recipientInfos(rnd, cek, recipients, pubs)
	if err != nil {
		return err
	}
	alg, err := asn1.Marshal(algorithmIdentifier{
		Algorithm:  algOID,
		Parameters: asn1.RawValue{Tag: asn1.TagOctetString, Bytes: iv}, // RFC 3565 §4.1: AES-IV ::= OCTET STRING (SIZE(16))
	})
	if err != nil {
		return fmt.Errorf("smime: encode algorithm: %w", err)
	}
	hdr, err := envelopeHeader(ris, alg, ciphertextLen(size))
	if err != nil {
		return err
	}

	// The header goes out with the first chunk; every chunk is encrypted in
	// place and written with one Write, without further copies.
	buf := make([]byte, len(hdr)+chunkSize+aes.BlockSize)
	defer clear(buf)
	off := copy(buf, hdr)
	mode := cipher.NewCBCEncrypter(block, iv)
	remaining := size
	for {
		n, last := chunkSize, false
		if remaining <= chunkSize {
			n, last = int(remaining), true
		}
		p := buf[off : off+n]
		if got, err := io.ReadFull(r, p); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return fmt.Errorf("%w: got %d bytes, want %d", ErrSizeMismatch, size-remaining+int64(got), size)
			}
			return fmt.Errorf("smime: read plaintext: %w", err)
		}
		remaining -= int64(n)
		if last {
			// RFC 5652 §6.3: pad with k-(l mod k) octets of value k-(l mod k);
			// a whole block of 16s when l is a multiple of 16.
			pad := aes.BlockSize - n%aes.BlockSize
			p = buf[off : off+n+pad]
			for i := n; i < len(p); i++ {
				p[i] = byte(pad)
			}
		}
		mode.CryptBlocks(p, p)
		if _, err := w.Write(buf[:off+len(p)]); err != nil {
			return fmt.Errorf("smime: write: %w", err)
		}
		off = 0
		if last {
			break
		}
	}

	// The length fields are already written: more input than announced is
	// an error, not something to truncate silently.
	var extra [1]byte
	switch n, err := io.ReadFull(r, extra[:]); {
	case n > 0:
		return fmt.Errorf("%w: more than %d bytes", ErrSizeMismatch, size)
	case err != io.EOF:
		return fmt.Errorf("smime: read plaintext: %w", err)
	}
	return nil
}

// ciphertextLen is the length of the CBC ciphertext of size bytes with PKCS
// #7 padding (RFC 5652 §6.3): always 1 to 16 bytes of padding.
func ciphertextLen(size int64) int64 {
	return (size/aes.BlockSize + 1) * aes.BlockSize
}
