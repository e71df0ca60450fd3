package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// keysZone is the signed zone of TestKeysEndToEnd. Its subdomains
// gcm.keys.test (cipher override) and pgp.keys.test (format preference)
// are in the same zone.
const keysZone = "keys.test."

// TestKeysEndToEnd proves the key kinds of README (issue 4: all SMIMEA
// usages, selectors and matching types, ECDH, AES-GCM; issue 5: OPENPGPKEY
// and PGP/MIME) with real parts, in an environment of its own:
//
//   - keys.test, signed, with records made by "danemilter record":
//     ecdsa (P-256, SMIMEA 3 1 1, certificate in cert_dir), pkix (RSA
//     issued by a test root, SMIMEA 1 0 1, root in pkix_roots, certificate
//     in cert_dir), roll (two SMIMEA 3 0 0 mid-rollover: an old RSA and a
//     new P-256 certificate), gcm@gcm.keys.test (RSA, 3 0 0; aes256-gcm
//     by [smime.domains]), rsa-pgp and cv-pgp (OPENPGPKEY of GnuPG keys,
//     RSA-3072 and ed25519/cv25519), both@keys.test and both@pgp.keys.test
//     (an SMIMEA and an OPENPGPKEY each; pgp.keys.test prefers openpgp by
//     [format.domains]);
//   - danemilter with cert_dir, pkix_roots, OpenPGP on, split delivery
//     through a milter-less Postfix smtpd on 127.0.0.1 (reinject.address);
//   - openssl cms -decrypt and gpg --decrypt prove each delivered copy
//     readable by its recipient, to the original MIME entity byte for byte.
func TestKeysEndToEnd(t *testing.T) {
	e := newEnv(t, "gpg", "gpgconf")
	k := &keysEnv{env: e}
	keys := e.keys
	certDir := mkdirPrivate(t, filepath.Join(e.dir, "certs"))

	// S/MIME keys and certificates.
	k.root = newTestCA(t, keys, "root")
	k.ecdsa = newCertUser(t, keys, "ecdsa", "ecdsa@keys.test", true, nil)
	k.pkix = newCertUser(t, keys, "pkix", "pkix@keys.test", false, k.root)
	k.rollOld = newCertUser(t, keys, "roll-old", "roll@keys.test", false, nil)
	k.rollNew = newCertUser(t, keys, "roll-new", "roll@keys.test", true, nil)
	k.gcm = newCertUser(t, keys, "gcm", "gcm@gcm.keys.test", false, nil)
	k.bothS = newCertUser(t, keys, "both", "both@keys.test", false, nil)
	k.bothPrefS = newCertUser(t, keys, "both-pref", "both@pgp.keys.test", false, nil)
	// The hashed records (3 1 1, 1 0 1) vouch for certificates that the
	// daemon must find in cert_dir.
	for _, u := range []*user{k.ecdsa, k.pkix} {
		b, err := os.ReadFile(u.certFile)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(certDir, filepath.Base(u.certFile)), b, 0o644)
	}

	// OpenPGP keys from GnuPG, each in its own home.
	gnupg := mkdirPrivate(t, filepath.Join(e.dir, "gnupg"))
	k.rsaPGP = newPGPUser(t, filepath.Join(gnupg, "rsa"), "RSA User", "rsa-pgp@keys.test", "rsa3072")
	k.cvPGP = newPGPUser(t, filepath.Join(gnupg, "cv"), "CV User", "cv-pgp@keys.test", "future-default")
	k.bothP = newPGPUser(t, filepath.Join(gnupg, "both"), "Both User", "both@keys.test", "future-default")
	k.bothPrefP = newPGPUser(t, filepath.Join(gnupg, "both-pref"), "Both Pref User", "both@pgp.keys.test", "future-default")
	t.Logf("keys ready after %v", time.Since(e.started).Round(time.Millisecond))

	// The records, as "danemilter record" prints them.
	k.smimea(t, k.ecdsa, "3", "1", "1")
	k.smimea(t, k.pkix, "1", "0", "1")
	k.smimea(t, k.rollOld, "3", "0", "0")
	k.smimea(t, k.rollNew, "3", "0", "0")
	k.smimea(t, k.gcm, "3", "0", "0")
	k.smimea(t, k.bothS, "3", "0", "0")
	k.smimea(t, k.bothPrefS, "3", "0", "0")
	for _, p := range []*pgpUser{k.rsaPGP, k.cvPGP, k.bothP, k.bothPrefP} {
		k.openpgpkey(t, p)
	}

	// As the README recommends for encryption: queue files (cleanup) may be
	// larger than what clients may send, by the growth of encryption. A
	// second smtpd, with milters, takes more than the queue files may hold:
	// what danemilter does then is testLarge's "too big" case.
	k.bigSMTP = fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	e.start(t, envSpec{
		zones: []zoneSpec{{name: keysZone, signed: true, records: k.zoneLines()}},
		config: func(dir string, milterPort int, reinject string) string {
			return writeKeysConfig(t, dir, milterPort, e.dns.resolver(), certDir, k.root.certFile, reinject)
		},
		checkConfig: func(t *testing.T, _ string) {
			if out, errOut, err := runErr("", 30*time.Second, e.bin, "check-config", "--config", e.config); err != nil {
				t.Fatalf("danemilter check-config: %v\n%s%s", err, out, errOut)
			}
		},
		postfixMain: fmt.Sprintf("message_size_limit = %d\n", largeQueueLimit),
		postfixServices: []postfixService{{name: "postfix big smtpd", addr: k.bigSMTP,
			conf: k.bigSMTP + " inet n - n - - smtpd\n  -o syslog_name=postfix/big -o message_size_limit=20000000\n"}},
		reinject: true,
		// Sendmail has no size limit of its own here (confMAX_MESSAGE_SIZE
		// unset): its daemon port is also the "big" one.
		sendmail: true,
	})
	k.log = e.log
	k.requireDNS(t)

	t.Run("lookup", k.testLookup)
	for _, m := range e.mtas {
		k := k.forMTA(m)
		t.Run(m.name, func(t *testing.T) {
			t.Run("smimea-ecdsa-3-1-1", k.testECDSA)
			t.Run("smimea-pkix-ee-1-0-1", k.testPKIX)
			t.Run("smimea-rollover", k.testRollover)
			t.Run("cipher-override-gcm", k.testGCM)
			t.Run("openpgpkey-rsa3072", func(t *testing.T) { k.testPGP(t, k.rsaPGP, "plain.eml", "utf8-8bit.eml") })
			t.Run("openpgpkey-cv25519", func(t *testing.T) { k.testPGP(t, k.cvPGP, "plain.eml", "multipart-attachment.eml") })
			t.Run("both-prefer-smime", k.testBothSMIME)
			t.Run("both-domain-prefers-openpgp", k.testBothOpenPGP)
			t.Run("mixed-smime-openpgp", k.testMixed)
			t.Run("one-format-wins", k.testOneFormat)
			t.Run("large", k.testLarge)
		})
	}

	e.checkNoStrayCopies(t)
	for _, m := range e.mtas {
		k.forMTA(m).checkLog(t)
	}
	t.Logf("keys end to end test took %v", time.Since(e.started).Round(time.Millisecond))
}

