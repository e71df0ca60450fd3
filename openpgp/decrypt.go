package openpgp

// Decrypting a PGP/MIME message at the gateway (issue 15): the body of a
// multipart/encrypted entity (RFC 3156 §4) is two body parts, the version
// part (application/pgp-encrypted, "Version: 1") and the data part
// (application/octet-stream) holding one ASCII-armored OpenPGP message
// (RFC 9580 §6.2). The message's plaintext, once decrypted with a secret
// key the gateway holds, is the inner MIME entity (RFC 3156 §4: "the
// encrypted data ... MUST be a MIME entity").

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/textproto"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/danemilter/danemilter/mimeentity"
)

// Errors of [DecryptMIME] besides ErrMalformed, possibly wrapped; test
// with errors.Is. Their texts stay generic: a wrong key and a failed
// integrity check give the same ErrDecrypt.
var (
	// ErrNoKey: no secret key given decrypts any session key of the
	// message: it is not for the keys held.
	ErrNoKey = errors.New("openpgp: no key for this message")
	// ErrDecrypt: the session key was recovered but the data did not
	// decrypt or did not pass its integrity check (MDC, AEAD tag).
	ErrDecrypt = errors.New("openpgp: decryption failed")
	// ErrTooLarge: the plaintext (after decompression) is larger than the
	// limit given.
	ErrTooLarge = errors.New("openpgp: plaintext too large")
)

// DecryptMIME decrypts the body of a multipart/encrypted entity (RFC 3156
// §4) whose Content-Type boundary parameter is boundary, with the secret
// keys of keys (decrypted, ready to use), and returns the plaintext: the
// inner MIME entity, exactly as encrypted. A plaintext longer than
// maxSize octets (a compressed packet may expand far beyond the
// ciphertext) is refused with ErrTooLarge before more is held.
//
// Only integrity-protected data (SEIPD v1 or v2, RFC 9580 §5.13) is
// decrypted; a signature inside the OpenPGP message (not PGP/MIME signed,
// which the plaintext carries as multipart/signed) is not checked here.
// DecryptMIME reads body to its end; bound it. It returns ErrMalformed
// for a body that is not RFC 3156 §4's, ErrNoKey, ErrDecrypt, ErrTooLarge,
// or body's error. It never panics: a panic in the OpenPGP library is
// returned as ErrMalformed.
func DecryptMIME(body io.Reader, boundary string, keys pgp.EntityList, maxSize int64) (plaintext []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			plaintext, err = nil, malformed("openpgp library panic: %v", r)
		}
	}()
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("openpgp: read body: %w", err)
	}
	armored, err := dataPart(raw, boundary)
	if err != nil {
		return nil, err
	}
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		return nil, malformed("armor: %v", err)
	}
	if block.Type != "PGP MESSAGE" { // RFC 9580 §6.2
		return nil, malformed("armor type %q", block.Type)
	}
	// The default configuration: unauthenticated (SED) data is refused.
	md, err := pgp.ReadMessage(block.Body, keys, nil, &packet.Config{})
	if err != nil {
		switch {
		case errors.Is(err, pgperrors.ErrKeyIncorrect):
			return nil, ErrNoKey
		case isDecryptError(err):
			return nil, fmt.Errorf("%w", ErrDecrypt)
		}
		return nil, malformed("%v", err)
	}
	if !md.IsEncrypted || md.DecryptedWith.PrivateKey == nil {
		return nil, malformed("not an encrypted message")
	}
	var out bytes.Buffer
	n, err := io.Copy(&out, io.LimitReader(md.UnverifiedBody, maxSize+1))
	if err != nil {
		// The MDC or AEAD tag is checked as the data ends (RFC 9580
		// §5.13.1, §5.13.2): nothing read is returned.
		return nil, ErrDecrypt
	}
	if n > maxSize {
		return nil, fmt.Errorf("%w: over %d octets", ErrTooLarge, maxSize)
	}
	// Drain to the end so that the integrity check runs: the limit may
	// have stopped exactly at maxSize before EOF was seen.
	if k, err := io.Copy(io.Discard, io.LimitReader(md.UnverifiedBody, 1)); err != nil {
		return nil, ErrDecrypt
	} else if k > 0 {
		return nil, fmt.Errorf("%w: over %d octets", ErrTooLarge, maxSize)
	}
	return out.Bytes(), nil
}

// isDecryptError reports whether err from ReadMessage means the session
// key or the data did not decrypt, rather than a malformed message.
func isDecryptError(err error) bool {
	var se pgperrors.SignatureError
	var ke pgperrors.KeyInvalidError
	return errors.As(err, &se) || errors.As(err, &ke) || errors.Is(err, pgperrors.ErrMDCHashMismatch) || errors.Is(err, pgperrors.ErrMDCMissing) ||
		errors.Is(err, pgperrors.ErrAEADTagVerification)
}

// dataPart returns the body of the second body part of an RFC 3156 §4
// multipart/encrypted body, after checking both parts' types and the
// version part's "Version: 1".
func dataPart(raw []byte, boundary string) ([]byte, error) {
	parts, closed, err := mimeentity.SplitMultipart(raw, boundary)
	if err != nil {
		return nil, malformed("%v", err)
	}
	if !closed || len(parts) != 2 {
		return nil, malformed("%d body parts (closed %v), want 2", len(parts), closed)
	}
	vh, vb, err := splitPart(parts[0])
	if err != nil {
		return nil, err
	}
	if mt, _, err := mime.ParseMediaType(vh.Get("Content-Type")); err != nil || mt != "application/pgp-encrypted" {
		return nil, malformed("first body part is not application/pgp-encrypted")
	}
	if !bytes.Contains(vb, []byte("Version: 1")) { // RFC 3156 §4
		return nil, malformed("version part without Version: 1")
	}
	dh, db, err := splitPart(parts[1])
	if err != nil {
		return nil, err
	}
	if mt, _, err := mime.ParseMediaType(dh.Get("Content-Type")); err != nil || mt != "application/octet-stream" {
		return nil, malformed("second body part is not application/octet-stream")
	}
	return db, nil
}

// splitPart reads a body part's header (at most maxHeader octets) and
// returns it and the body.
func splitPart(p []byte) (textproto.MIMEHeader, []byte, error) {
	end := headerEnd(p)
	if end < 0 || end > maxHeader {
		return nil, nil, malformed("body part header over %d octets or unterminated", maxHeader)
	}
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(p[:end]))).ReadMIMEHeader()
	if err != nil {
		return nil, nil, malformed("body part header: %v", err)
	}
	return h, p[end:], nil
}

// headerEnd returns the offset just past the empty line that ends the
// header section at the start of p (RFC 5322 §2.1), CRLF or bare LF; -1
// when there is none.
func headerEnd(p []byte) int {
	switch {
	case bytes.HasPrefix(p, []byte("\r\n")):
		return 2
	case bytes.HasPrefix(p, []byte("\n")):
		return 1
	}
	for i := 0; i < len(p); {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case bytes.HasPrefix(p[i:], []byte("\r\n")):
			return i + 2
		case bytes.HasPrefix(p[i:], []byte("\n")):
			return i + 1
		}
	}
	return -1
}
