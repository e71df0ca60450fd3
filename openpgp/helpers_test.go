package openpgp

// Test-only helpers: keys generated with go-crypto on the spot (cached per
// test binary, RSA generation being slow), records made from them, and a
// GnuPG home directory in which `gpg` generates, imports and decrypts.

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"
)

// keyKind names a go-crypto key configuration.
type keyKind string

const (
	kindRSA3072 keyKind = "rsa3072"
	kindRSA1024 keyKind = "rsa1024"
	kindCv25519 keyKind = "cv25519" // EdDSA (legacy) primary, ECDH Curve25519 subkey
	kindP256    keyKind = "p256"    // ECDSA P-256 primary, ECDH P-256 subkey
	kindP384    keyKind = "p384"
	kindBrainP  keyKind = "brainpoolP256"
	kindV6      keyKind = "v6"     // v6 Ed25519 primary, X25519 subkey, SEIPDv1 only
	kindV6AEAD  keyKind = "v6aead" // the same, advertising SEIPDv2
	kindAES128  keyKind = "aes128" // cv25519 that prefers AES-128 only
)

// kindConfig returns the configuration of a key kind. Like the keys GnuPG
// and OpenPGP.js make, they list AES-256 first among their preferred
// ciphers (go-crypto's default lists only AES-128), except kindAES128.
func kindConfig(k keyKind) *packet.Config {
	c := kindConfigDefault(k)
	if k != kindAES128 {
		c.DefaultCipher = packet.CipherAES256
	}
	return c
}

func kindConfigDefault(k keyKind) *packet.Config {
	switch k {
	case kindAES128:
		return &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519}
	case kindRSA3072:
		return &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 3072}
	case kindRSA1024:
		return &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 1024}
	case kindCv25519:
		return &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519}
	case kindP256:
		return &packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveNistP256}
	case kindP384:
		return &packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveNistP384}
	case kindBrainP:
		return &packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveBrainpoolP256}
	case kindV6:
		return &packet.Config{Algorithm: packet.PubKeyAlgoEd25519, V6Keys: true}
	case kindV6AEAD:
		return &packet.Config{Algorithm: packet.PubKeyAlgoEd25519, V6Keys: true,
			AEADConfig: &packet.AEADConfig{DefaultMode: packet.AEADModeOCB}}
	}
	panic("unknown key kind " + string(k))
}

var (
	keyCacheMu sync.Mutex
	keyCache   = map[string]*pgp.Entity{}
)

// newKey generates a key of kind k for email, with cfg's time and lifetime
// when cfg is given (nil: now, no expiry). Keys without such options are
// cached by kind and email; callers must not modify them.
func newKey(tb testing.TB, k keyKind, email string, opts *packet.Config) *pgp.Entity {
	tb.Helper()
	cacheKey := string(k) + "|" + email
	if opts == nil {
		keyCacheMu.Lock()
		defer keyCacheMu.Unlock()
		if e, ok := keyCache[cacheKey]; ok {
			return e
		}
	}
	cfg := kindConfig(k)
	if opts != nil {
		cfg.Time = opts.Time
		cfg.KeyLifetimeSecs = opts.KeyLifetimeSecs
	}
	e, err := pgp.NewEntity("Test User", "", email, cfg)
	if err != nil {
		tb.Fatalf("NewEntity(%s, %s): %v", k, email, err)
	}
	if opts == nil {
		keyCache[cacheKey] = e
	}
	return e
}

// publicBytes serializes the transferable public keys of es, one after the
// other, as an OPENPGPKEY record carries them (RFC 7929 §2.1).
func publicBytes(tb testing.TB, es ...*pgp.Entity) []byte {
	tb.Helper()
	var b bytes.Buffer
	for _, e := range es {
		if err := e.Serialize(&b); err != nil {
			tb.Fatal(err)
		}
	}
	return b.Bytes()
}

// recordOf returns an OPENPGPKEY record for addr holding data.
func recordOf(tb testing.TB, addr string, data []byte) *dns.OPENPGPKEY {
	tb.Helper()
	name := "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._openpgpkey.example.com."
	if _, d, ok := strings.Cut(addr, "@"); ok {
		name = "x._openpgpkey." + d + "."
	}
	return &dns.OPENPGPKEY{
		Hdr:       dns.RR_Header{Name: name, Rrtype: dns.TypeOPENPGPKEY, Class: dns.ClassINET, Ttl: 3600},
		PublicKey: base64.StdEncoding.EncodeToString(data),
	}
}

// recordFor is recordOf with the public keys of es.
func recordFor(tb testing.TB, addr string, es ...*pgp.Entity) *dns.OPENPGPKEY {
	tb.Helper()
	return recordOf(tb, addr, publicBytes(tb, es...))
}