// keysEnv is the environment of TestKeysEndToEnd.
type keysEnv struct {
	*env
	root                 *testCA
	ecdsa, pkix          *user // P-256 (3 1 1); RSA issued by root (1 0 1)
	rollOld, rollNew     *user // roll@keys.test: RSA and P-256, both published
	gcm                  *user // gcm@gcm.keys.test: aes256-gcm by [smime.domains]
	bothS, bothPrefS     *user // S/MIME keys of both@keys.test, both@pgp.keys.test
	rsaPGP, cvPGP        *pgpUser
	bothP, bothPrefP     *pgpUser            // OpenPGP keys of both@keys.test, both@pgp.keys.test
	records              map[string][]string // owner name -> zone lines
	smimeaN, openpgpkeyN map[string]int      // owner name -> records published
	log                  string              // danemilter's output
	bigSMTP              string              // smtpd that takes more than the queue may hold
}

// forMTA is a copy of the environment whose mail goes through m.
func (k *keysEnv) forMTA(m *mta) *keysEnv {
	c := *k
	c.env = k.env.forMTA(m)
	c.log = m.log
	if m.sendmail != nil {
		c.bigSMTP = m.smtp
	}
	return &c
}

// requirePrograms is requireEnvironment for programs only this test needs.
func requirePrograms(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := lookPath(n); err != nil {
			msg := "integration test needs program " + n + " (install it with ./setup.sh)"
			if os.Getenv("DANEMILTER_INTEGRATION") == "1" {
				t.Fatal(msg + "; DANEMILTER_INTEGRATION=1 makes this a failure")
			}
			t.Skip(msg + "; set DANEMILTER_INTEGRATION=1 to make this a failure")
		}
	}
}

// writeKeysConfig writes the configuration of TestKeysEndToEnd.
func writeKeysConfig(t *testing.T, dir string, milterPort int, resolver, certDir, roots, reinjectAddr string) string {
	t.Helper()
	return daemonConfig{
		top: fmt.Sprintf("max_encrypted_size = \"%d\"\n", largeQueueLimit),
		tables: fmt.Sprintf(`
[smime]
cipher = "aes256-cbc"
cert_dir = %q
pkix_roots = %q

[smime.domains]
"gcm.keys.test" = "aes256-gcm"

[openpgp]
enabled = true

[format]
prefer = "smime"

[format.domains]
"pgp.keys.test" = "openpgp"
`, certDir, roots),
		reinject: reinjectAddr,
	}.write(t, dir, milterPort, resolver)
}

