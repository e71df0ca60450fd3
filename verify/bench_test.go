package verify

import (
	"context"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
)

// BenchmarkVerify: a detached-signed S/MIME message (openssl cms -sign,
// ECDSA P-256, SHA-256) of 10 KB and 5 MB, verified and bound through a
// fake resolver (a cached answer costs no more).
func BenchmarkVerify(b *testing.B) {
	signer := newSMIMESigner(b, alice)
	f := &dane.Fake{}
	f.Set(smimeaName(b, alice), dns.TypeSMIMEA, smimeaFor(signer.cert, 3, 0, 0))
	v := newVerifier(f)
	for _, size := range []struct {
		name string
		n    int
	}{{"10KB", 10 << 10}, {"5MB", 5 << 20}} {
		line := strings.Repeat("0123456789abcdef", 4) + "\r\n" // 66 octets
		content := "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + strings.Repeat(line, size.n/len(line))
		msg := withHeader(alice, signer.sign(b, content, "sha256", false))
		b.Run(size.name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				r, err := v.Verify(context.Background(), msg)
				if err != nil || !r.Pass() {
					b.Fatalf("%v %s", err, r.Summary())
				}
			}
		})
	}
}
