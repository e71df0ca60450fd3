package smime

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"

	"github.com/danemilter/danemilter/mimeentity"
)

// Options configure one call of [Encrypt] or [EncryptBase64]. The zero value
// encrypts with AES-256-CBC in an EnvelopedData, RSA PKCS #1 v1.5 key
// transport, recipients named by issuer and serial number, and crypto/rand:
// what every S/MIME agent reads.
type Options struct {
	// Cipher is the content-encryption algorithm; the zero value is
	// AES256CBC. AES128GCM and AES256GCM write an AuthEnvelopedData; its
	// header fields come from OuterFieldsFor(Cipher).
	Cipher Cipher
	// Rand is the source of the content-encryption key and IV (or GCM
	// nonce); nil means crypto/rand.Reader. (Since Go 1.26 the RSA
	// encryption and the ephemeral ECDH keys always draw from crypto/rand.)
	Rand io.Reader
	// RSAOAEP selects RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 4055
	// §4.1, RFC 8551 §2.3) for RSA recipients instead of RSA PKCS #1 v1.5.
	// OAEP has no padding oracle, but some older clients (and hardware
	// tokens) only know v1.5, so false, the broadest choice, is the
	// default. EC recipients always get ECDH key agreement.
	RSAOAEP bool
	// RSAOAEPFor, when set, decides RSAOAEP for each RSA recipient (the
	// cipher "auto" gives OAEP to a recipient whose SMIMECapabilities
	// announce it, AnnouncesOAEP); RSAOAEP is then not read.
	RSAOAEPFor func(cert *x509.Certificate) bool
	// UseSKI names each recipient certificate that has a
	// SubjectKeyIdentifier extension by that identifier instead of its
	// issuer and serial number (RFC 5652 §6.2.1, §6.2.2); a certificate
	// without one is still named by issuer and serial number. The
	// EnvelopedData version follows (RFC 5652 §6.1).
	UseSKI bool
}

// Errors returned by [Encrypt] and [EncryptBase64], possibly wrapped; test
// with errors.Is.
var (
	// ErrNoRecipients: the recipient list is empty.
	ErrNoRecipients = errors.New("smime: no recipients")
	// ErrUnsupportedKey: a recipient certificate has neither an RSA nor a
	// P-256, P-384 or P-521 public key (or is nil or unparsed). Encrypt
	// returns it wrapped in a *RecipientError; Decrypt returns it for a
	// private key it cannot use.
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
	Err     error  // wraps ErrUnsupportedKey or the key transport or agreement error
}

func (e *RecipientError) Error() string {
	return fmt.Sprintf("smime: recipient %d (%s): %v", e.Index, e.Subject, e.Err)
}

func (e *RecipientError) Unwrap() error { return e.Err }

// chunkSize is how much plaintext is read, encrypted and written at a time; a
// multiple of the AES block size.
const chunkSize = 64 << 10

// maxSize bounds the plaintext size so that length arithmetic cannot
// overflow; it is far beyond any mail. GCM has the lower gcmMaxSize.
const maxSize = 1 << 50

// Encrypt writes to w a DER-encoded CMS ContentInfo of exactly size bytes of
// plaintext read from r, encrypted for every certificate in recipients:
//
//   - with a CBC Cipher an EnvelopedData (RFC 5652 §6), with a GCM Cipher
//     an AuthEnvelopedData (RFC 5083, RFC 5084) whose mac is the GCM tag;
//   - per RSA certificate a KeyTransRecipientInfo (RSA PKCS #1 v1.5, or
//     RSAES-OAEP-SHA-256 with opts.RSAOAEP), per P-256, P-384 or P-521
//     certificate a KeyAgreeRecipientInfo (ephemeral-static ECDH, X9.63 KDF
//     with SHA-256, SHA-384 or SHA-512, AES key wrap of the content key's
//     size); certificates of both kinds mix freely;
//   - each certificate named by issuer and serial number, or by subject key
//     identifier with opts.UseSKI.
//
// Encrypt streams: its memory use does not depend on size. It draws a fresh
// content-encryption key and IV or nonce from opts.Rand for every call.
//
// After reading size bytes Encrypt checks that r is at its end, before it
// writes the last ciphertext octets. It returns ErrNoRecipients,
// ErrUnsupportedCipher, a *RecipientError wrapping ErrUnsupportedKey,
// ErrSizeMismatch (also for sizes beyond 64 GiB with GCM), or a wrapped
// error from r, w or opts.Rand. On error, what was written to w is
// incomplete and must be discarded.
func Encrypt(w io.Writer, r io.Reader, size int64, recipients []*x509.Certificate, opts Options) error {
	return encrypt(w, r, size, recipients, opts)
}

// EncryptBase64 is like [Encrypt] but writes the DER in base64 (RFC 2045
// §6.8), in CRLF-terminated lines of at most 76 characters, the last one
// CRLF-terminated too: the body of the application/pkcs7-mime entity (RFC
// 8551 §3.3) whose header fields [OuterFieldsFor](opts.Cipher) lists.
func EncryptBase64(w io.Writer, r io.Reader, size int64, recipients []*x509.Certificate, opts Options) error {
	bw := mimeentity.NewBase64Writer(w, 0, size) // RFC 2045 §6.8: 76-character lines
	if err := encrypt(bw, r, size, recipients, opts); err != nil {
		return err
	}
	return bw.Close()
}

