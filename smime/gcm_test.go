package smime

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	mrand "math/rand/v2"
	"testing"
)

// gcmSizes are the plaintext sizes the streaming GCM is checked at: every
// size from 0 to 100, and the neighbourhoods of the GHASH segment and of
// two and three segments.
func gcmSizes() []int {
	var s []int
	for n := range 101 {
		s = append(s, n)
	}
	for _, base := range []int{ghashSegment, 2 * ghashSegment, 3 * ghashSegment} {
		for d := -17; d <= 17; d++ {
			s = append(s, base+d)
		}
	}
	return append(s, 200_000)
}

// streamSeal encrypts pt with gcmStream, feeding it in pieces whose sizes
// come from rng (or all at once when rng is nil), and returns ciphertext
// and tag as one slice, as cipher.AEAD.Seal does.
func streamSeal(t testing.TB, key, nonce, aad, pt []byte, rng *mrand.Rand) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGCMStream(block, nonce)
	if err != nil {
		t.Fatal(err)
	}
	split := func(p []byte, f func([]byte)) {
		for len(p) > 0 {
			k := len(p)
			if rng != nil {
				k = min(k, 1+rng.IntN(3*ghashSegment/2))
				if rng.IntN(4) == 0 {
					k = min(len(p), 1+rng.IntN(40))
				}
			}
			f(p[:k])
			p = p[k:]
		}
	}
	split(aad, g.additionalData)
	out := bytes.Clone(pt)
	split(out, func(p []byte) { g.seal(p, p) }) // in place
	tag := g.sum()
	return append(out, tag[:]...)
}

// TestGCMStreamMatchesStdlib checks the streaming GCM against crypto/cipher's
// one-shot AES-GCM for every size in gcmSizes, both key sizes, with and
// without additional data, fed whole and in random pieces, and the reverse
// direction (open) too.
func TestGCMStreamMatchesStdlib(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, keyLen := range []int{16, 32} {
		key := randomBytes(keyLen, byte(keyLen))
		block, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range gcmSizes() {
			for _, aadLen := range []int{0, 13, ghashSegment + 5} {
				if aadLen > 13 && size > 100 && size != 3*ghashSegment+1 {
					continue // long additional data at a few sizes suffices
				}
				pt := randomBytes(size, byte(size))
				aad := randomBytes(aadLen, byte(aadLen)+1)
				nonce := randomBytes(gcmNonceSize, byte(size)+2)
				want := aead.Seal(nil, nonce, pt, aad)
				for _, split := range []bool{false, true} {
					var r *mrand.Rand
					if split {
						r = rng
					}
					got := streamSeal(t, key, nonce, aad, pt, r)
					if !bytes.Equal(got, want) {
						t.Fatalf("key %d, size %d, aad %d, split %v: streaming GCM differs from crypto/cipher", keyLen, size, aadLen, split)
					}
				}
				// open: decrypt stdlib's output with the stream.
				g, err := newGCMStream(block, nonce)
				if err != nil {
					t.Fatal(err)
				}
				g.additionalData(aad)
				ct := bytes.Clone(want[:size])
				g.open(ct, ct)
				if tag := g.sum(); !bytes.Equal(ct, pt) || !bytes.Equal(tag[:], want[size:]) {
					t.Fatalf("key %d, size %d, aad %d: open differs", keyLen, size, aadLen)
				}
			}
		}
	}
}

func TestGFMul(t *testing.T) {
	one := gfElem{hi: 1 << 63}
	rng := mrand.New(mrand.NewPCG(3, 4))
	for range 100 {
		x := gfElem{rng.Uint64(), rng.Uint64()}
		y := gfElem{rng.Uint64(), rng.Uint64()}
		z := gfElem{rng.Uint64(), rng.Uint64()}
		if gfMul(x, one) != x || gfMul(one, x) != x {
			t.Fatal("1 is not the identity")
		}
		if gfMul(x, y) != gfMul(y, x) {
			t.Fatal("not commutative")
		}
		if gfMul(x, y.xor(z)) != gfMul(x, y).xor(gfMul(x, z)) {
			t.Fatal("not distributive")
		}
		if gfMul(gfMul(x, y), z) != gfMul(x, gfMul(y, z)) {
			t.Fatal("not associative")
		}
		if gfPow(x, 5) != gfMul(gfMul(gfMul(x, x), gfMul(x, x)), x) {
			t.Fatal("gfPow(x, 5) wrong")
		}
	}
	// x^127 · x = x^128 = x^7 + x^2 + x + 1 (the GCM polynomial, §6.3).
	x := gfElem{hi: 1 << 62}
	if got, want := gfMul(gfPow(x, 127), x), (gfElem{hi: 0xe1 << 56}); got != want {
		t.Fatalf("x^128 = %016x%016x, want %016x%016x", got.hi, got.lo, want.hi, want.lo)
	}
}

func BenchmarkGCMStream(b *testing.B) {
	key := randomBytes(32, 1)
	block, _ := aes.NewCipher(key)
	buf := randomBytes(chunkSize, 2)
	b.SetBytes(int64(len(buf)) * 16)
	for b.Loop() {
		g, err := newGCMStream(block, make([]byte, gcmNonceSize))
		if err != nil {
			b.Fatal(err)
		}
		for range 16 {
			g.seal(buf, buf)
		}
		_ = g.sum()
	}
}
