package smime

import (
	"mime"
	"strings"
)

// IsEntityHeader reports whether the header field called name belongs to the
// MIME entity and so moves inside the encryption: every Content-* field,
// compared case-insensitively (RFC 2045 §9, RFC 8551 §3.1). MIME-Version and
// the RFC 5322 fields (From, To, Subject, ...) stay in the outer header.
func IsEntityHeader(name string) bool {
	const prefix = "content-"
	return len(name) > len(prefix) && strings.EqualFold(name[:len(prefix)], prefix)
}

// Field is one header field; Value carries no leading space.
type Field struct{ Name, Value string }

// OuterFieldsFor returns the header fields of the application/pkcs7-mime
// entity that replaces an entity encrypted with c (RFC 8551 §3.3), in the
// order they should appear. The body that goes with them is what
// [EncryptBase64] writes with Options.Cipher c. The smime-type parameter
// (RFC 8551 §3.2.2) is authEnveloped-data for the GCM ciphers, whose output
// is an AuthEnvelopedData, and enveloped-data otherwise. Each call returns
// a new slice that the caller may modify.
func OuterFieldsFor(c Cipher) []Field {
	smimeType := "enveloped-data"
	if c.authenticated() {
		smimeType = "authEnveloped-data"
	}
	return []Field{
		// RFC 8551 §3.2.2: smime-type; §3.2.1: the name parameter and the
		// .p7m extension (used for both), for agents that look no further.
		{"Content-Type", `application/pkcs7-mime; smime-type=` + smimeType + `; name="smime.p7m"`},
		{"Content-Transfer-Encoding", "base64"},                     // RFC 8551 §3.3, §3.1.2: DER is binary
		{"Content-Disposition", `attachment; filename="smime.p7m"`}, // RFC 8551 §3.2.1, RFC 2183
		{"Content-Description", "S/MIME Encrypted Message"},
	}
}

// IsEncrypted reports whether a message whose Content-Type header field has
// the value contentType is labelled as already encrypted. The label alone
// proves nothing: [ParseEnvelopeBase64] (and openpgp.ParseMIME) read the
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
