package smime

import "encoding/asn1"

// ContentEncryptionName names a content-encryption algorithm of an
// EnvelopedData or AuthEnvelopedData (Envelope.ContentEncryption) as
// trace headers and logs write it: "aes256-cbc", "aes192-cbc",
// "aes128-cbc", "aes256-gcm", "aes192-gcm", "aes128-gcm" (RFC 3565 §4.1,
// RFC 5084 §3.2), or "unknown".
func ContentEncryptionName(oid asn1.ObjectIdentifier) string {
	for _, c := range []struct {
		oid  asn1.ObjectIdentifier
		name string
	}{
		{oidAES256CBC(), "aes256-cbc"}, {oidAES192CBC(), "aes192-cbc"}, {oidAES128CBC(), "aes128-cbc"},
		{oidAES256GCM(), "aes256-gcm"}, {oidAES192GCM(), "aes192-gcm"}, {oidAES128GCM(), "aes128-gcm"},
	} {
		if oid.Equal(c.oid) {
			return c.name
		}
	}
	return "unknown"
}
