package smime

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkVerifyEntity: the cost of verifying a clear-signed message of
// 10 KB and 5 MB (RSA-2048, SHA-256), parsing and canonical form included.
func BenchmarkVerifyEntity(b *testing.B) {
	k := testKeys(b, "rsa", 1)[0]
	for _, size := range []int{10 << 10, 5 << 20} {
		line := "Signed text, seventy-odd characters wide, to be hashed once per verify.\r\n"
		content := []byte("Content-Type: text/plain\r\n\r\n" + string(bytes.Repeat([]byte(line), size/len(line))))
		msg := detachedMessage(content, buildSignedData(b, content, k.Cert, k.Key, buildOpts{detached: true}))
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				v, err := VerifyEntity(msg)
				if err != nil || !v.Valid() {
					b.Fatal(err, v)
				}
			}
		})
	}
}
