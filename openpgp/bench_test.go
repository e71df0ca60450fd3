package openpgp

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
)

var benchSizes = []struct {
	name string
	n    int
}{
	{"1MB", 1_000_000},
	{"25MB", 25_000_000},
}

// BenchmarkEncryptMIME measures EncryptMIME (what the milter sends: the
// whole multipart/encrypted body with CRLF armor) for one recipient, from a
// bytes.Reader to io.Discard. The entity is shaped like a mail attachment
// (base64 text).
func BenchmarkEncryptMIME(b *testing.B) {
	for _, k := range []keyKind{kindRSA3072, kindCv25519} {
		key := newKey(b, k, alice, nil)
		for _, sz := range benchSizes {
			data := largeEntity(sz.n)[:sz.n]
			b.Run(fmt.Sprintf("key=%s/size=%s", k, sz.name), func(b *testing.B) {
				r := bytes.NewReader(data)
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					r.Reset(data)
					if _, err := EncryptMIME(io.Discard, r, []*pgp.Entity{key}, Options{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkGPGEncrypt1MB and BenchmarkGPGEncrypt25MB are the yardstick: the
// same entity through `gpg --encrypt --armor` to a file, process start
// included, with GnuPG's default compression and with compression off
// (-z 0, as EncryptMIME does).
func BenchmarkGPGEncrypt1MB(b *testing.B)  { benchGPG(b, 1_000_000) }
func BenchmarkGPGEncrypt25MB(b *testing.B) { benchGPG(b, 25_000_000) }

func benchGPG(b *testing.B, size int) {
	g := newGPG(b)
	fpr := g.genKey(b, "Bench <bench@x.test>", "future-default", "default")
	dir := b.TempDir()
	in := filepath.Join(dir, "entity")
	if err := os.WriteFile(in, largeEntity(size)[:size], 0o600); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "out.asc")
	for _, z := range []struct{ name, arg string }{{"compress=default", ""}, {"compress=none", "-z0"}} {
		b.Run(z.name, func(b *testing.B) {
			args := []string{"--batch", "--yes", "--trust-model", "always", "--homedir", g.home, "-r", fpr, "--encrypt", "--armor", "-o", out}
			if z.arg != "" {
				args = append(args, z.arg)
			}
			args = append(args, in)
			b.SetBytes(int64(size))
			for b.Loop() {
				if o, err := exec.Command(g.bin, args...).CombinedOutput(); err != nil {
					b.Fatalf("gpg: %v\n%s", err, o)
				}
			}
		})
	}
}
