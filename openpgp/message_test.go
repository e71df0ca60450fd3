package openpgp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// armorOf armors binary packets as EncryptMIME does (with a checksum).
func armorOf(t testing.TB, bin []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	aw, err := newArmorWriter(bw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// dearmor returns the binary packets of an armored message.
func dearmor(t testing.TB, armored []byte) []byte {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pgpMIME builds an RFC 3156 body around the data part's content, as
// EncryptMIME lays it out.
func pgpMIME(boundary string, data []byte) []byte {
	return []byte(preamble + "\r\n--" + boundary + "\r\n" + versionPart + "\r\n--" + boundary + "\r\n" + dataPartHeader +
		string(data) + "\r\n\r\n--" + boundary + "--\r\n")
}

// newPacket frames body as a new-format packet with a five-octet length.
func newPacket(tag byte, body []byte) []byte {
	n := len(body)
	return append([]byte{0xc0 | tag, 0xff, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// splitPackets cuts bin into its packets (with their headers).
func splitPackets(t testing.TB, bin []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(bin) > 0 {
		r := bufio.NewReader(bytes.NewReader(bin))
		_, body, err := readPacket(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			t.Fatal(err)
		}
		used := len(bin) - r.Buffered()
		out = append(out, bin[:used])
		bin = bin[used:]
	}
	return out
}

// TestParseMIMEOurs: ParseMIME reads what EncryptMIME writes, for every key
// kind, and Includes names exactly the recipients.
func TestParseMIMEOurs(t *testing.T) {
	entity := testEntity()
	outsider := newKey(t, kindCv25519, "outsider@example.net", nil)
	for _, tt := range []struct {
		keys []keyKind
		data string
	}{
		{[]keyKind{kindRSA3072}, "SEIPDv1"},
		{[]keyKind{kindCv25519, kindP256}, "SEIPDv1"},
		{[]keyKind{kindP384}, "SEIPDv1"},
		{[]keyKind{kindV6}, "SEIPDv1"},
		{[]keyKind{kindV6AEAD}, "SEIPDv2"},
	} {
		t.Run(fmt.Sprint(tt.keys), func(t *testing.T) {
			var keys []*pgp.Entity
			for i, k := range tt.keys {
				keys = append(keys, newKey(t, k, fmt.Sprintf("r%d@example.net", i), nil))
			}
			var out bytes.Buffer
			boundary, err := EncryptMIME(&out, bytes.NewReader(entity), keys, Options{})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			for _, rd := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", bytes.NewReader(out.Bytes())},
				{"one byte", iotest.OneByteReader(bytes.NewReader(out.Bytes()))},
				{"LF", strings.NewReader(strings.ReplaceAll(out.String(), "\r\n", "\n"))},
			} {
				m, err := ParseMIME(rd.r, boundary)
				if err != nil {
					t.Fatalf("%s: %v", rd.name, err)
				}
				if m.Data != tt.data || len(m.Recipients) != len(keys) {
					t.Errorf("%s: %+v", rd.name, m)
				}
				for _, k := range keys {
					if !m.Includes(k, now) {
						t.Errorf("%s: recipient %X not included", rd.name, k.PrimaryKey.Fingerprint)
					}
				}
				if m.Includes(outsider, now) {
					t.Errorf("%s: outsider included", rd.name)
				}
			}
		})
	}
}

// TestParseArmoredGnuPG: messages GnuPG encrypts, to a go-crypto key and to
// a key of its own (which may get an OCB packet), parse; a hidden recipient
// (--throw-keyids, key ID 0) is no proof; a passphrase-only message and a
// signed, unencrypted one are refused.
func TestParseArmoredGnuPG(t *testing.T) {
	g := newGPG(t)
	key := newKey(t, kindCv25519, alice, nil)
	var pub bytes.Buffer
	if err := key.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	g.run(t, pub.Bytes(), "--import")
	g.run(t, nil, "--quick-gen-key", "gpg@example.net", "default", "default", "never")
	gpgPub := g.run(t, nil, "--export", "gpg@example.net")
	gpgKeys, err := pgp.ReadKeyRing(bytes.NewReader(gpgPub))
	if err != nil || len(gpgKeys) != 1 {
		t.Fatalf("gpg key: %v", err)
	}
	now := time.Now()
	in := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(in, entityOf(2000), 0o600); err != nil {
		t.Fatal(err)
	}
	enc := func(args ...string) []byte {
		return g.run(t, nil, append([]string{"--armor", "--trust-model", "always", "--output", "-"}, append(args, in)...)...)
	}
	for _, tt := range []struct {
		name   string
		args   []string
		key    *pgp.Entity
		proves bool
	}{
		{"go-crypto key", []string{"--encrypt", "-r", alice}, key, true},
		{"gpg key", []string{"--encrypt", "-r", "gpg@example.net"}, gpgKeys[0], true},
		{"two recipients", []string{"--encrypt", "-r", alice, "-r", "gpg@example.net"}, gpgKeys[0], true},
		{"hidden recipient", []string{"--encrypt", "--throw-keyids", "-r", alice}, key, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			armored := enc(tt.args...)
			m, err := ParseArmored(bytes.NewReader(armored))
			if err != nil {
				t.Fatalf("%v\n%s", err, armored)
			}
			t.Logf("%s, %d PKESKs", m.Data, len(m.Recipients))
			if got := m.Includes(tt.key, now); got != tt.proves {
				t.Errorf("Includes = %v, want %v (%+v)", got, tt.proves, m)
			}
		})
	}
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"passphrase only", []string{"--symmetric", "--passphrase", "x"}},
		{"signed, not encrypted", []string{"--sign", "-u", "gpg@example.net"}},
		{"stored", []string{"--store"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			armored := enc(tt.args...)
			if _, err := ParseArmored(bytes.NewReader(armored)); !errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// entityOf is a MIME entity of about n octets of readable text.
func entityOf(n int) []byte {
	var b strings.Builder
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
	for b.Len() < n {
		b.WriteString("The merger closes on Friday; keep this to yourself.\r\n")
	}
	return []byte(b.String())
}

// TestParseRefuses: the fake of issue 9 and every other body that is not
// one complete encrypted message with ciphertext in it.
func TestParseRefuses(t *testing.T) {
	key := newKey(t, kindCv25519, alice, nil)
	var out bytes.Buffer
	boundary, err := EncryptMIME(&out, bytes.NewReader(entityOf(3000)), []*pgp.Entity{key}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	good := out.String()
	if _, err := ParseMIME(strings.NewReader(good), boundary); err != nil {
		t.Fatal(err)
	}
	_, _, armored := encryptParts(t, entityOf(3000), []*pgp.Entity{key}, Options{})
	armored = bytes.TrimRight(armored, "\r\n")
	bin := dearmor(t, armored)
	pkts := splitPackets(t, bin)
	if len(pkts) != 2 {
		t.Fatalf("%d packets in our output", len(pkts))
	}
	pkesk, seipd := pkts[0], pkts[1]
	text := []byte(strings.Repeat("plaintext, readable by anyone on the wire. ", 20))

	lines := strings.Split(string(armored), "\r\n")
	cutArmor := strings.Join(append(lines[:len(lines)/2:len(lines)/2], lines[len(lines)-1]), "\r\n")
	badSum := strings.Join(lines[:len(lines)-2], "\r\n") + "\r\n=AAAA\r\n" + lines[len(lines)-1]
	noSum := strings.Join(lines[:len(lines)-2], "\r\n") + "\r\n" + lines[len(lines)-1]
	if _, err := ParseArmored(strings.NewReader(noSum)); err != nil {
		t.Fatalf("without the optional checksum: %v", err)
	}
	withHeader := strings.Replace(string(armored), "-----\r\n\r\n", "-----\r\nVersion: GnuPG v2\r\n\r\n", 1)
	if _, err := ParseArmored(strings.NewReader(withHeader)); err != nil {
		t.Fatalf("with a Version header: %v", err)
	}

	mimeCases := []struct {
		name string
		body string
		want error
	}{
		{"issue 9 fake", string(pgpMIME(boundary, []byte("-----BEGIN PGP MESSAGE-----\r\n\r\nDear partner, the merger closes on Friday.\r\n-----END PGP MESSAGE-----"))), ErrMalformed},
		{"plaintext in base64", string(pgpMIME(boundary, armorOf(t, text))), ErrMalformed},
		{"plaintext in a SEIPD packet", string(pgpMIME(boundary, armorOf(t, append(append([]byte(nil), pkesk...), newPacket(18, append([]byte{1}, text...))...)))), ErrNotCiphertext},
		{"plaintext in a literal packet", string(pgpMIME(boundary, armorOf(t, append(append([]byte(nil), pkesk...), newPacket(11, append([]byte{'b', 0, 0, 0, 0, 0}, text...))...)))), ErrMalformed},
		{"PKESK only", string(pgpMIME(boundary, armorOf(t, pkesk))), ErrMalformed},
		{"data without PKESK", string(pgpMIME(boundary, armorOf(t, seipd))), ErrMalformed},
		{"two data packets", string(pgpMIME(boundary, armorOf(t, append(append(append([]byte(nil), pkesk...), seipd...), seipd...)))), ErrMalformed},
		{"PKESK with an extra octet", string(pgpMIME(boundary, armorOf(t, append(newPacket(1, append(bytes.Clone(pkesk[2:]), 0)), seipd...)))), ErrMalformed},
		{"truncated packets", string(pgpMIME(boundary, armorOf(t, bin[:len(bin)-7]))), ErrMalformed},
		{"bad checksum", string(pgpMIME(boundary, []byte(badSum))), ErrMalformed},
		{"cut armor", string(pgpMIME(boundary, []byte(cutArmor))), ErrMalformed},
		{"text before the armor", string(pgpMIME(boundary, append([]byte("Hi Bob, the numbers:\r\n"), armored...))), ErrMalformed},
		{"text after the armor", string(pgpMIME(boundary, append(bytes.Clone(armored), "\r\nPS: in clear"...))), ErrMalformed},
		{"Comment header with a text", string(pgpMIME(boundary, []byte(strings.Replace(string(armored), "-----\r\n\r\n", "-----\r\nComment: "+strings.Repeat("secret ", 200)+"\r\n\r\n", 1)))), ErrMalformed},
		{"text after the closing delimiter", good + "Here is the plaintext again.\r\n", ErrMalformed},
		{"third part", strings.Replace(good, "--"+boundary+"--", "--"+boundary+"\r\nContent-Type: text/plain\r\n\r\nplaintext\r\n--"+boundary+"--", 1), ErrMalformed},
		{"long preamble", strings.Repeat("plaintext line\r\n", 100) + good, ErrMalformed},
		{"no version line", strings.Replace(good, "Version: 1\r\n", "", 1), ErrMalformed},
		{"text in the version part", strings.Replace(good, "Version: 1\r\n", "Version: 1\r\nplaintext\r\n", 1), ErrMalformed},
		{"quoted-printable data part", strings.Replace(good, dataPartHeader, "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", 1), ErrMalformed},
		{"data part text/plain", strings.Replace(good, "Content-Type: application/octet-stream", "Content-Type: text/plain", 1), ErrMalformed},
		{"no closing delimiter", strings.Replace(good, "--"+boundary+"--", "", 1), ErrMalformed},
		{"cut in half", good[:len(good)/2], ErrMalformed},
		{"empty", "", ErrMalformed},
	}
	for _, c := range mimeCases {
		m, err := ParseMIME(strings.NewReader(c.body), boundary)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if m != nil {
			t.Errorf("%s: a message came back with the error", c.name)
		}
	}
	if _, err := ParseMIME(strings.NewReader(good), "other-boundary"); !errors.Is(err, ErrMalformed) {
		t.Errorf("another boundary: %v", err)
	}
	// Every cut of the armored message is refused.
	for cut := 1; cut < len(armored)-1; cut += 97 {
		if _, err := ParseArmored(bytes.NewReader(armored[:cut])); err == nil {
			t.Errorf("armored message cut at %d of %d accepted", cut, len(armored))
		}
	}
}

// TestIncludesWildcard: a PKESK with key ID 0 names nobody, and one for the
// right key ID but another algorithm does not count.
func TestIncludesWildcard(t *testing.T) {
	key := newKey(t, kindCv25519, alice, nil)
	now := time.Now()
	enc, ok := key.EncryptionKey(now)
	if !ok {
		t.Fatal("no encryption key")
	}
	for _, tt := range []struct {
		r    Recipient
		want bool
	}{
		{Recipient{KeyID: enc.PublicKey.KeyId, Algorithm: enc.PublicKey.PubKeyAlgo}, true},
		{Recipient{KeyID: 0, Algorithm: enc.PublicKey.PubKeyAlgo}, false},
		{Recipient{KeyID: enc.PublicKey.KeyId, Algorithm: packet.PubKeyAlgoRSA}, false},
		{Recipient{KeyID: key.PrimaryKey.KeyId, Algorithm: key.PrimaryKey.PubKeyAlgo}, false}, // a signing-only primary key
	} {
		m := &Message{Recipients: []Recipient{tt.r}}
		if got := m.Includes(key, now); got != tt.want {
			t.Errorf("%+v: Includes = %v, want %v", tt.r, got, tt.want)
		}
	}
	// An expired encryption key is no proof.
	short := newKey(t, kindCv25519, "short@example.net", &packet.Config{Time: func() time.Time { return now.Add(-48 * time.Hour) }, KeyLifetimeSecs: 3600})
	sk := short.Subkeys[0].PublicKey
	m := &Message{Recipients: []Recipient{{KeyID: sk.KeyId, Algorithm: sk.PubKeyAlgo}}}
	if m.Includes(short, now) {
		t.Error("an expired key counts")
	}
	if !m.Includes(short, now.Add(-47*time.Hour)) {
		t.Error("the key does not count while it was valid")
	}
}

// TestParseStreams: a large message is not held in memory.
func TestParseStreams(t *testing.T) {
	key := newKey(t, kindCv25519, alice, nil)
	pr, pw := io.Pipe()
	var boundary string
	done := make(chan struct{})
	const size = 24 << 20
	go func() {
		defer close(done)
		entity := io.MultiReader(strings.NewReader("Content-Type: application/octet-stream\r\n\r\n"), io.LimitReader(zeroReader{}, size))
		b, err := EncryptMIME(pw, entity, []*pgp.Entity{key}, Options{Boundary: "fixed.boundary=="})
		boundary = b
		pw.CloseWithError(err)
	}()
	m, err := ParseMIME(pr, "fixed.boundary==")
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if m.DataLength < size || boundary != "fixed.boundary==" {
		t.Errorf("DataLength %d for %d octets", m.DataLength, size)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
