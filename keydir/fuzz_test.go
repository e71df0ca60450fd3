package keydir

import "testing"

// FuzzParse feeds the key-file parsers garbage PEM and armor: they must
// return an error or a key, never panic.
func FuzzParse(f *testing.F) {
	s, e := fixtures(&testing.T{})
	if b, err := encodeSMIME(s); err == nil {
		f.Add(b)
	}
	if b, err := encodeOpenPGP(e); err == nil {
		f.Add(b)
	}
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxcA\n=AAAA\n-----END PGP PRIVATE KEY BLOCK-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParseSMIME(b); err == nil && (k.Cert == nil || k.Key == nil) {
			t.Fatal("ParseSMIME: no error and no key")
		}
		if e, err := ParseOpenPGP(b); err == nil && (e == nil || e.PrivateKey == nil) {
			t.Fatal("ParseOpenPGP: no error and no secret key")
		}
		_, _ = ImportGPG(b, []byte("x"), "a@example.com")
	})
}
