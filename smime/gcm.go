package smime

// Streaming AES-GCM (NIST SP 800-38D). crypto/cipher's AEAD seals a whole
// message at once; a 25 MB mail must not sit in memory, so the encryption is
// assembled here from crypto/cipher parts:
//
//   - the keystream is AES-CTR from inc32(J0) (SP 800-38D §7.1 step 3),
//     crypto/cipher.NewCTR;
//   - GHASH (§6.4) is linear, so the hash of a long input is the Horner sum
//     of the hashes of its segments: acc = acc·H^n + G(segment). The hash of
//     one segment comes from crypto/cipher's own (hardware-accelerated) GCM:
//     Seal with an empty plaintext and the segment as additional data
//     returns GHASH(segment || pad || len block) XOR E(K, J0), from which
//     the segment's share is recovered with one multiplication in GF(2^128).
//
// Only the handful of field multiplications per 64 KiB segment are done in
// Go (gfMul, constant time); the bulk work stays in crypto/cipher. The
// result is checked against crypto/cipher's one-shot GCM in gcm_test.go.
// Under GODEBUG=fips140=only crypto/cipher refuses GCM with a caller's
// nonce, so newGCMStream (and with it GCM encryption) fails with that
// error in that mode.

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
)

const (
	gcmNonceSize = 12 // RFC 5084 §3.2 recommends 12 octets
	gcmTagSize   = 16 // RFC 5084 §3.2: 16 octets, the longest ICV
	// gcmMaxSize is the longest plaintext: SP 800-38D §5.2.1.1 allows
	// 2^39-256 bits, and inc32 (§6.2) must not wrap its 32-bit counter,
	// which crypto/cipher's 128-bit CTR would carry into the nonce.
	gcmMaxSize = (1<<32 - 2) * 16
	// ghashSegment is how much input is hashed per Seal call; a multiple
	// of 16.
	ghashSegment = chunkSize
)

// gfElem is an element of GF(2^128) in GCM's bit order: hi holds the first
// eight octets big-endian, so x^0 is the most significant bit of hi.
type gfElem struct{ hi, lo uint64 }

func gfLoad(b []byte) gfElem {
	return gfElem{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:16])}
}

func (x gfElem) store(b []byte) {
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:16], x.lo)
}

func (x gfElem) xor(y gfElem) gfElem { return gfElem{x.hi ^ y.hi, x.lo ^ y.lo} }

// gfMul multiplies in GF(2^128) by SP 800-38D §6.3 Algorithm 1, without
// branches or table look-ups that depend on the operands.
func gfMul(x, y gfElem) gfElem {
	var z gfElem
	v := y
	for i := range 128 {
		var bit uint64
		if i < 64 {
			bit = x.hi >> (63 - i) & 1
		} else {
			bit = x.lo >> (127 - i) & 1
		}
		m := -bit // all ones when bit i of x is set
		z.hi ^= v.hi & m
		z.lo ^= v.lo & m
		// V = V >> 1, xor R = 11100001 || 0^120 when the bit shifted out
		// was 1.
		lsb := -(v.lo & 1)
		v.lo = v.lo>>1 | v.hi<<63
		v.hi = v.hi>>1 ^ 0xe100000000000000&lsb
	}
	return z
}

// gfPow returns h^n for n >= 1 by square and multiply.
func gfPow(h gfElem, n uint64) gfElem {
	r := gfElem{hi: 1 << 63} // the multiplicative identity, x^0
	for ; n > 0; n >>= 1 {
		if n&1 == 1 {
			r = gfMul(r, h)
		}
		h = gfMul(h, h)
	}
	return r
}

// lenBlock is [len(A)]64 || [len(C)]64 in bits (SP 800-38D §7.1 step 5).
func lenBlock(aadBytes, ctBytes uint64) gfElem { return gfElem{aadBytes * 8, ctBytes * 8} }

// gcmStream encrypts or decrypts one message with AES-GCM in pieces of any
// size. Use it for at most gcmMaxSize octets.
type gcmStream struct {
	ctr   cipher.Stream // GCTR keystream from inc32(J0)
	aead  cipher.AEAD   // the same key: GHASH of one segment via Seal
	nonce [gcmNonceSize]byte
	ekj0  gfElem // E(K, J0): masks the tag (§7.1 step 6) and every Seal
	h     gfElem // the hash subkey H = E(K, 0^128)
	hSeg  gfElem // H^(ghashSegment/16)
	acc   gfElem // GHASH share of the segments hashed so far, times H
	buf   []byte // input not yet hashed, less than ghashSegment
	adLen uint64 // octets of additional data
	ctLen uint64 // octets of ciphertext
	inCT  bool   // additional data is over (and was hashed with its padding)
	tag   [gcmTagSize]byte
}