// pgpUser is a recipient with an OpenPGP key pair made by GnuPG in a home
// directory of its own.
type pgpUser struct {
	addr    string
	home    string
	fpr     string   // primary key fingerprint
	encKeys []string // key IDs (16 hex digits) of the encryption subkeys
	pubFile string   // gpg --export
}

// newPGPUser makes a key for "name <addr>" with gpg --quick-gen-key algo
// (an RSA primary key gets an RSA-3072 encryption subkey added) in home,
// exports the public key and stops the home's gpg-agent when the test
// ends.
func newPGPUser(t *testing.T, home, name, addr, algo string) *pgpUser {
	t.Helper()
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	gpgconf := mustLookPath(t, "gpgconf")
	t.Cleanup(func() {
		if _, errOut, err := runErr("", 30*time.Second, gpgconf, "--homedir", home, "--kill", "all"); err != nil {
			t.Logf("gpgconf --homedir %s --kill all: %v\n%s", home, err, errOut)
		}
	})
	p := &pgpUser{addr: addr, home: home, pubFile: filepath.Join(home, "public.pgp")}
	p.gpg(t, "--quick-gen-key", name+" <"+addr+">", algo, "default", "never")
	p.readKeys(t)
	if len(p.encKeys) == 0 {
		p.gpg(t, "--quick-add-key", p.fpr, "rsa3072", "encr", "never")
		p.readKeys(t)
	}
	if p.fpr == "" || len(p.encKeys) != 1 {
		t.Fatalf("gpg made key %q with encryption subkeys %v for %s; want one", p.fpr, p.encKeys, addr)
	}
	writeFile(t, p.pubFile, p.gpg(t, "--export", addr), 0o644)
	return p
}

// gpg runs gpg in p's home, without a passphrase, and returns its stdout.
func (p *pgpUser) gpg(t *testing.T, args ...string) []byte {
	t.Helper()
	argv := append([]string{mustLookPath(t, "gpg"), "--batch", "--no-tty", "--homedir", p.home,
		"--pinentry-mode", "loopback", "--passphrase", ""}, args...)
	return run(t, "", 2*time.Minute, argv...)
}

// readKeys reads the primary fingerprint and the encryption subkeys from
// gpg --with-colons --list-keys.
func (p *pgpUser) readKeys(t *testing.T) {
	t.Helper()
	p.fpr, p.encKeys = "", nil
	out := p.gpg(t, "--with-colons", "--list-keys", p.addr)
	sawPub := false
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Split(l, ":")
		switch {
		case len(f) > 9 && f[0] == "pub":
			sawPub = true
		case len(f) > 9 && f[0] == "fpr" && sawPub && p.fpr == "":
			p.fpr = f[9]
		case len(f) > 11 && f[0] == "sub" && strings.Contains(f[11], "e"):
			p.encKeys = append(p.encKeys, strings.ToUpper(f[4]))
		}
	}
}

// decrypt runs gpg --decrypt on an armored OpenPGP message. It returns the
// plaintext and the key IDs of gpg's ENC_TO status lines (one per
// public-key encrypted session key packet).
func (p *pgpUser) decrypt(t *testing.T, armored []byte) ([]byte, []string, error) {
	t.Helper()
	out, errOut, err := runStdin(armored, time.Minute, mustLookPath(t, "gpg"), "--batch", "--no-tty", "--homedir", p.home,
		"--pinentry-mode", "loopback", "--passphrase", "", "--status-fd", "2", "--decrypt")
	var to []string
	for _, l := range strings.Split(string(errOut), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "[GNUPG:]" && f[1] == "ENC_TO" {
			to = append(to, strings.ToUpper(f[2]))
		}
	}
	if err != nil {
		return nil, to, fmt.Errorf("gpg --decrypt: %v\n%s", err, errOut)
	}
	if !strings.Contains(string(errOut), "[GNUPG:] DECRYPTION_OKAY") {
		return nil, to, fmt.Errorf("gpg --decrypt: no DECRYPTION_OKAY\n%s", errOut)
	}
	return out, to, nil
}

// openpgpkeyOwner is the owner name of addr's OPENPGPKEY records, computed
// independently of package dane (RFC 7929 §3).
func openpgpkeyOwner(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	sum := sha256.Sum256([]byte(addr[:at]))
	return hex.EncodeToString(sum[:])[:56] + "._openpgpkey." + addr[at+1:] + "."
}

