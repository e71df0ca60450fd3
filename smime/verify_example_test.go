package smime

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"math/big"
	"testing"
)

// ExampleVerifyEntity verifies a clear-signed (multipart/signed) message:
// one result per signer, with its certificate, algorithms and reason.
func ExampleVerifyEntity() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, _ := kindCert("alice@example.test", big.NewInt(1), key, true)
	content := []byte("Content-Type: text/plain\r\n\r\nHello.\r\n")
	msg := detachedMessage(content, buildSignedData(&testing.T{}, content, cert, key, buildOpts{detached: true}))

	v, err := VerifyEntity(msg)
	if err != nil {
		fmt.Println("not verified:", err)
		return
	}
	for _, s := range v.Signers {
		fmt.Println(v.Form, s.Status, s.Signature, s.Digest, s.Certificate.EmailAddresses, s.SigningTime.Format("2006-01-02"), s.Err)
	}
	fmt.Println("valid:", v.Valid())
	// Output:
	// detached valid ecdsa SHA-256 [alice@example.test] 2026-12-02 <nil>
	// valid: true
}