func newGCMStream(block cipher.Block, nonce []byte) (*gcmStream, error) {
	if block.BlockSize() != 16 || len(nonce) != gcmNonceSize {
		return nil, errors.New("smime: GCM needs a 128-bit block cipher and a 12-octet nonce")
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	g := &gcmStream{aead: aead} // buf grows only if input comes in pieces not aligned to segments
	copy(g.nonce[:], nonce)
	var b [16]byte
	block.Encrypt(b[:], b[:]) // H = CIPH_K(0^128), §7.1 step 1
	g.h = gfLoad(b[:])
	g.hSeg = gfPow(g.h, ghashSegment/16)
	copy(b[:], nonce) // J0 = IV || 0^31 || 1 for a 96-bit IV, §7.1 step 2
	b[12], b[13], b[14], b[15] = 0, 0, 0, 1
	block.Encrypt(b[:], b[:])
	g.ekj0 = gfLoad(b[:])
	copy(b[:], nonce) // inc32(J0): the first counter block of the plaintext
	b[12], b[13], b[14], b[15] = 0, 0, 0, 2
	g.ctr = cipher.NewCTR(block, b[:])
	clear(b[:])
	return g, nil
}

// hashSegment folds seg (at most ghashSegment octets; a multiple of 16
// unless it is the last of the additional data or of the ciphertext, whose
// zero padding GHASH and Seal agree on) into acc.
func (g *gcmStream) hashSegment(seg []byte) {
	if len(seg) == 0 {
		return
	}
	// Seal(nonce, "", seg) = GHASH(seg || pad || [8·len(seg)]64 || 0^64)
	// XOR E(K, J0). GHASH over n blocks X_i is the sum of X_i·H^(n+1-i)
	// and the length block adds L·H, so tag XOR E(K, J0) XOR L·H is the
	// segment's share times H.
	t := gfLoad(g.aead.Seal(g.tag[:0], g.nonce[:], nil, seg))
	share := t.xor(g.ekj0).xor(gfMul(lenBlock(uint64(len(seg)), 0), g.h))
	n := uint64(len(seg)+15) / 16
	hn := g.hSeg
	if n != ghashSegment/16 {
		hn = gfPow(g.h, n)
	}
	g.acc = gfMul(g.acc, hn).xor(share) // Horner: shift what came before by n blocks
}

// hash adds p to the GHASH input, hashing whole segments straight from p
// when nothing is buffered.
func (g *gcmStream) hash(p []byte) {
	if len(g.buf) > 0 {
		k := min(len(p), ghashSegment-len(g.buf))
		g.buf = append(g.buf, p[:k]...)
		p = p[k:]
		if len(g.buf) < ghashSegment {
			return
		}
		g.hashSegment(g.buf)
		g.buf = g.buf[:0]
	}
	for len(p) >= ghashSegment {
		g.hashSegment(p[:ghashSegment])
		p = p[ghashSegment:]
	}
	g.buf = append(g.buf, p...)
}

// additionalData hashes authenticated, unencrypted input; all of it must
// come before the first seal or open.
func (g *gcmStream) additionalData(p []byte) {
	if g.inCT {
		panic("smime: GCM additional data after the ciphertext")
	}
	g.adLen += uint64(len(p))
	g.hash(p)
}

// startCT ends the additional data: GHASH pads it to a block boundary
// (§7.1 step 5), which the Seal of its last, short segment does.
func (g *gcmStream) startCT() {
	if !g.inCT {
		g.hashSegment(g.buf)
		g.buf = g.buf[:0]
		g.inCT = true
	}
}

// seal encrypts src into dst (which may be src itself) and hashes the
// ciphertext.
func (g *gcmStream) seal(dst, src []byte) {
	g.startCT()
	g.ctr.XORKeyStream(dst[:len(src)], src)
	g.ctLen += uint64(len(src))
	g.hash(dst[:len(src)])
}

// open hashes the ciphertext src and decrypts it into dst (which may be
// src itself). The plaintext is unauthenticated until sum is checked.
func (g *gcmStream) open(dst, src []byte) {
	g.startCT()
	g.hash(src)
	g.ctLen += uint64(len(src))
	g.ctr.XORKeyStream(dst[:len(src)], src)
}

// sum returns the authentication tag (§7.1 step 6) of everything sealed or
// opened; the stream must not be used afterwards.
func (g *gcmStream) sum() [gcmTagSize]byte {
	g.startCT()
	g.hashSegment(g.buf)
	g.buf = g.buf[:0]
	s := g.acc.xor(gfMul(lenBlock(g.adLen, g.ctLen), g.h)) // S = GHASH(A || C || len)
	var tag [gcmTagSize]byte
	s.xor(g.ekj0).store(tag[:]) // T = GCTR(J0, S) = S XOR E(K, J0)
	return tag
}