var recordLine = regexp.MustCompile(`^(\S+)\s+\d+\s+IN\s+(SMIMEA|OPENPGPKEY)\s+(.+)$`)

// addRecord checks a zone line printed by "danemilter record" and keeps it.
func (k *keysEnv) addRecord(t *testing.T, out []byte, owner, rrtype, data string) {
	t.Helper()
	line := strings.TrimSpace(string(out))
	m := recordLine.FindStringSubmatch(line)
	if m == nil || strings.Contains(line, "\n") {
		t.Fatalf("danemilter record printed %q, want one %s zone line", out, rrtype)
	}
	if m[1] != owner || m[2] != rrtype {
		t.Fatalf("danemilter record printed owner %s type %s, want %s %s", m[1], m[2], owner, rrtype)
	}
	// The data may be split into several white-space separated chunks
	// (RFC 1035 §5.1 allows it; miekg/dns splits long hex).
	if got := strings.Join(strings.Fields(m[3]), ""); data != "" && got != strings.Join(strings.Fields(data), "") {
		t.Fatalf("danemilter record printed %s data %q, want %q", rrtype, clip([]byte(m[3]), 80), clip([]byte(data), 80))
	}
	if k.records == nil {
		k.records = map[string][]string{}
	}
	k.records[owner] = append(k.records[owner], line)
	if rrtype == "SMIMEA" {
		if k.smimeaN == nil {
			k.smimeaN = map[string]int{}
		}
		k.smimeaN[owner]++
	} else {
		if k.openpgpkeyN == nil {
			k.openpgpkeyN = map[string]int{}
		}
		k.openpgpkeyN[owner]++
	}
}

// zoneLines are the records addRecord kept, ordered by owner name.
func (k *keysEnv) zoneLines() []string {
	var lines []string
	for _, owner := range slices.Sorted(maps.Keys(k.records)) {
		lines = append(lines, k.records[owner]...)
	}
	return lines
}

// smimea makes u's SMIMEA record with "danemilter record smimea" and checks
// its data against an independent computation.
func (k *keysEnv) smimea(t *testing.T, u *user, usage, selector, matching string) {
	t.Helper()
	out := run(t, "", 30*time.Second, k.bin, "record", "smimea", "--usage", usage, "--selector", selector,
		"--matching", matching, "--cert", u.certFile, u.addr)
	content := u.cert.Raw
	if selector == "1" {
		content = u.cert.RawSubjectPublicKeyInfo
	}
	if matching == "1" {
		s := sha256.Sum256(content)
		content = s[:]
	}
	want := fmt.Sprintf("%s %s %s %s", usage, selector, matching, hex.EncodeToString(content))
	k.addRecord(t, out, smimeaOwner(u.addr), "SMIMEA", want)
	t.Logf("SMIMEA %s %s %s for %s (%s)", usage, selector, matching, u.addr, filepath.Base(u.certFile))
}

// openpgpkey makes p's OPENPGPKEY record with "danemilter record openpgpkey".
func (k *keysEnv) openpgpkey(t *testing.T, p *pgpUser) {
	t.Helper()
	out := run(t, "", 30*time.Second, k.bin, "record", "openpgpkey", "--key", p.pubFile, p.addr)
	k.addRecord(t, out, openpgpkeyOwner(p.addr), "OPENPGPKEY", "")
	t.Logf("OPENPGPKEY for %s (key %s, encryption subkey %v)", p.addr, p.fpr, p.encKeys)
}

// requireDNS checks with dig that Unbound answers every record of the zone
// DNSSEC-validated (AD), with as many records as were published.
func (k *keysEnv) requireDNS(t *testing.T) {
	t.Helper()
	check := func(rrtype string, n map[string]int) {
		for owner, want := range n {
			r, err := k.dns.dig(t, rrtype, owner)
			if err != nil {
				t.Fatalf("precondition: %v", err)
			}
			re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(owner) + `\s+\d+\s+IN\s+` + rrtype + `\s`)
			if got := len(re.FindAllString(r.answer, -1)); r.status != "NOERROR" || !r.has("ad") || got != want {
				t.Fatalf("precondition: want %d DNSSEC-validated (AD) %s records at %s, got %d (status %s, flags %v):\n%s",
					want, rrtype, owner, got, r.status, r.flags, r.answer)
			}
		}
	}
	check("SMIMEA", k.smimeaN)
	check("OPENPGPKEY", k.openpgpkeyN)
	// Secure denial for the other record type of a one-format user.
	for _, c := range []struct{ rrtype, owner string }{
		{"OPENPGPKEY", openpgpkeyOwner(k.ecdsa.addr)},
		{"SMIMEA", smimeaOwner(k.rsaPGP.addr)},
	} {
		r, err := k.dns.dig(t, c.rrtype, c.owner)
		if err != nil {
			t.Fatalf("precondition: %v", err)
		}
		if r.status != "NXDOMAIN" || !r.has("ad") {
			t.Fatalf("precondition: want a validated NXDOMAIN for %s %s; dig said:\n%s", c.rrtype, c.owner, r.answer)
		}
	}
}

