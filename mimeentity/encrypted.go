package mimeentity

import (
	"mime"
	"strings"
)

// IsEncrypted reports whether a message whose Content-Type header field has
// the value contentType is labelled as already encrypted. The label alone
// proves nothing: smime.ParseEnvelopeBase64 (and openpgp.ParseMIME) read the
// body and tell whom it is encrypted for. Labelled are:
//
//   - multipart/encrypted (RFC 1847 §2.2; PGP/MIME, RFC 3156 §4, uses it);
//   - application/pkcs7-mime or application/x-pkcs7-mime (RFC 8551 §3.2;
//     the x- form is what older agents send) with smime-type enveloped-data
//     (RFC 8551 §3.2.2) or authEnveloped-data (RFC 8551 §3.2.2, RFC 5083);
//   - application/pkcs7-mime or application/x-pkcs7-mime without any
//     smime-type parameter whose name parameter ends in ".p7m": RFC 8551
//     §3.2.1 leaves such an entity ambiguous between enveloped and signed
//     data, and IsEncrypted errs on the side of leaving it alone.
//
// Signed-data, compressed-data and certs-only entities are not encrypted.
// Media types, parameter names and smime-type values compare
// case-insensitively (RFC 2045 §5.1); folding whitespace, quoted values and
// RFC 2231 parameter continuations are understood. A value that
// mime.ParseMediaType rejects is judged by a plain look at its text (the
// media type up to the first ';', whitespace or comment, and the words
// "enveloped-data", "smime-type" and ".p7m"). IsEncrypted never panics.
func IsEncrypted(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return isEncryptedText(contentType)
	}
	switch mt {
	case "multipart/encrypted": // RFC 1847 §2.2
		return true
	case "application/pkcs7-mime", "application/x-pkcs7-mime": // RFC 8551 §3.2
		st, ok := params["smime-type"]
		if !ok {
			// RFC 8551 §3.2.1: enveloped (or opaque-signed) data is named
			// *.p7m; certs-only *.p7c and compressed *.p7z do not match.
			return strings.HasSuffix(strings.ToLower(strings.TrimSpace(params["name"])), ".p7m")
		}
		st = strings.TrimSpace(st)
		// RFC 8551 §3.2.2: smime-type values; case-insensitive.
		return strings.EqualFold(st, "enveloped-data") || strings.EqualFold(st, "authEnveloped-data")
	}
	return false
}

// isEncryptedText is IsEncrypted's fallback for values that
// mime.ParseMediaType rejects (duplicate parameters, comments, broken
// quoting): it applies the same rules to the lowercased text.
func isEncryptedText(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	end := strings.IndexAny(v, "; \t\r\n(")
	if end < 0 {
		end = len(v)
	}
	switch v[:end] {
	case "multipart/encrypted":
		return true
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		rest := v[end:]
		switch {
		case strings.Contains(rest, "enveloped-data"): // also authenveloped-data
			return true
		case strings.Contains(rest, "smime-type"):
			return false
		default:
			return strings.Contains(rest, ".p7m")
		}
	}
	return false
}

// ByteStats counts the octets written to it, to tell ciphertext from text
// (see [ByteStats.Random]): the body of an entity labelled encrypted must
// hold ciphertext, not a label around plaintext. The zero value is ready
// to use.
type ByteStats struct {
	n     int64
	count [256]int64
}

// Write counts p; it never fails.
func (b *ByteStats) Write(p []byte) (int, error) {
	for _, c := range p {
		b.count[c]++
	}
	b.n += int64(len(p))
	return len(p), nil
}

// Len returns how many octets were written.
func (b *ByteStats) Len() int64 { return b.n }

// Random reports whether the octets could be ciphertext. Ciphertext is
// indistinguishable from uniformly random octets, of which 98 in 256 (38%)
// are printable ASCII, tab, CR or LF; text is nearly all of them. Fewer
// than 16 octets are not judged. From 16 octets on, 90% printable is
// refused: for random octets the chance is about 10^-5 at 16 octets (the
// least AES-CBC gives, for an empty content, which no MIME entity is),
// below 10^-9 from 32 on, and vanishes as the length grows. From 4096
// octets on, a chi-square test over the 256 octet values also refuses
// skewed distributions that are not text (compressed-looking, UTF-16): the
// threshold, 526 with 255 degrees of freedom, lies about 9 standard
// deviations (Wilson-Hilferty) above what random octets give.
func (b *ByteStats) Random() bool {
	if b.n < 16 {
		return true
	}
	printable := b.count['\t'] + b.count['\r'] + b.count['\n']
	for c := 0x20; c < 0x7f; c++ {
		printable += b.count[c]
	}
	if printable*10 >= b.n*9 {
		return false
	}
	if b.n < 4096 {
		return true
	}
	e := float64(b.n) / 256
	chi2 := 0.0
	for _, c := range b.count {
		d := float64(c) - e
		chi2 += d * d / e
	}
	return chi2 < 526
}
