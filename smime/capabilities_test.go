package smime

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"testing"
)

func TestAutoCipher(t *testing.T) {
	gcm256, gcm128, cbc256 := oidAES256GCM(), oidAES128GCM(), oidAES256CBC()
	oaep := oidRSAESOAEP()
	caps := func(o ...asn1.ObjectIdentifier) []asn1.ObjectIdentifier { return o }
	tests := []struct {
		name    string
		readers [][]asn1.ObjectIdentifier
		want    Cipher
	}{
		{"no readers", nil, AES256CBC},
		{"nothing known", [][]asn1.ObjectIdentifier{nil}, AES256CBC},
		{"openssl's default announcement", [][]asn1.ObjectIdentifier{caps(cbc256, aesOID(22), aesOID(2))}, AES256CBC},
		{"aes256-gcm", [][]asn1.ObjectIdentifier{caps(gcm256, gcm128, cbc256)}, AES256GCM},
		{"aes128-gcm only", [][]asn1.ObjectIdentifier{caps(gcm128, cbc256)}, AES128GCM},
		{"both readers 256", [][]asn1.ObjectIdentifier{caps(gcm256, oaep), caps(cbc256, gcm256)}, AES256GCM},
		{"strongest all announce", [][]asn1.ObjectIdentifier{caps(gcm256, gcm128), caps(gcm128)}, AES128GCM},
		{"one reader without GCM", [][]asn1.ObjectIdentifier{caps(gcm256, gcm128), caps(cbc256)}, AES256CBC},
		{"one reader unknown", [][]asn1.ObjectIdentifier{caps(gcm256), nil}, AES256CBC},
	}
	for _, tc := range tests {
		if got := AutoCipher(tc.readers); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if !AnnouncesOAEP(caps(cbc256, oaep)) || AnnouncesOAEP(caps(cbc256)) || AnnouncesOAEP(nil) {
		t.Error("AnnouncesOAEP")
	}
	if c, err := ParseCipher("Auto"); err != nil || c != CipherAuto || c.String() != "auto" {
		t.Errorf("ParseCipher(auto) = %v, %v", c, err)
	}
	var out bytes.Buffer
	k := testKeys(t, "rsa", 1)[0]
	if err := Encrypt(&out, bytes.NewReader([]byte("x")), 1, kindCerts([]kindKey{k}), Options{Cipher: CipherAuto}); !errors.Is(err, ErrUnsupportedCipher) {
		t.Errorf("Encrypt with CipherAuto: %v", err)
	}
}

// TestRSAOAEPFor: OAEP for the RSA recipient RSAOAEPFor names, v1.5 for
// the other, in one envelope both can decrypt.
func TestRSAOAEPFor(t *testing.T) {
	ks := testKeys(t, "rsa", 2)
	pt := []byte("for two readers\r\n")
	oaepOID, _ := asn1.Marshal(oidRSAESOAEP())
	der := encryptFor(t, pt, ks, Options{Cipher: AES256GCM, RSAOAEP: true,
		RSAOAEPFor: func(c *x509.Certificate) bool { return c.Equal(ks[0].Cert) }})
	if n := bytes.Count(der, oaepOID); n != 1 {
		t.Errorf("%d OAEP key transports, want 1", n)
	}
	for i, k := range ks {
		got, err := Decrypt(der, k.Key, k.Cert)
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("recipient %d: %q %v", i, got, err)
		}
	}
}
