package smime

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
)

// keyWrapIV is the default initial value of RFC 3394 §2.2.3.1.
const keyWrapIV = 0xA6A6A6A6A6A6A6A6

var errUnwrap = errors.New("smime: key unwrap integrity check failed")

// aesKeyWrap wraps key (a multiple of 8 octets, at least 16) with kek (16,
// 24 or 32 octets) by the AES Key Wrap algorithm of RFC 3394 §2.2.1, in its
// index-based form.
func aesKeyWrap(kek, key []byte) ([]byte, error) {
	if len(key) < 16 || len(key)%8 != 0 {
		return nil, errors.New("smime: key wrap: key length not a multiple of 8 of at least 16")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(key) / 8
	out := make([]byte, 8+len(key)) // C[0] = A, C[1..n] = R[1..n]
	copy(out[8:], key)
	a := uint64(keyWrapIV) // RFC 3394 §2.2.1 step 1: A = IV
	var b [16]byte
	for j := range 6 { // step 2
		for i := 1; i <= n; i++ {
			r := out[8*i : 8*i+8]
			binary.BigEndian.PutUint64(b[:8], a) // B = AES(K, A | R[i])
			copy(b[8:], r)
			block.Encrypt(b[:], b[:])
			a = binary.BigEndian.Uint64(b[:8]) ^ uint64(n*j+i) // A = MSB(64, B) ^ t, t = (n*j)+i
			copy(r, b[8:])                                     // R[i] = LSB(64, B)
		}
	}
	binary.BigEndian.PutUint64(out[:8], a) // step 3: C[0] = A
	clear(b[:])
	return out, nil
}

// aesKeyUnwrap reverses aesKeyWrap (RFC 3394 §2.2.2) and checks the
// integrity value (§2.2.3) in constant time. Any failure yields errUnwrap.
func aesKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, errUnwrap
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(wrapped)/8 - 1
	key := make([]byte, 8*n)
	copy(key, wrapped[8:])
	a := binary.BigEndian.Uint64(wrapped[:8]) // §2.2.2 step 1: A = C[0]
	var b [16]byte
	for j := 5; j >= 0; j-- { // step 2
		for i := n; i >= 1; i-- {
			r := key[8*(i-1) : 8*i]
			binary.BigEndian.PutUint64(b[:8], a^uint64(n*j+i)) // B = AES-1(K, (A ^ t) | R[i])
			copy(b[8:], r)
			block.Decrypt(b[:], b[:])
			a = binary.BigEndian.Uint64(b[:8]) // A = MSB(64, B)
			copy(r, b[8:])                     // R[i] = LSB(64, B)
		}
	}
	clear(b[:])
	var got, want [8]byte
	binary.BigEndian.PutUint64(got[:], a)
	binary.BigEndian.PutUint64(want[:], keyWrapIV)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 { // §2.2.3: A must be the IV
		clear(key)
		return nil, errUnwrap
	}
	return key, nil
}

// x963KDF is the key derivation function of ANSI X9.63 (SEC 1 v2 §3.6.1),
// which RFC 5753 §3.1.1 names for the dhSinglePass-*kdf-schemes:
// K = H(Z || Counter || SharedInfo) for Counter = 1, 2, ... as a 32-bit
// big-endian integer, concatenated and cut to n octets.
func x963KDF(newHash func() hash.Hash, z, sharedInfo []byte, n int) []byte {
	h := newHash()
	out := make([]byte, 0, n+h.Size())
	var ctr [4]byte
	for counter := uint32(1); len(out) < n; counter++ {
		h.Reset()
		h.Write(z)
		binary.BigEndian.PutUint32(ctr[:], counter)
		h.Write(ctr[:])
		h.Write(sharedInfo)
		out = h.Sum(out)
	}
	clear(out[n:cap(out)])
	return out[:n]
}