// gpgEnv is a GnuPG home directory.
type gpgEnv struct {
	bin  string
	home string
}

// needGPG returns the path of gpg, or skips the test when it is missing,
// unless DANEMILTER_INTEGRATION=1 demands it.
func needGPG(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("gpg")
	if err != nil {
		if os.Getenv("DANEMILTER_INTEGRATION") == "1" {
			tb.Fatalf("gpg not found and DANEMILTER_INTEGRATION=1: %v", err)
		}
		tb.Skip("gpg not in PATH (set DANEMILTER_INTEGRATION=1 to make this fatal)")
	}
	return p
}

// newGPG makes an empty GnuPG home directory, removed (and its agent
// stopped) when the test ends. It lives directly under the system temporary
// directory because the agent's socket path must stay short.
func newGPG(tb testing.TB) *gpgEnv {
	tb.Helper()
	bin := needGPG(tb)
	home, err := os.MkdirTemp("", "dmgpg")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if gpgconf, err := exec.LookPath("gpgconf"); err == nil {
			_ = exec.Command(gpgconf, "--homedir", home, "--kill", "all").Run()
		}
		os.RemoveAll(home)
	})
	return &gpgEnv{bin: bin, home: home}
}

// run runs gpg in the home directory with stdin and returns its standard
// output; it fails the test when gpg fails.
func (g *gpgEnv) run(tb testing.TB, stdin []byte, args ...string) []byte {
	tb.Helper()
	out, stderr, err := g.try(stdin, args...)
	if err != nil {
		tb.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// try is run without failing: it returns standard output and error.
func (g *gpgEnv) try(stdin []byte, args ...string) (stdout []byte, stderr string, err error) {
	full := append([]string{"--batch", "--no-tty", "--homedir", g.home, "--pinentry-mode", "loopback", "--passphrase", ""}, args...)
	cmd := exec.Command(g.bin, full...)
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.String(), err
}

// genKey makes a key with gpg --quick-gen-key and returns its fingerprint.
func (g *gpgEnv) genKey(tb testing.TB, uid, algo, usage string) string {
	tb.Helper()
	g.run(tb, nil, "--quick-gen-key", uid, algo, usage, "never")
	return g.fingerprint(tb, uid)
}

// fingerprint returns the fingerprint of the key with user ID uid.
func (g *gpgEnv) fingerprint(tb testing.TB, uid string) string {
	tb.Helper()
	out := g.run(tb, nil, "--with-colons", "--list-keys", "="+uid)
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return f[9]
		}
	}
	tb.Fatalf("no fingerprint for %q in\n%s", uid, out)
	return ""
}

// importSecret imports e's secret key (go-crypto keys are generated
// without a passphrase).
func (g *gpgEnv) importSecret(tb testing.TB, e *pgp.Entity) {
	tb.Helper()
	var b bytes.Buffer
	if err := e.SerializePrivate(&b, nil); err != nil {
		tb.Fatal(err)
	}
	g.run(tb, b.Bytes(), "--import")
}

// decrypt runs gpg --decrypt on an armored message and returns the
// plaintext and gpg's status lines.
func (g *gpgEnv) decrypt(tb testing.TB, armored []byte) (plain []byte, status string) {
	tb.Helper()
	dir := tb.TempDir()
	in := filepath.Join(dir, "msg.asc")
	out := filepath.Join(dir, "msg.out")
	statusFile := filepath.Join(dir, "status")
	if err := os.WriteFile(in, armored, 0o600); err != nil {
		tb.Fatal(err)
	}
	g.run(tb, nil, "--status-file", statusFile, "--output", out, "--decrypt", in)
	plain, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := os.ReadFile(statusFile)
	if err != nil {
		tb.Fatal(err)
	}
	return plain, string(st)
}

// testEntity is a small MIME entity, CRLF-terminated, with a non-ASCII
// body and a line that looks like a boundary of our own making.
func testEntity() []byte {
	return []byte("Content-Type: multipart/mixed; boundary=\"inner\"\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n" +
		"--inner\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Grüße aus Köln.\r\n" +
		"-----BEGIN PGP MESSAGE-----\r\n" +
		"--inner--\r\n")
}

// largeEntity returns an entity of at least n bytes shaped like a mail
// attachment: base64 text in 76-character CRLF lines.
func largeEntity(n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 200)
	b.WriteString("Content-Type: application/octet-stream; name=\"big.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	raw := make([]byte, 57)
	x := uint64(0x9e3779b97f4a7c15)
	line := make([]byte, 76)
	for b.Len() < n {
		for i := range raw {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			raw[i] = byte(x)
		}
		base64.StdEncoding.Encode(line, raw)
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func fmtReasons(rs []Rejected) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%q", r.Reason))
	}
	return "[" + strings.Join(s, ", ") + "]"
}