// testLookup: "danemilter lookup" sees each user's keys as usable and
// announces the format and cipher the daemon will use.
func (k *keysEnv) testLookup(t *testing.T) {
	for _, c := range []struct {
		addr   string
		usable int      // "usable: yes" lines
		want   []string // more text the output must hold
	}{
		{k.rsaPGP.addr, 1, []string{"OPENPGPKEY", "dnssec:      secure", "encrypt as PGP/MIME to 1 key(s)"}},
		{k.ecdsa.addr, 1, []string{"SMIMEA 3 1 1", "ECDSA P-256", "encrypt as S/MIME (aes256-cbc) to 1 certificate(s)"}},
		{k.pkix.addr, 1, []string{"SMIMEA 1 0 1", "RSA-2048", "encrypt as S/MIME"}},
		{k.rollOld.addr, 2, []string{"RSA-2048", "ECDSA P-256", "to 2 certificate(s)"}},
		{k.gcm.addr, 1, []string{"encrypt as S/MIME (aes256-gcm)"}},
		{k.cvPGP.addr, 1, []string{"OPENPGPKEY", "encrypt as PGP/MIME to 1 key(s)"}},
		{k.bothS.addr, 2, []string{"SMIMEA 3 0 0", "OPENPGPKEY", "encrypt as S/MIME"}},
		{k.bothPrefS.addr, 2, []string{"SMIMEA 3 0 0", "OPENPGPKEY", "encrypt as PGP/MIME"}},
	} {
		code, out := lookupExit(t, k.bin, k.config, c.addr)
		ok := code == 0
		if n := strings.Count(out, "usable: yes"); n != c.usable {
			t.Errorf("danemilter lookup %s: %d \"usable: yes\" lines, want %d", c.addr, n, c.usable)
			ok = false
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("danemilter lookup %s: output lacks %q", c.addr, w)
				ok = false
			}
		}
		if !ok {
			t.Errorf("danemilter lookup %s: exit %d (want 0)\n%s", c.addr, code, out)
		} else {
			t.Logf("danemilter lookup %s: exit 0\n%s", c.addr, out)
		}
	}
}

// deliverAll sends orig to rcpts, waits until each has a delivery and
// settle more for copies that should not exist, and checks that each
// recipient got exactly one copy. It returns the copies.
func (k *keysEnv) deliverAll(t *testing.T, rcpts []string, orig []byte, settle time.Duration) []delivery {
	t.Helper()
	marker := k.marker(t)
	transcript, err := k.send(t, rcpts, withMarker(orig, marker))
	if err != nil {
		t.Fatalf("swaks to %v: %v\n%s", rcpts, err, transcript)
	}
	ds, err := k.sink.take(marker, rcpts, 30*time.Second)
	if err != nil {
		t.Fatalf("%v\nswaks:\n%s", err, transcript)
	}
	ds = append(ds, k.sink.rest(marker, settle)...)
	seen := map[string]int{}
	for _, d := range ds {
		for _, r := range d.rcpts {
			seen[strings.ToLower(r)]++
			if !slices.ContainsFunc(rcpts, func(s string) bool { return strings.EqualFold(s, r) }) {
				t.Errorf("delivery to %s, who was not a recipient", r)
			}
		}
	}
	for _, r := range rcpts {
		if n := seen[strings.ToLower(r)]; n != 1 {
			t.Errorf("%s got %d copies, want exactly 1", r, n)
		}
	}
	return ds
}

// deliverOne sends orig to addr alone and returns the one copy.
func (k *keysEnv) deliverOne(t *testing.T, addr string, orig []byte) []byte {
	t.Helper()
	ds := k.deliverAll(t, []string{addr}, orig, time.Second)
	if len(ds) != 1 {
		t.Fatalf("%s got %d deliveries, want 1", addr, len(ds))
	}
	return ds[0].data
}

