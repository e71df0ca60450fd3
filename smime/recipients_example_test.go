package smime_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"math/big"
	"strings"
	"time"

	"github.com/danemilter/danemilter/smime"
)

// A gateway lets a body labelled encrypted pass only when it is a complete
// envelope that includes the recipient's certificate; a label around
// plaintext is not.
func ExampleParseEnvelopeBase64() {
	cert := func(n int64) *x509.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			log.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: "bob@example.org"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			log.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	bob, other := cert(1), cert(2)
	entity := []byte("Content-Type: text/plain\r\n\r\nHello Bob\r\n")
	var body bytes.Buffer
	if err := smime.EncryptBase64(&body, bytes.NewReader(entity), int64(len(entity)), []*x509.Certificate{bob}, smime.Options{}); err != nil {
		log.Fatal(err)
	}
	env, err := smime.ParseEnvelopeBase64(&body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("for bob:", env.Includes(bob), "for the other:", env.Includes(other))

	// The label of issue 9: a SEQUENCE header, the envelopedData OID, text.
	fake := append([]byte{0x30, 0x82, 0x00, 0x32, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}, "Hello Bob"...)
	_, err = smime.ParseEnvelopeBase64(strings.NewReader(base64.StdEncoding.EncodeToString(fake)))
	fmt.Println("fake:", errors.Is(err, smime.ErrMalformed))
	// Output:
	// for bob: true for the other: false
	// fake: true
}
