package smime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestAESKeyWrapRFC3394 checks the test vectors of RFC 3394 §4.1 to §4.6
// both ways, and that unwrapping refuses every single-bit change.
func TestAESKeyWrapRFC3394(t *testing.T) {
	const (
		kek128 = "000102030405060708090A0B0C0D0E0F"
		kek192 = "000102030405060708090A0B0C0D0E0F1011121314151617"
		kek256 = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
		key128 = "00112233445566778899AABBCCDDEEFF"
		key192 = "00112233445566778899AABBCCDDEEFF0001020304050607"
		key256 = "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"
	)
	tests := []struct {
		section, kek, key, want string
	}{
		{"4.1", kek128, key128, "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
		{"4.2", kek192, key128, "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"},
		{"4.3", kek256, key128, "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"},
		{"4.4", kek192, key192, "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"},
		{"4.5", kek256, key192, "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1"},
		{"4.6", kek256, key256, "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
	}
	for _, tt := range tests {
		kek, key, want := unhex(t, tt.kek), unhex(t, tt.key), unhex(t, tt.want)
		got, err := aesKeyWrap(kek, key)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("RFC 3394 §%s wrap = %X, %v; want %X", tt.section, got, err, want)
		}
		back, err := aesKeyUnwrap(kek, want)
		if err != nil || !bytes.Equal(back, key) {
			t.Errorf("RFC 3394 §%s unwrap = %X, %v; want %X", tt.section, back, err, key)
		}
		for bit := range 8 * len(want) {
			bad := bytes.Clone(want)
			bad[bit/8] ^= 1 << (bit % 8)
			if _, err := aesKeyUnwrap(kek, bad); !errors.Is(err, errUnwrap) {
				t.Fatalf("RFC 3394 §%s: unwrap accepted bit %d flipped (err %v)", tt.section, bit, err)
			}
		}
	}
	kek := unhex(t, kek128)
	for _, n := range []int{0, 8, 15, 17} {
		if _, err := aesKeyWrap(kek, make([]byte, n)); err == nil {
			t.Errorf("wrap of %d octets accepted", n)
		}
	}
	for _, n := range []int{0, 8, 16, 23, 25} {
		if _, err := aesKeyUnwrap(kek, make([]byte, n)); !errors.Is(err, errUnwrap) {
			t.Errorf("unwrap of %d octets: err = %v", n, err)
		}
	}
	if _, err := aesKeyWrap(make([]byte, 15), make([]byte, 16)); err == nil {
		t.Error("15-octet KEK accepted")
	}
}

// TestX963KDF checks the ANSI X9.63 KDF against vectors from NIST CAVS
// (ansx963_2001.rsp, SHA-256, as pyca/cryptography's tests use them),
// which `openssl kdf -kdfopt digest:SHA256 ... X963KDF` reproduces.
func TestX963KDF(t *testing.T) {
	tests := []struct {
		z, info, want string
	}{
		{"96c05619d56c328ab95fe84b18264b08725b85e33fd34f08", "", "443024c3dae66b95e6f5670601558f71"},
		{
			"22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d", "75eef81aa3041e33b80971203d2c0c52",
			"c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e52a13d9c7c6fc878c50c5ea0bc7b00e0da2447cfd874f6cf92f30d0097111485500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21",
		},
	}
	for _, tt := range tests {
		want := unhex(t, tt.want)
		if got := x963KDF(sha256.New, unhex(t, tt.z), unhex(t, tt.info), len(want)); !bytes.Equal(got, want) {
			t.Errorf("x963KDF(%s) = %x, want %x", tt.z, got, want)
		}
	}
	// A prefix of a longer output: the counter blocks concatenate.
	long := x963KDF(sha256.New, []byte("z"), []byte("info"), 100)
	if short := x963KDF(sha256.New, []byte("z"), []byte("info"), 33); !bytes.Equal(short, long[:33]) {
		t.Error("33-octet output is not a prefix of the 100-octet output")
	}
}

// TestECCSharedInfo checks the DER of ECC-CMS-SharedInfo (RFC 5753 §7.2)
// for id-aes128-wrap and a 128-bit KEK, byte by byte.
func TestECCSharedInfo(t *testing.T) {
	got, err := eccSharedInfo(oidAES128Wrap(), nil, 16)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "3015"+ // SEQUENCE
		"300b 0609 608648016503040105"+ // keyInfo: { id-aes128-wrap }, parameters absent
		"a206 0404 00000080") // suppPubInfo [2] EXPLICIT OCTET STRING: 128 bits
	if !bytes.Equal(got, want) {
		t.Errorf("ECC-CMS-SharedInfo = %x, want %x", got, want)
	}
	got, err = eccSharedInfo(oidAES256Wrap(), []byte{1, 2}, 32)
	if err != nil {
		t.Fatal(err)
	}
	want = unhex(t, "301b"+
		"300b 0609 60864801650304012d"+
		"a004 0402 0102"+ // entityUInfo [0] EXPLICIT: the ukm
		"a206 0404 00000100")
	if !bytes.Equal(got, want) {
		t.Errorf("ECC-CMS-SharedInfo with ukm = %x, want %x", got, want)
	}
}

// TestOAEPParams checks the DER of the RSAES-OAEP-params Encrypt writes
// (RFC 4055 §4.1 rSAES-OAEP-SHA256-Params; SHA-256 with NULL parameters as
// RFC 4055 §2.1 spells sha256Identifier) and that Decrypt reads it back.
func TestOAEPParams(t *testing.T) {
	got, err := oaepSHA256Params()
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "302f"+
		"a00f 300d 0609 608648016503040201 0500"+ // hashFunc [0]: sha256Identifier
		"a11c 301a 0609 2a864886f70d010108 300d 0609 608648016503040201 0500") // maskGenFunc [1]: mgf1SHA256Identifier
	if !bytes.Equal(got, want) {
		t.Fatalf("RSAES-OAEP-params = %x, want %x", got, want)
	}
	e, _, err := parseBER(got, 0)
	if err != nil {
		t.Fatal(err)
	}
	o, err := parseOAEPParams(&e)
	if err != nil || o.Hash.String() != "SHA-256" || o.MGFHash.String() != "SHA-256" || len(o.Label) != 0 {
		t.Fatalf("parseOAEPParams = %+v, %v", o, err)
	}
}