// recipientInfos counts the RecipientInfos of an S/MIME message by type,
// as "openssl cms -cmsout -print" shows them: ktri (key transport, RSA),
// kari (key agreement, ECDH).
func (k *keysEnv) recipientInfos(t *testing.T, msg []byte) (ktri, kari int, printed string) {
	t.Helper()
	f, err := os.CreateTemp(k.dir, "cms-*.eml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(msg); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := string(run(t, "", 30*time.Second, mustLookPath(t, "openssl"), "cms", "-cmsout", "-print", "-in", f.Name()))
	return strings.Count(out, "d.ktri:"), strings.Count(out, "d.kari:"), out
}

// wantRecipientInfos checks the RecipientInfo types of an S/MIME message.
func (k *keysEnv) wantRecipientInfos(t *testing.T, msg []byte, ktri, kari int) {
	t.Helper()
	gk, ga, printed := k.recipientInfos(t, msg)
	if gk != ktri || ga != kari {
		t.Errorf("RecipientInfos: %d ktri and %d kari, want %d and %d\n%s", gk, ga, ktri, kari, clip([]byte(printed), 3000))
		return
	}
	t.Logf("RecipientInfos: %d KeyTransRecipientInfo, %d KeyAgreeRecipientInfo", gk, ga)
}

// wantTrace checks the X-Danemilter field holds each of parts.
func wantTrace(t *testing.T, msg []byte, parts ...string) {
	t.Helper()
	tr := parseHeader(t, msg)["X-Danemilter"]
	if len(tr) != 1 {
		t.Errorf("X-Danemilter %q, want one field", tr)
		return
	}
	for _, p := range parts {
		if !strings.Contains(tr[0], p) {
			t.Errorf("X-Danemilter %q lacks %q", tr[0], p)
		}
	}
}

// testECDSA (a): a P-256 certificate published as SMIMEA 3 1 1 (SHA-256 of
// the SubjectPublicKeyInfo), the certificate in cert_dir: the message is
// encrypted by ECDH (one KeyAgreeRecipientInfo) and openssl reads it.
func (k *keysEnv) testECDSA(t *testing.T) {
	for _, name := range []string{"plain.eml", "multipart-attachment.eml"} {
		t.Run(name, func(t *testing.T) {
			orig := readCorpus(t, name)
			msg := k.deliverOne(t, k.ecdsa.addr, orig)
			k.checkEncrypted(t, msg, orig, 1, k.ecdsa)
			wantTrace(t, msg, "format=smime", "cipher=aes256-cbc", "keys=1")
			k.wantRecipientInfos(t, msg, 0, 1)
		})
	}
}

// testPKIX (b): an RSA certificate issued by the test root, published as
// SMIMEA 1 0 1 (PKIX-EE, SHA-256 of the certificate), the root in
// pkix_roots and the certificate in cert_dir.
func (k *keysEnv) testPKIX(t *testing.T) {
	orig := readCorpus(t, "plain.eml")
	msg := k.deliverOne(t, k.pkix.addr, orig)
	k.checkEncrypted(t, msg, orig, 1, k.pkix)
	wantTrace(t, msg, "format=smime", "keys=1")
	k.wantRecipientInfos(t, msg, 1, 0)
}

// testRollover (c): two SMIMEA 3 0 0 records mid-rollover, the old RSA and
// the new P-256 certificate: the message is encrypted to both, and reads
// with either key.
func (k *keysEnv) testRollover(t *testing.T) {
	orig := readCorpus(t, "utf8-8bit.eml")
	msg := k.deliverOne(t, k.rollOld.addr, orig)
	k.checkEncrypted(t, msg, orig, 2, k.rollOld, k.rollNew)
	wantTrace(t, msg, "format=smime", "keys=2")
	k.wantRecipientInfos(t, msg, 1, 1)
}

// testGCM (d): [smime.domains] "gcm.keys.test" = "aes256-gcm": the message
// is AuthEnvelopedData (RFC 5083), smime-type=authEnveloped-data, and
// openssl reads it.
func (k *keysEnv) testGCM(t *testing.T) {
	for _, name := range []string{"plain.eml", "multipart-attachment.eml"} {
		t.Run(name, func(t *testing.T) {
			orig := readCorpus(t, name)
			msg := k.deliverOne(t, k.gcm.addr, orig)
			k.checkSMIME(t, msg, orig, "authEnveloped-data", 1, k.gcm)
			wantTrace(t, msg, "format=smime", "cipher=aes256-gcm", "keys=1")
			_, _, printed := k.recipientInfos(t, msg)
			if !strings.Contains(printed, "d.authEnvelopedData:") {
				t.Errorf("openssl cms -cmsout -print shows no authEnvelopedData:\n%s", clip([]byte(printed), 2000))
			}
		})
	}
}

// pgpParts splits a PGP/MIME message (RFC 3156 §4) and checks its form:
// multipart/encrypted with protocol application/pgp-encrypted, a first
// part application/pgp-encrypted holding "Version: 1", a second part
// application/octet-stream holding the armored message, which it returns.
func pgpParts(t *testing.T, msg []byte) []byte {
	t.Helper()
	h := parseHeader(t, msg)
	if cts := h["Content-Type"]; len(cts) != 1 {
		t.Errorf("delivered message has %d Content-Type fields, want 1: %q", len(cts), cts)
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/encrypted" || params["protocol"] != "application/pgp-encrypted" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q (%v), want multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=...\n%s",
			h.Get("Content-Type"), err, clip(msg, 1500))
	}
	_, body := splitMessage(t, msg)
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts [][]byte
	var types []string
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart/encrypted body: %v\n%s", err, clip(msg, 1500))
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("multipart/encrypted part: %v", err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types = append(types, pt)
		parts = append(parts, b)
	}
	if len(parts) != 2 || types[0] != "application/pgp-encrypted" || types[1] != "application/octet-stream" {
		t.Fatalf("multipart/encrypted has parts %q, want application/pgp-encrypted and application/octet-stream\n%s", types, clip(msg, 1500))
	}
	if !regexp.MustCompile(`(?m)^Version: 1\r?$`).Match(parts[0]) {
		t.Errorf("control part %q, want \"Version: 1\"", parts[0])
	}
	if !bytes.HasPrefix(bytes.TrimSpace(parts[1]), []byte("-----BEGIN PGP MESSAGE-----")) ||
		!bytes.HasSuffix(bytes.TrimSpace(parts[1]), []byte("-----END PGP MESSAGE-----")) {
		t.Errorf("second part is not an armored OpenPGP message:\n%s", clip(parts[1], 300))
	}
	return parts[1]
}

