package smime

import "github.com/danemilter/danemilter/mimeentity"

// Field is one header field; Value carries no leading space. It is
// [mimeentity.Field], the same type as openpgp.Field.
type Field = mimeentity.Field

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
		{Name: "Content-Type", Value: `application/pkcs7-mime; smime-type=` + smimeType + `; name="smime.p7m"`},
		{Name: "Content-Transfer-Encoding", Value: "base64"},                     // RFC 8551 §3.3, §3.1.2: DER is binary
		{Name: "Content-Disposition", Value: `attachment; filename="smime.p7m"`}, // RFC 8551 §3.2.1, RFC 2183
		{Name: "Content-Description", Value: "S/MIME Encrypted Message"},
	}
}
