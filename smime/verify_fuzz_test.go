package smime

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"math/big"
	"testing"
)

// FuzzVerifyEntity: VerifyEntity never panics, returns only its documented
// errors, and a result always has a reason for each signer it does not
// pass; a Valid result is Verified.
func FuzzVerifyEntity(f *testing.F) {
	k := testKeys(f, "p256", 1)[0]
	r := testKeys(f, "rsa", 1)[0]
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	edCert, err := kindCert("ed@example.test", big.NewInt(9), ed, true)
	if err != nil {
		f.Fatal(err)
	}
	content := []byte(signContent)
	for _, o := range []buildOpts{{}, {detached: true}, {ski: true}, {noAttrs: true}} {
		der := buildSignedData(f, content, k.Cert, k.Key, o)
		if o.detached {
			f.Add(detachedMessage(content, der))
		} else {
			f.Add(opaqueMessage(der))
			f.Add(opaqueMessage(toBER(f, der, 30)))
		}
	}
	f.Add(opaqueMessage(buildSignedData(f, content, r.Cert, r.Key, buildOpts{})))
	f.Add(detachedMessage(content, buildSignedData(f, content, edCert, ed, buildOpts{detached: true})))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=c\r\n\r\n--c\r\n\r\nx\r\n--c\r\n\r\n--c--\r\n--b--\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := VerifyEntity(data)
		if err != nil {
			if v != nil {
				t.Fatal("a result with an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotSigned) && !errors.Is(err, ErrUnsupportedAlgorithm) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		for _, s := range v.Signers {
			if (s.Status == StatusValid) != (s.Err == nil) {
				t.Fatalf("status %v with error %v", s.Status, s.Err)
			}
			if s.Status == StatusValid && s.CertificateDER == nil {
				t.Fatal("valid without a signer certificate")
			}
		}
		if v.Valid() && !v.Verified() {
			t.Fatal("valid but not verified")
		}
	})
}

// FuzzVerifySignedData: the CMS parser under VerifyEntity, fed DER and BER
// directly (base64 hides structure from the fuzzer).
func FuzzVerifySignedData(f *testing.F) {
	k := testKeys(f, "p256", 1)[0]
	content := []byte(signContent)
	for _, o := range []buildOpts{{}, {ski: true}, {noAttrs: true}} {
		der := buildSignedData(f, content, k.Cert, k.Key, o)
		f.Add(der, false)
		f.Add(toBER(f, der, 30), false)
	}
	f.Add(buildSignedData(f, content, k.Cert, k.Key, buildOpts{detached: true}), true)
	f.Fuzz(func(t *testing.T, der []byte, detached bool) {
		var c []byte
		if detached {
			c = content
		}
		v, err := VerifySignedData(der, c)
		if err != nil {
			if v != nil || (!errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotSigned) && !errors.Is(err, ErrUnsupportedAlgorithm)) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		for _, s := range v.Signers {
			if (s.Status == StatusValid) != (s.Err == nil) {
				t.Fatalf("status %v with error %v", s.Status, s.Err)
			}
		}
	})
}
