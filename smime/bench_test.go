package smime

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// benchRecipients returns n certificates, reusing the generated RSA keys
// (Encrypt does one RSA operation per certificate, whoever owns it).
func benchRecipients(b *testing.B, n int) []*x509.Certificate {
	pool := testRecipients(b, 4)
	certs := make([]*x509.Certificate, n)
	for i := range certs {
		certs[i] = pool[i%len(pool)].Cert
	}
	return certs
}

var benchSizes = []struct {
	name string
	n    int
}{
	{"10KB", 10_000},
	{"1MB", 1_000_000},
	{"25MB", 25_000_000},
}

// benchCiphers are the ciphers the benchmarks compare: the default and its
// authenticated counterpart.
var benchCiphers = []Cipher{AES256CBC, AES256GCM}

// BenchmarkEncrypt measures EncryptBase64 (what the milter sends) and
// Encrypt (raw DER) from a bytes.Reader to io.Discard, for AES-256-CBC and
// AES-256-GCM.
func BenchmarkEncrypt(b *testing.B) {
	type encFunc func(io.Writer, io.Reader, int64, []*x509.Certificate, Options) error
	for _, fn := range []struct {
		name string
		f    encFunc
	}{{"EncryptBase64", EncryptBase64}, {"Encrypt", Encrypt}} {
		for _, c := range benchCiphers {
			for _, sz := range benchSizes {
				data := randomBytes(sz.n, 1)
				for _, n := range []int{1, 10} {
					b.Run(fmt.Sprintf("%s/%v/size=%s/recipients=%d", fn.name, c, sz.name, n), func(b *testing.B) {
						certs := benchRecipients(b, n)
						r := bytes.NewReader(data)
						b.SetBytes(int64(len(data)))
						b.ReportAllocs()
						for b.Loop() {
							r.Reset(data)
							if err := fn.f(io.Discard, r, int64(len(data)), certs, Options{Cipher: c}); err != nil {
								b.Fatal(err)
							}
						}
					})
				}
			}
		}
	}
}

// BenchmarkEncryptRecipient measures the cost of one recipient of each kind
// on a small (10 kB) message: RSA-2048 v1.5 and OAEP, ECDH on P-256, P-384
// and P-521.
func BenchmarkEncryptRecipient(b *testing.B) {
	data := randomBytes(10_000, 1)
	for _, m := range encKeyModes {
		b.Run(m.name, func(b *testing.B) {
			certs := kindCerts(testKeys(b, m.kind, 1))
			r := bytes.NewReader(data)
			for b.Loop() {
				r.Reset(data)
				if err := Encrypt(io.Discard, r, int64(len(data)), certs, Options{Cipher: AES256GCM, RSAOAEP: m.oaep}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecrypt measures Decrypt of a 1 MB message for each cipher.
func BenchmarkDecrypt(b *testing.B) {
	data := randomBytes(1_000_000, 1)
	k := testKeys(b, "p256", 1)[0]
	for _, c := range benchCiphers {
		b.Run(c.String(), func(b *testing.B) {
			der := encryptFor(b, data, []kindKey{k}, Options{Cipher: c})
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Decrypt(der, k.Key, k.Cert); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncryptMemory reports what encrypting 25 MB from a generator
// (not a buffer) allocates, and the rise of the live heap during the call.
func BenchmarkEncryptMemory(b *testing.B) {
	const size = 25_000_000
	for _, c := range benchCiphers {
		for _, b64 := range []bool{false, true} {
			b.Run(fmt.Sprintf("%v/base64=%v", c, b64), func(b *testing.B) {
				certs := benchRecipients(b, 10)
				b.SetBytes(size)
				var alloc, peak uint64
				for b.Loop() {
					a, p := measureEncrypt(b, size, certs, b64, c)
					alloc, peak = max(alloc, a), max(peak, p)
				}
				b.ReportMetric(float64(alloc)/1024, "KiB-alloc/op")
				b.ReportMetric(float64(peak)/1024, "KiB-peak-heap")
			})
		}
	}
}

// BenchmarkOpenSSLEncrypt25MB is the yardstick: the same 25 MB through
// `openssl cms -encrypt -aes256` and `-aes-256-gcm` to DER, process start
// included.
func BenchmarkOpenSSLEncrypt25MB(b *testing.B) {
	openssl := needOpenSSL(b)
	const size = 25_000_000
	dir := b.TempDir()
	in := filepath.Join(dir, "msg.bin")
	if err := os.WriteFile(in, randomBytes(size, 1), 0o600); err != nil {
		b.Fatal(err)
	}
	certPath, _ := writePEM(b, dir, 0, testRecipients(b, 1)[0])
	out := filepath.Join(dir, "msg.der")
	for _, c := range []struct{ name, flag string }{{"aes256-cbc", "-aes256"}, {"aes256-gcm", "-aes-256-gcm"}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				cmd := exec.Command(openssl, "cms", "-encrypt", c.flag, "-binary", "-outform", "DER", "-in", in, "-out", out, certPath)
				if o, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("openssl: %v\n%s", err, o)
				}
			}
		})
	}
}