// checkPGP checks that msg, as delivered, is the PGP/MIME form of orig with
// the outer header kept and a trace header naming len(to) keys, encrypted
// to the encryption subkeys of exactly the users in to, and that each of
// readers decrypts it with gpg to orig's MIME entity exactly.
func (k *keysEnv) checkPGP(t *testing.T, msg, orig []byte, to []*pgpUser, readers ...*pgpUser) {
	t.Helper()
	keys := len(to)
	h := parseHeader(t, msg)
	armored := pgpParts(t, msg)
	if h.Get("MIME-Version") == "" {
		t.Errorf("no MIME-Version in the encrypted message")
	}
	if cte := strings.TrimSpace(h.Get("Content-Transfer-Encoding")); cte != "" && !strings.EqualFold(cte, "7bit") {
		t.Errorf("outer Content-Transfer-Encoding %q, want none or 7bit", cte)
	}
	wantTrace(t, msg, "encrypted; format=pgp-mime", fmt.Sprintf("keys=%d", keys))
	checkOuterHeader(t, msg, orig)
	var wantTo []string
	for _, u := range to {
		wantTo = append(wantTo, u.encKeys...)
	}
	slices.Sort(wantTo)
	want := mimeEntity(t, orig)
	for _, u := range readers {
		out, encTo, err := u.decrypt(t, armored)
		if err != nil {
			t.Errorf("%s: %v\narmored:\n%s", u.addr, err, clip(armored, 600))
			continue
		}
		slices.Sort(encTo)
		if !slices.Equal(encTo, wantTo) {
			t.Errorf("%s: the message is encrypted to key IDs %v, want %v", u.addr, encTo, wantTo)
		}
		if !bytes.Equal(out, want) {
			t.Errorf("%s decrypts a different MIME entity than the original's:\n%s\ngot:\n%q\nwant:\n%q",
				u.addr, firstDiff(out, want), clip(out, 800), clip(want, 800))
			continue
		}
		t.Logf("%s: gpg --decrypt gives the original MIME entity, %d bytes identical (encrypted to %v)", u.addr, len(out), encTo)
	}
}

// testPGP (e, f): a GnuPG key published as OPENPGPKEY: the message is
// PGP/MIME and gpg decrypts it to the original MIME entity.
func (k *keysEnv) testPGP(t *testing.T, u *pgpUser, names ...string) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			orig := readCorpus(t, name)
			msg := k.deliverOne(t, u.addr, orig)
			k.checkPGP(t, msg, orig, []*pgpUser{u}, u)
		})
	}
}

// testBothSMIME (g): both@keys.test has an SMIMEA and an OPENPGPKEY record;
// with prefer = "smime" it gets S/MIME.
func (k *keysEnv) testBothSMIME(t *testing.T) {
	orig := readCorpus(t, "plain.eml")
	msg := k.deliverOne(t, k.bothS.addr, orig)
	k.checkEncrypted(t, msg, orig, 1, k.bothS)
	wantTrace(t, msg, "format=smime", "keys=1")
}

