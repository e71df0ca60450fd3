package mimeentity

import (
	"strings"
	"testing"
)

func TestIsEntityField(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"Content-Type", true},
		{"content-type", true},
		{"CONTENT-TRANSFER-ENCODING", true},
		{"Content-Disposition", true},
		{"Content-Description", true},
		{"Content-ID", true},
		{"Content-Language", true},
		{"Content-X-Anything", true},
		{"MIME-Version", false}, // RFC 2045 §9: stays outside
		{"Subject", false},
		{"From", false},
		{"X-Content-Type", false},
		{"Content", false},
		{"Content-", false},
		{"Contents-Type", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsEntityField(tt.name); got != tt.want {
			t.Errorf("IsEntityField(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestIsEncrypted(t *testing.T) {
	tests := []struct {
		ct   string
		want bool
	}{
		// RFC 1847 multipart/encrypted (PGP/MIME and others).
		{`multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b1"`, true},
		{`Multipart/Encrypted; Protocol="application/pgp-encrypted"; Boundary=b1`, true},
		{"multipart/encrypted", true},
		{" multipart/encrypted;\r\n\tprotocol=\"application/pgp-encrypted\";\r\n boundary=\"x\"", true},
		{"multipart/encrypted;\n protocol=\"application/pgp-encrypted\"", true},
		// RFC 8551 §3.2.2 enveloped-data and authEnveloped-data.
		{`application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"`, true},
		{`application/pkcs7-mime; smime-type="enveloped-data"`, true},
		{`APPLICATION/PKCS7-MIME; SMIME-TYPE=ENVELOPED-DATA`, true},
		{`application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m`, true},
		{`application/pkcs7-mime; smime-type=authenveloped-data`, true},
		{`application/x-pkcs7-mime; smime-type=enveloped-data; name=smime.p7m`, true},
		{"application/pkcs7-mime;\r\n\tsmime-type=enveloped-data;\r\n\tname=\"smime.p7m\"", true},
		{"application/pkcs7-mime;\n smime-type=enveloped-data", true},
		// No smime-type: ambiguous, a .p7m name counts as encrypted.
		{`application/pkcs7-mime; name="smime.p7m"`, true},
		{`application/pkcs7-mime; name=SMIME.P7M`, true},
		{`application/x-pkcs7-mime; name="smime.p7m"`, true},
		{`application/pkcs7-mime; name="smime.p7c"`, false},
		{`application/pkcs7-mime; name="smime.p7z"`, false},
		{`application/pkcs7-mime`, false},
		// Not encrypted: signed, compressed, certificates.
		{`application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"`, false},
		{`application/x-pkcs7-mime; smime-type=signed-data; name=smime.p7m`, false},
		{`application/pkcs7-mime; smime-type=compressed-data; name=smime.p7z`, false},
		{`application/pkcs7-mime; smime-type=certs-only; name=smime.p7c`, false},
		{`multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=b`, false},
		{`application/pkcs7-signature; name=smime.p7s`, false},
		{`text/plain; charset=us-ascii`, false},
		{`multipart/mixed; boundary="encrypted"`, false},
		{`application/pgp-encrypted`, false}, // only the inner part of multipart/encrypted
		{`multipart/encryptedx`, false},
		{``, false},
		{`   `, false},
		{`;;;`, false},
		// Values mime.ParseMediaType rejects fall back to a look at the text.
		{`multipart/encrypted; boundary="unterminated`, true},
		{`multipart/encrypted (PGP); protocol="application/pgp-encrypted"`, true},
		{`application/pkcs7-mime; smime-type=enveloped-data; smime-type=enveloped-data`, true},
		{`application/pkcs7-mime (S/MIME); smime-type=enveloped-data`, true},
		{`application/pkcs7-mime; smime-type=signed-data; smime-type=signed-data`, false},
		{`application/pkcs7-mime; name="smime.p7m"; name="smime.p7m"`, true},
		{`application/pkcs7-mime; name="smime.p7z"; name="smime.p7z"`, false},
		{`text/plain; charset="unterminated`, false},
		{"\x00\xff", false},
	}
	for _, tt := range tests {
		if got := IsEncrypted(tt.ct); got != tt.want {
			t.Errorf("IsEncrypted(%q) = %v, want %v", tt.ct, got, tt.want)
		}
	}
}

func TestByteStats(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want bool
	}{
		{"empty", nil, true},
		{"short text", []byte("too short"), true},
		{"16 octets of text", []byte("password hunter2"), false},
		{"text", []byte(strings.Repeat("plain text, line after line\r\n", 10)), false},
		{"random 32", randomBytes(32, 1), true},
		{"random 16", randomBytes(16, 1), true},
		{"random 1 MiB", randomBytes(1<<20, 2), true},
		{"zeros", make([]byte, 8192), false},
		{"UTF-16 text", []byte(strings.Repeat("p\x00l\x00a\x00i\x00n\x00 \x00", 1000)), false},
		{"base64 text", []byte(strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", 100)), false},
	} {
		var st ByteStats
		st.Write(c.in)
		if st.Len() != int64(len(c.in)) {
			t.Errorf("%s: Len() = %d, want %d", c.name, st.Len(), len(c.in))
		}
		if got := st.Random(); got != c.want {
			t.Errorf("%s: Random() = %v, want %v", c.name, got, c.want)
		}
	}
	// Random octets pass at every length, written in any pieces.
	for n := 32; n < 9000; n = n*3/2 + 1 {
		for seed := range byte(20) {
			var st ByteStats
			data := randomBytes(n, seed)
			st.Write(data[:n/3])
			st.Write(data[n/3:])
			if !st.Random() {
				t.Errorf("random octets (n=%d, seed %d) refused", n, seed)
			}
		}
	}
}
