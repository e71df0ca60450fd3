package smime

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// keyKinds are the recipient key types Encrypt supports.
var keyKinds = []string{"rsa", "p256", "p384", "p521"}

// kindKey is a recipient of any key type: a certificate with a
// SubjectKeyIdentifier, and its private key.
type kindKey struct {
	Kind string
	Cert *x509.Certificate
	Key  crypto.Signer
}

var (
	kindMu   sync.Mutex
	kindPool = map[string][]kindKey{}
)

// testKeys returns n recipients of kind ("rsa", "p256", "p384", "p521"),
// generated once per test binary. RSA recipients reuse the keys of
// testRecipients under new certificates.
func testKeys(tb testing.TB, kind string, n int) []kindKey {
	tb.Helper()
	var rsaPool []testRecipient
	if kind == "rsa" {
		rsaPool = testRecipients(tb, 4)
	}
	kindMu.Lock()
	defer kindMu.Unlock()
	for i := len(kindPool[kind]); i < n; i++ {
		var key crypto.Signer
		var err error
		switch kind {
		case "rsa":
			if i >= len(rsaPool) {
				tb.Fatalf("testKeys: only %d RSA keys", len(rsaPool))
			}
			key = rsaPool[i].Key
		case "p256":
			key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case "p384":
			key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		case "p521":
			key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		default:
			tb.Fatalf("testKeys: unknown kind %q", kind)
		}
		if err != nil {
			tb.Fatal(err)
		}
		cert, err := kindCert(fmt.Sprintf("%s-%d@example.test", kind, i), big.NewInt(int64(1000+i)), key, true)
		if err != nil {
			tb.Fatal(err)
		}
		kindPool[kind] = append(kindPool[kind], kindKey{kind, cert, key})
	}
	return kindPool[kind][:n]
}

// kindCert makes a self-signed S/MIME certificate for key, with a
// SubjectKeyIdentifier (RFC 5280 §4.2.1.2 method 1) when ski is set.
func kindCert(email string, serial *big.Int, key crypto.Signer, ski bool) (*x509.Certificate, error) {
	usage := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement
	if _, ok := key.Public().(*ecdsa.PublicKey); !ok {
		usage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: email, Organization: []string{"danemilter test"}},
		EmailAddresses: []string{email},
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(24 * time.Hour),
		KeyUsage:       usage,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	if ski {
		spki, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return nil, err
		}
		sum := sha1.Sum(spki)
		tmpl.SubjectKeyId = sum[:]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func kindCerts(ks []kindKey) []*x509.Certificate {
	certs := make([]*x509.Certificate, len(ks))
	for i, k := range ks {
		certs[i] = k.Cert
	}
	return certs
}

// writeKeyPEM writes a certificate and its PKCS #8 key to dir under name
// and returns their paths.
func writeKeyPEM(tb testing.TB, dir, name string, cert *x509.Certificate, key crypto.PrivateKey) (certPath, keyPath string) {
	tb.Helper()
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certPath = filepath.Join(dir, name+"-cert.pem")
	keyPath = filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return certPath, keyPath
}
