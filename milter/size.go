package milter

// Encryption makes a message about 37 % larger (base64 of the ciphertext:
// 78 bytes of lines per 57 bytes for S/MIME, 66 per 48 for PGP/MIME's
// armor). The MTA stores the encrypted copy in its queue file, and Postfix's
// cleanup refuses a queue file larger than message_size_limit ("552 5.3.4
// Error: message file too big", after the milter has already re-injected
// the other copies of a split message). So before anything leaves, every
// encrypted copy's size is bounded from above and compared with
// MaxEncryptedSize, and a message whose copy would not fit is refused with
// 552 5.3.4 at once: explicit, permanent (a retry cannot help), and no copy
// of a split message goes out.

// Slack for the parts of an encrypted body that do not grow with the
// message: one RecipientInfo or PKESK per key (an RSA-8192 key's wrapped key
// and an issuer name fit in 4 KiB), and the CMS or OpenPGP framing and MIME
// wrapper around the ciphertext.
const (
	perKeyBound = 4 << 10
	fixedBound  = 8 << 10
)

// DefaultMaxEncryptedSize is Postfix's default message_size_limit.
const DefaultMaxEncryptedSize = 10_240_000

// encryptedBodyBound is an upper bound of the size of the body of the
// encrypted entity that format f makes of an entity of size bytes for keys
// keys; extra counts what header protection copies into the entity.
func encryptedBodyBound(f Format, size int64, keys int, extra int64) int64 {
	if f == FormatOpenPGP {
		// Partial-length packet headers (RFC 9580 §4.2.1.4) or AEAD tags
		// (16 bytes per chunk of at least 4 KiB) add less than 1/256.
		bin := size + extra + size/256 + fixedBound + int64(keys)*perKeyBound
		// ASCII armor (RFC 9580 §6.2): 64 characters and CRLF per 48
		// bytes, plus the header, checksum and MIME parts.
		return (bin+47)/48*66 + fixedBound
	}
	// CMS (RFC 5652 §6.1): the content padded to the block (CBC) or followed
	// by the tag (GCM), in base64 lines of 76 characters and CRLF.
	der := size + 16 + fixedBound + int64(keys)*perKeyBound
	return (der + 56) / 57 * 78
}

// tooBigOnceEncrypted reports whether the queue file of the encrypted
// copy g could pass MaxEncryptedSize, with the bound of its size; over is
// false when it fits or the check is off.
func (h *handler) tooBigOnceEncrypted(g group, entitySize int64) (bound int64, over bool) {
	limit := h.opts.MaxEncryptedSize
	if limit < 0 || g.plain {
		return 0, false
	}
	// The queue file also holds the envelope: a record per recipient
	// (and its original form) and some attributes.
	envelope := int64(1024)
	for _, r := range h.rcpts {
		envelope += 2*int64(len(r.addr)) + 32
	}
	keys := 0
	for _, e := range g.rcpts {
		if g.format == FormatOpenPGP {
			keys += len(pgpKeys(e))
		} else {
			keys += len(e.SMIMEA.Usable())
		}
	}
	var extra int64
	if g.format == FormatOpenPGP && h.opts.ProtectHeaders {
		extra = h.headerBytes
	}
	b := h.headerBytes + envelope + encryptedBodyBound(g.format, entitySize, keys, extra)
	return b, b > limit
}