func encrypt(w io.Writer, r io.Reader, size int64, recipients []*x509.Certificate, opts Options) error {
	if size < 0 || size > maxSize {
		return fmt.Errorf("%w: size %d out of range", ErrSizeMismatch, size)
	}
	cp, err := opts.Cipher.params()
	if err != nil {
		return err
	}
	if cp.gcm && size > gcmMaxSize {
		return fmt.Errorf("%w: size %d beyond the GCM limit", ErrSizeMismatch, size)
	}
	rs, err := prepareRecipients(recipients, opts)
	if err != nil {
		return err
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}

	// Fresh CEK and IV (or nonce) for every message (RFC 5652 §6.3, RFC
	// 3565 §2.1; NIST SP 800-38D §8: a GCM nonce must never repeat under
	// one key, and a fresh key per message makes that certain).
	secret := make([]byte, cp.keyLen+cp.ivLen)
	defer clear(secret)
	if _, err := io.ReadFull(rnd, secret); err != nil {
		return fmt.Errorf("smime: random key: %w", err)
	}
	cek, iv := secret[:cp.keyLen], secret[cp.keyLen:]
	block, err := aes.NewCipher(cek)
	if err != nil {
		return fmt.Errorf("smime: %w", err)
	}
	ris, allV0, err := recipientInfos(cek, rs, opts)
	if err != nil {
		return err
	}
	env := envelope{auth: cp.gcm, allV0: allV0, ris: ris}
	var params []byte
	if cp.gcm {
		// RFC 5084 §3.2 GCMParameters ::= SEQUENCE { aes-nonce OCTET
		// STRING, aes-ICVlen AES-GCM-ICVlen DEFAULT 12 }: the 16-octet
		// ICV is not the DEFAULT, so DER writes it.
		params, err = asn1.Marshal(gcmParameters{Nonce: iv, ICVLen: gcmTagSize})
		env.ctLen = size // GCM adds no padding
	} else {
		// RFC 3565 §4.1: AES-IV ::= OCTET STRING (SIZE(16)).
		params, err = asn1.Marshal(iv)
		env.ctLen = cbcCiphertextLen(size)
	}
	if err != nil {
		return fmt.Errorf("smime: encode algorithm parameters: %w", err)
	}
	if env.alg, err = asn1.Marshal(algorithmIdentifier{Algorithm: cp.oid, Parameters: asn1.RawValue{FullBytes: params}}); err != nil {
		return fmt.Errorf("smime: encode algorithm: %w", err)
	}
	hdr, err := env.header()
	if err != nil {
		return err
	}

	var mode cipher.BlockMode
	var gcm *gcmStream
	if cp.gcm {
		if gcm, err = newGCMStream(block, iv); err != nil {
			return fmt.Errorf("smime: %w", err)
		}
	} else {
		mode = cipher.NewCBCEncrypter(block, iv)
	}

	// The header goes out with the first chunk; every chunk is encrypted in
	// place and written with one Write, without further copies. The slack
	// holds the CBC padding or the GCM mac.
	// A small message gets a buffer of its size, not a whole chunk.
	buf := make([]byte, len(hdr)+int(min(size, chunkSize))+max(aes.BlockSize, macLen))
	defer clear(buf)
	off := copy(buf, hdr)
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
			// The length fields are already written: more input than
			// announced is an error, not something to truncate silently.
			// Checked before the last octets go out, so that the output
			// is never a complete message.
			if err := checkEOF(r, size); err != nil {
				return err
			}
		}
		switch {
		case gcm != nil:
			gcm.seal(p, p)
			if last {
				tag := gcm.sum()
				// RFC 5083 §2.1: mac MessageAuthenticationCode (an OCTET
				// STRING) follows the authEncryptedContentInfo.
				p = append(appendHeader(p, tagOctetString, gcmTagSize), tag[:]...)
			}
		case last:
			// RFC 5652 §6.3: pad with k-(l mod k) octets of value k-(l mod k);
			// a whole block of 16s when l is a multiple of 16.
			pad := aes.BlockSize - n%aes.BlockSize
			p = buf[off : off+n+pad]
			for i := n; i < len(p); i++ {
				p[i] = byte(pad)
			}
			mode.CryptBlocks(p, p)
		default:
			mode.CryptBlocks(p, p)
		}
		if _, err := w.Write(buf[:off+len(p)]); err != nil {
			return fmt.Errorf("smime: write: %w", err)
		}
		off = 0
		if last {
			return nil
		}
	}
}

// checkEOF reports ErrSizeMismatch unless r has nothing more to read.
func checkEOF(r io.Reader, size int64) error {
	var extra [1]byte
	switch n, err := io.ReadFull(r, extra[:]); {
	case n > 0:
		return fmt.Errorf("%w: more than %d bytes", ErrSizeMismatch, size)
	case err != io.EOF:
		return fmt.Errorf("smime: read plaintext: %w", err)
	}
	return nil
}

// gcmParameters is RFC 5084 §3.2 GCMParameters.
type gcmParameters struct {
	Nonce  []byte
	ICVLen int `asn1:"optional,default:12"`
}

// cbcCiphertextLen is the length of the CBC ciphertext of size bytes with
// PKCS #7 padding (RFC 5652 §6.3): always 1 to 16 bytes of padding.
func cbcCiphertextLen(size int64) int64 {
	return (size/aes.BlockSize + 1) * aes.BlockSize
}