// testBothOpenPGP (g): both@pgp.keys.test has both records too, and
// [format.domains] "pgp.keys.test" = "openpgp": it gets PGP/MIME.
func (k *keysEnv) testBothOpenPGP(t *testing.T) {
	orig := readCorpus(t, "plain.eml")
	msg := k.deliverOne(t, k.bothPrefP.addr, orig)
	k.checkPGP(t, msg, orig, []*pgpUser{k.bothPrefP}, k.bothPrefP)
}

// testMixed (h): one transaction to an S/MIME-only recipient (ecdsa) and
// an OpenPGP-only one (rsa-pgp): each gets exactly one copy in its own
// format, readable with its own tool; no copy carries both, none is in
// clear.
func (k *keysEnv) testMixed(t *testing.T) {
	for _, name := range []string{"plain.eml", "multipart-attachment.eml"} {
		t.Run(name, func(t *testing.T) {
			orig := readCorpus(t, name)
			rcpts := []string{k.ecdsa.addr, k.rsaPGP.addr}
			ds := k.deliverAll(t, rcpts, orig, 3*time.Second)
			if len(ds) != 2 {
				t.Errorf("%d deliveries for %v, want 2 (one per format)", len(ds), rcpts)
			}
			_, body := splitMessage(t, orig)
			clear := bytes.TrimSpace(body)
			clear = clear[:min(len(clear), 40)]
			splits := 0
			for _, d := range ds {
				if bytes.Contains(d.data, clear) {
					t.Errorf("copy to %v holds the original body in clear (%q)", d.rcpts, clear)
				}
				if len(d.rcpts) != 1 {
					t.Errorf("one copy carries recipients %v, want one recipient per copy:\n%s", d.rcpts, clip(d.data, 600))
					continue
				}
				tr := parseHeader(t, d.data).Get("X-Danemilter")
				if strings.Contains(tr, "split=") {
					splits++
				}
				if ct := parseHeader(t, d.data).Get("Content-Type"); !strings.Contains(ct, "pkcs7-mime") && !strings.Contains(ct, "multipart/encrypted") {
					t.Errorf("copy to %v is not encrypted (Content-Type %q, X-Danemilter %q)", d.rcpts, ct, tr)
					continue
				}
				switch {
				case strings.EqualFold(d.rcpts[0], k.ecdsa.addr):
					k.checkEncrypted(t, d.data, orig, 1, k.ecdsa)
					wantTrace(t, d.data, "format=smime")
					k.wantRecipientInfos(t, d.data, 0, 1)
				case strings.EqualFold(d.rcpts[0], k.rsaPGP.addr):
					k.checkPGP(t, d.data, orig, []*pgpUser{k.rsaPGP}, k.rsaPGP)
				}
				t.Logf("copy to %v: X-Danemilter %q", d.rcpts, tr)
			}
			if splits != 1 {
				t.Errorf("%d copies name the split (split=...), want 1 (the copy kept in the transaction)", splits)
			}
		})
	}
}

// testOneFormat: both@keys.test (prefers S/MIME, has both) and rsa-pgp
// (OpenPGP only) in one transaction: one format for all wins over the
// preference, so there is one PGP/MIME copy encrypted to both keys and no
// split.
func (k *keysEnv) testOneFormat(t *testing.T) {
	orig := readCorpus(t, "plain.eml")
	rcpts := []string{k.bothS.addr, k.rsaPGP.addr}
	ds := k.deliverAll(t, rcpts, orig, 3*time.Second)
	for _, d := range ds {
		var us []*pgpUser
		for _, r := range d.rcpts {
			switch {
			case strings.EqualFold(r, k.bothS.addr):
				us = append(us, k.bothP)
			case strings.EqualFold(r, k.rsaPGP.addr):
				us = append(us, k.rsaPGP)
			}
		}
		if tr := parseHeader(t, d.data).Get("X-Danemilter"); strings.Contains(tr, "split") {
			t.Errorf("copy to %v was split: X-Danemilter %q", d.rcpts, tr)
		}
		// Encrypted to both keys, however Postfix delivers it; each
		// recipient reads it with their own key.
		k.checkPGP(t, d.data, orig, []*pgpUser{k.bothP, k.rsaPGP}, us...)
	}
}

// checkLog shows the daemon's decision for each message and fails on
// errors it logged: nothing in this test should make one.
func (k *keysEnv) checkLog(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(k.log)
	if err != nil {
		t.Fatal(err)
	}
	var decisions []string
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(l, "level=ERROR"):
			t.Errorf("danemilter logged an error: %s", l)
		case strings.Contains(l, "level=WARN"):
			t.Logf("danemilter logged a warning: %s", l)
		case strings.Contains(l, "level=INFO") && strings.Contains(l, "msg=message "):
			decisions = append(decisions, l)
		}
	}
	t.Logf("danemilter decisions:\n%s", strings.Join(decisions, "\n"))
}
