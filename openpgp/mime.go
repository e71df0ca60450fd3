package openpgp

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/danemilter/danemilter/mimeentity"
)

// Field is one header field; Value carries no leading space. It is
// [mimeentity.Field], the same type as smime.Field.
type Field = mimeentity.Field

// boundaryPrefix starts every boundary NewBoundary makes. Its "_" never
// occurs in ASCII armor (RFC 9580 §6.2: base64 lines, "=" checksum, and
// "-----BEGIN PGP MESSAGE-----" lines), so no line of the armored body can
// be mistaken for a delimiter.
const boundaryPrefix = "=_danemilter_"

// NewBoundary returns a fresh multipart boundary: "=_danemilter_" and 24
// hex digits (96 bits) read from rnd, or crypto/rand when rnd is nil. It
// returns the error of rnd.
func NewBoundary(rnd io.Reader) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var b [12]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return "", fmt.Errorf("openpgp: boundary: %w", err)
	}
	return boundaryPrefix + hex.EncodeToString(b[:]), nil
}

// CheckBoundary returns nil when b may delimit the parts EncryptMIME
// writes, and otherwise an error wrapping ErrBadBoundary. b must be 1 to 70
// characters of the bchars set, not ending in a space (RFC 2046 §5.1.1),
// and hold at least one of ' ( ) _ , . : ?, which ASCII armor never
// contains, so that the armored text cannot hold a delimiter line (RFC 2046
// §5.1.1 leaves that guarantee to the sender).
func CheckBoundary(b string) error {
	if len(b) == 0 || len(b) > 70 {
		return fmt.Errorf("%w: %q must be 1 to 70 characters (RFC 2046 §5.1.1)", ErrBadBoundary, b)
	}
	if b[len(b)-1] == ' ' {
		return fmt.Errorf("%w: %q ends in a space (RFC 2046 §5.1.1)", ErrBadBoundary, b)
	}
	safe := false
	for _, c := range []byte(b) {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z',
			c == '+', c == '-', c == '/', c == '=', c == ' ':
		case strings.IndexByte("'()_,.:?", c) >= 0:
			safe = true
		default:
			return fmt.Errorf("%w: %q has a character outside bchars (RFC 2046 §5.1.1)", ErrBadBoundary, b)
		}
	}
	if !safe {
		return fmt.Errorf("%w: %q holds only characters that ASCII armor may contain; add one of ' ( ) _ , . : ?", ErrBadBoundary, b)
	}
	return nil
}

// OuterFields returns the header fields of the multipart/encrypted entity
// that replaces an encrypted entity (RFC 3156 §4, RFC 1847 §2.2), for the
// given boundary: one Content-Type field. The caller removes the original
// Content-* fields (mimeentity.IsEntityField tells them), keeps or adds
// "MIME-Version: 1.0", and adds these. The body that goes with them is what
// [EncryptMIME] writes with the same boundary. Each call returns a new slice
// that the caller may modify. The boundary is not checked here; EncryptMIME
// checks it.
func OuterFields(boundary string) []Field {
	return []Field{
		// RFC 3156 §4: the protocol parameter MUST be
		// "application/pgp-encrypted"; RFC 2046 §5.1.1: boundary. The
		// boundary holds "=", a tspecial, so it is quoted (RFC 2045 §5.1).
		{Name: "Content-Type", Value: `multipart/encrypted; protocol="application/pgp-encrypted"; boundary="` + boundary + `"`},
	}
}

// ObscuredSubject is the Subject to put in the outer header when header
// protection carries the real one inside the encryption (Options.Protect):
// the placeholder of RFC 9788's baseline header confidentiality policy,
// "hcp_baseline". (Older
// implementations, Enigmail and Thunderbird before RFC 9788, wrote "...";
// receivers that understand header protection show the inner Subject
// whatever the placeholder.)
const ObscuredSubject = "[...]"

// protectedNames are the user-facing header fields that header protection
// copies inside (the "user-facing" fields of RFC 9788); trace and
// transport fields (Received, DKIM-Signature, Return-Path, ...) and Bcc stay
// out.
var protectedNames = []string{
	"Subject", "From", "Sender", "Reply-To", "To", "Cc", "Date",
	"Message-ID", "In-Reply-To", "References", "Keywords", "Comments",
}

// protectedName returns the canonical spelling of name when it is a
// user-facing field header protection copies, or "".
func protectedName(name string) string {
	for _, n := range protectedNames {
		if strings.EqualFold(n, name) {
			return n
		}
	}
	return ""
}
