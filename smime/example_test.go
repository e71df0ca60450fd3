package smime_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log"
	"math/big"
	"strings"
	"time"

	"github.com/danemilter/danemilter/smime"
)

func ExampleOuterFieldsFor_cbc() {
	for _, f := range smime.OuterFieldsFor(smime.AES256CBC) {
		fmt.Printf("%s: %s\n", f.Name, f.Value)
	}
	// Output:
	// Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"
	// Content-Transfer-Encoding: base64
	// Content-Disposition: attachment; filename="smime.p7m"
	// Content-Description: S/MIME Encrypted Message
}

// Encrypt a MIME entity for one recipient and wrap it as an RFC 8551 §3.3
// application/pkcs7-mime message. The recipient certificate would come from
// an SMIMEA record; here it is made on the spot.
func ExampleEncryptBase64() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "bob@example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		log.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		log.Fatal(err)
	}

	// The plaintext is the entity: its Content-* fields, an empty line and
	// its body, with CRLF line ends (RFC 8551 §3.1.1).
	entity := "Content-Type: text/plain; charset=us-ascii\r\n\r\nHello, Bob.\r\n"

	var msg bytes.Buffer
	msg.WriteString("From: alice@example.com\r\nTo: bob@example.org\r\nMIME-Version: 1.0\r\n")
	for _, f := range smime.OuterFieldsFor(smime.AES256CBC) {
		fmt.Fprintf(&msg, "%s: %s\r\n", f.Name, f.Value)
	}
	msg.WriteString("\r\n")
	err = smime.EncryptBase64(&msg, strings.NewReader(entity), int64(len(entity)),
		[]*x509.Certificate{cert}, smime.Options{Cipher: smime.AES256CBC})
	if err != nil {
		log.Fatal(err)
	}

	header, body, _ := strings.Cut(msg.String(), "\r\n\r\n")
	fmt.Println(strings.ReplaceAll(header, "\r\n", "\n"))
	lines := strings.Split(strings.TrimSuffix(body, "\r\n"), "\r\n")
	fmt.Println("base64 lines:", len(lines), "first line length:", len(lines[0]))
	// Output:
	// From: alice@example.com
	// To: bob@example.org
	// MIME-Version: 1.0
	// Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"
	// Content-Transfer-Encoding: base64
	// Content-Disposition: attachment; filename="smime.p7m"
	// Content-Description: S/MIME Encrypted Message
	// base64 lines: 8 first line length: 76
}

// The header fields depend on the cipher: AES-GCM output is an
// AuthEnvelopedData (RFC 8551 §3.2.2 smime-type authEnveloped-data).
func ExampleOuterFieldsFor() {
	c, err := smime.ParseCipher("aes256-gcm") // e.g. from the configuration file
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c)
	fmt.Println(smime.OuterFieldsFor(c)[0].Value)
	fmt.Println(smime.OuterFieldsFor(smime.AES256CBC)[0].Value)
	// Output:
	// aes256-gcm
	// application/pkcs7-mime; smime-type=authEnveloped-data; name="smime.p7m"
	// application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"
}

// Encrypt for an EC (P-256) and an RSA recipient at once with AES-256-GCM,
// RSA-OAEP and subject key identifiers, then let each recipient decrypt.
func ExampleDecrypt() {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	certFor := func(name string, serial int64, key crypto.Signer) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			SubjectKeyId: []byte(name), // normally a hash of the public key
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			log.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			log.Fatal(err)
		}
		return cert
	}
	ecCert := certFor("carol@example.org", 1, ecKey)
	rsaCert := certFor("dave@example.net", 2, rsaKey)

	entity := "Content-Type: text/plain; charset=us-ascii\r\n\r\nHello, Carol and Dave.\r\n"
	var der bytes.Buffer
	opts := smime.Options{Cipher: smime.AES256GCM, RSAOAEP: true, UseSKI: true}
	err = smime.Encrypt(&der, strings.NewReader(entity), int64(len(entity)), []*x509.Certificate{ecCert, rsaCert}, opts)
	if err != nil {
		log.Fatal(err)
	}

	for _, r := range []struct {
		key  crypto.PrivateKey
		cert *x509.Certificate
	}{{ecKey, ecCert}, {rsaKey, rsaCert}} {
		plain, err := smime.Decrypt(der.Bytes(), r.key, r.cert)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %q\n", r.cert.Subject.CommonName, strings.SplitN(string(plain), "\r\n", 3)[2])
	}
	// A stranger finds no RecipientInfo.
	_, err = smime.Decrypt(der.Bytes(), ecKey, certFor("eve@example.com", 3, ecKey))
	fmt.Println(errors.Is(err, smime.ErrNoRecipientInfo))
	// Output:
	// carol@example.org: "Hello, Carol and Dave.\r\n"
	// dave@example.net: "Hello, Carol and Dave.\r\n"
	// true
}
