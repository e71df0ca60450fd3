package dane

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/smime"
)

// BenchmarkMessageRecipients is the per-message work of the milter for one
// 10 KB message to n keyed recipients whose SMIMEA answers are cached: a
// cached lookup and Select per recipient, then one EncryptBase64 to all
// their certificates. The ratio of recipients=100 to recipients=1 is what
// issue 10 item 4 bounds. Keys: "rsa" takes two RSA-2048 keys in turn,
// "p256" one P-256 key (each certificate is a different one; each
// recipient costs one RSA encryption or one ECDH however its key is
// shared). "select" leaves the encryption out.
func BenchmarkMessageRecipients(b *testing.B) {
	msg := make([]byte, 10_000)
	if _, err := rand.Read(msg); err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{"rsa", "p256", "select"} {
		for _, n := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/recipients=%d", kind, n), func(b *testing.B) {
				var fake Fake
				addrs := make([]string, n)
				names := make([]string, n)
				for i := range addrs {
					addrs[i] = fmt.Sprintf("user%d@example.com", i)
					key := "p256"
					if kind != "p256" {
						key = []string{"rsa2048", "rsa2048b"}[i%2]
					}
					der := makeCert(b, certSpec{key: key, emails: []string{addrs[i]}})
					names[i], _ = SMIMEAName(addrs[i], false)
					fake.Set(names[i], dns.TypeSMIMEA, Result{Status: StatusSecure, TTL: time.Hour,
						Records: []dns.RR{smimea(UsageDANEEE, SelectorCert, MatchingFull, hex.EncodeToString(der))}})
				}
				cache := NewCache(&fake, CacheOptions{})
				sel := &Selector{}
				ctx := context.Background()
				r := bytes.NewReader(msg)
				b.ReportAllocs()
				for b.Loop() {
					certs := make([]*x509.Certificate, 0, n)
					for i, addr := range addrs {
						res := cache.Lookup(ctx, names[i], dns.TypeSMIMEA)
						keys, rejected := sel.Select(addr, res.Records, testNow)
						if len(keys) != 1 {
							b.Fatalf("%s: %d keys, %v", addr, len(keys), rejected)
						}
						certs = append(certs, keys[0].Cert)
					}
					if kind == "select" {
						continue
					}
					r.Reset(msg)
					if err := smime.EncryptBase64(io.Discard, r, int64(len(msg)), certs, smime.Options{Cipher: smime.AES256GCM}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
