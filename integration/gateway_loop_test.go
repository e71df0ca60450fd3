package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// The two companies of TestGatewayLoop: A sends, B receives.
const (
	loopZoneA = "a.test."
	loopZoneB = "b.test."
)

// TestGatewayLoop proves issue 15 item 4, the full loop between two
// companies that both run danemilter, with real parts:
//
//   - a.test, signed: alice's SMIMEA 3 0 0 (the certificate she signs
//     with) and her OPENPGPKEY (a GnuPG key she signs with);
//   - b.test, signed: the records "danemilter keys records" prints for the
//     keys "danemilter keys generate" made in B's key directory: bob (an
//     S/MIME certificate and an OpenPGP key; S/MIME is preferred), carol
//     (an OpenPGP key only);
//   - one NSD serving both zones, one Unbound validating them;
//   - company A: Postfix A's smtpd calls danemilter A (local_domains
//     a.test, policy encrypt, OpenPGP on), and relays to the wire: a sink
//     that stands for the Internet between the companies;
//   - company B: Postfix B's MX smtpd (milter_macro_daemon_name=MX) calls
//     danemilter B (local_domains b.test, MX mail inbound, [gateway]
//     key_dir with bob's and carol's keys, decrypt = ["b.test"],
//     on_failure = "reject"), and relays to B's sink: the users' mailboxes.
//
// Alice signs her message herself (openssl cms -sign, gpg --detach-sign)
// and submits it in clear to Postfix A. What Postfix A relays must be
// ciphertext only: the top-level entity application/pkcs7-mime or
// multipart/encrypted, no line of the plaintext in it. The test forwards
// it byte for byte (net/smtp dot-stuffs, the sink unstuffed) to Postfix
// B's MX; what B's sink gets must be alice's signed MIME entity byte for
// byte under the outer header as sent, with X-Danemilter-Decrypted and
// the signature's result bound to alice's DNS records (smime=pass or
// openpgp=pass, policy.dane=bound). Cases: S/MIME, PGP/MIME, and a 5 MB
// S/MIME message; and a PGP/MIME copy changed on the wire (one bit of the
// encrypted data, the armor valid), which B refuses with 550 5.7.5 for
// the failed decryption and never delivers.
func TestGatewayLoop(t *testing.T) {
	e := newEnv(t, "gpg", "gpgconf")
	l := &loopEnv{env: e, k: &keysEnv{env: e}, in: &inboundEnv{env: e}}
	l.makeKeys(t)

	ports := freePorts(t, 7)
	nsdPort, unboundPort := ports[0], ports[1]
	smtpA, milterA := ports[2], ports[3]
	smtpB, milterB := ports[4], ports[5]
	l.mx = fmt.Sprintf("127.0.0.1:%d", ports[6])
	e.dns = startDNSZones(t, filepath.Join(e.dir, "dns"), nsdPort, unboundPort,
		zoneSpec{name: loopZoneA, signed: true, users: []*user{l.alice}, records: l.k.zoneLines()},
		zoneSpec{name: loopZoneB, signed: true, records: l.recordsB},
	)
	l.requireDNS(t)

	// Company A.
	l.wire = startSink(t)
	aDir := mkdirAll(t, filepath.Join(e.dir, "a"))
	l.logA = filepath.Join(aDir, "danemilter.log")
	startDanemilter(t, e.bin, l.writeConfigA(t, aDir, milterA), l.logA, milterA)
	l.postfixA = startPostfix(t, filepath.Join(aDir, "postfix"), smtpA, l.wire.port(), milterA, "")

	// Company B.
	e.sink = startSink(t)
	bDir := mkdirAll(t, filepath.Join(e.dir, "b"))
	l.logB = filepath.Join(bDir, "danemilter.log")
	l.configB = l.writeConfigB(t, bDir, milterB)
	if out, errOut, err := runErr("", 30*time.Second, e.bin, "check-config", "--config", l.configB); err != nil {
		t.Fatalf("danemilter check-config (company B): %v\n%s%s", err, out, errOut)
	}
	startDanemilter(t, e.bin, l.configB, l.logB, milterB)
	l.postfixB = startPostfix(t, filepath.Join(bDir, "postfix"), smtpB, e.sink.port(), milterB, "",
		l.mx+" inet n - n - - smtpd\n  -o syslog_name=postfix/mx -o milter_macro_daemon_name=MX\n")
	waitTCP(t, "postfix B MX smtpd", l.mx, 20*time.Second, nil)
	t.Logf("gateway loop ready after %v: Postfix A %s -> wire 127.0.0.1:%d -> Postfix B MX %s -> mailboxes 127.0.0.1:%d",
		time.Since(e.started).Round(time.Millisecond), l.postfixA.smtp, l.wire.port(), l.mx, e.sink.port())

	t.Run("smime-signed", func(t *testing.T) {
		entity := loopEntity("smime", 0)
		l.loop(t, l.bob, "smime", "smime", l.in.smimeSigned(t, l.alice, entity, false, ""))
	})
	t.Run("pgp-mime-signed", func(t *testing.T) {
		entity := loopEntity("pgp-mime", 0)
		l.loop(t, l.carol, "pgp-mime", "pgp-mime", pgpSigned(t, l.alicePGP, entity))
	})
	t.Run("smime-signed-5MB", func(t *testing.T) {
		entity := loopEntity("large", 5<<20)
		l.loop(t, l.bob, "smime", "large", l.in.smimeSigned(t, l.alice, entity, false, ""))
	})
	// Changed on the wire: B cannot decrypt it and, with on_failure
	// reject, refuses it; nothing half-decrypted reaches the mailbox.
	t.Run("pgp-mime-tampered-on-the-wire", func(t *testing.T) {
		entity := loopEntity("tampered", 0)
		_, wire, marker := l.throughA(t, l.carol, "pgp-mime", "tampered", pgpSigned(t, l.alicePGP, entity))
		data := tamperArmor(t, wire.data)
		err := smtpSend(l.mx, wire.from, l.carol, data)
		if err == nil || !strings.Contains(err.Error(), "5.7.5") {
			t.Fatalf("Postfix B's MX took the tampered message: %v, want 550 5.7.5", err)
		}
		t.Logf("Postfix B's MX refused the tampered message: %v", err)
		// Refused for the failed integrity check, not for a malformed
		// message: the armor is valid.
		b, err := os.ReadFile(l.logB)
		if err != nil {
			t.Fatal(err)
		}
		var why []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "msg=decryption") && strings.Contains(line, "action=reject") {
				why = append(why, line)
			}
		}
		if len(why) != 1 || !strings.Contains(why[0], `reason="PGP/MIME decryption failed"`) {
			t.Errorf("danemilter B's refusals %q, want one for the failed PGP/MIME decryption", why)
		} else {
			t.Logf("danemilter B: %s", why[0])
		}
		if d := l.sink.rest(marker, time.Second); len(d) != 0 {
			t.Errorf("%d copies of the tampered message in the mailbox", len(d))
		}
	})

	e.checkNoStrayCopies(t)
	if d := l.wire.rest("", 0); len(d) != 0 {
		t.Errorf("%d messages on the wire that no case took", len(d))
	}
	for _, log := range []string{l.logA, l.logB} {
		l.checkLog(t, log)
	}
	t.Logf("gateway loop test took %v", time.Since(e.started).Round(time.Millisecond))
}

// loopEnv is the environment of TestGatewayLoop.
type loopEnv struct {
	*env
	k        *keysEnv    // for its record helpers (company A's zone)
	in       *inboundEnv // for its signing helper
	alice    *user       // signs with S/MIME
	alicePGP *pgpUser    // signs with OpenPGP
	// bob and carol are company B's users, whose keys are in keysB.
	bob, carol         string
	keysB              string
	recordsB           []string // "danemilter keys records" for keysB
	mx                 string   // Postfix B's inbound smtpd
	wire               *sink    // what Postfix A relays: the Internet between A and B
	postfixA, postfixB *postfixEnv
	logA, logB         string // the danemilters' output
	configB            string
	seq                int
}

// makeKeys makes alice's keys (her records in a.test: SMIMEA by the zone
// spec, OPENPGPKEY by "danemilter record") and company B's keys with
// "danemilter keys generate", and B's zone lines with "danemilter keys
// records".
func (l *loopEnv) makeKeys(t *testing.T) {
	t.Helper()
	l.alice = newUser(t, l.keys, "alice@a.test")
	l.alicePGP = newPGPUser(t, filepath.Join(mkdirPrivate(t, filepath.Join(l.dir, "gnupg")), "alice"), "Alice", "alice@a.test", "future-default")
	l.k.openpgpkey(t, l.alicePGP)

	l.bob, l.carol = "bob@b.test", "carol@b.test"
	l.keysB = mkdirPrivate(t, filepath.Join(l.dir, "keys-b"))
	run(t, "", 2*time.Minute, l.bin, "keys", "--dir", l.keysB, "generate", l.bob)
	run(t, "", 2*time.Minute, l.bin, "keys", "--dir", l.keysB, "generate", "--smime", "none", l.carol)
	out := string(run(t, "", time.Minute, l.bin, "keys", "--dir", l.keysB, "records"))
	want := map[string]int{
		smimeaOwner(l.bob) + " SMIMEA": 1, openpgpkeyOwner(l.bob) + " OPENPGPKEY": 1,
		openpgpkeyOwner(l.carol) + " OPENPGPKEY": 1,
	}
	got := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := recordLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			t.Fatalf("danemilter keys records printed %q, not a zone line", line)
		}
		got[m[1]+" "+m[2]]++
		l.recordsB = append(l.recordsB, strings.TrimSpace(line))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("danemilter keys records printed %v, want %v:\n%s", got, want, out)
	}
	if !strings.Contains(out, "SMIMEA\t3 0 0 ") && !strings.Contains(out, "SMIMEA 3 0 0 ") {
		t.Fatalf("danemilter keys records printed no SMIMEA 3 0 0 record:\n%s", out)
	}
	t.Logf("company B's records (danemilter keys records):\n%s", clip([]byte(out), 600))
}

// requireDNS checks with dig that Unbound answers each published record
// DNSSEC-validated.
func (l *loopEnv) requireDNS(t *testing.T) {
	t.Helper()
	for owner, rrtype := range map[string]string{
		smimeaOwner(l.alice.addr): "SMIMEA", openpgpkeyOwner(l.alicePGP.addr): "OPENPGPKEY",
		smimeaOwner(l.bob): "SMIMEA", openpgpkeyOwner(l.bob): "OPENPGPKEY", openpgpkeyOwner(l.carol): "OPENPGPKEY",
	} {
		r, err := l.dns.dig(t, rrtype, owner)
		if err != nil || r.status != "NOERROR" || !r.has("ad") || !regexp.MustCompile(`\sIN\s+`+rrtype+`\s`).MatchString(r.answer) {
			t.Fatalf("precondition: no DNSSEC-validated %s at %s: %v\n%s", rrtype, owner, err, r.answer)
		}
	}
}

// writeConfigA writes danemilter A's configuration: its users are a.test,
// mail to everyone else must be encrypted, OpenPGP on.
func (l *loopEnv) writeConfigA(t *testing.T, dir string, milterPort int) string {
	t.Helper()
	return daemonConfig{
		localDomains: []string{"a.test"},
		policy:       `default = "encrypt"`,
		tables:       "\n[openpgp]\nenabled = true\n",
	}.write(t, dir, milterPort, l.dns.resolver())
}

// writeConfigB writes danemilter B's configuration: its users are b.test,
// MX mail inbound and verified, every b.test user's mail decrypted with
// the keys of keysB, a failure refused.
func (l *loopEnv) writeConfigB(t *testing.T, dir string, milterPort int) string {
	t.Helper()
	return daemonConfig{
		localDomains: []string{"b.test"},
		tables: fmt.Sprintf(`
[openpgp]
enabled = true

[direction]
inbound_daemons = ["MX"]

[inbound]
default = "report"
authserv_id = %q

[gateway]
key_dir = %q
decrypt = ["b.test"]
on_failure = "reject"
`, inboundAuthservID, l.keysB),
	}.write(t, dir, milterPort, l.dns.resolver())
}

// loopEntity is the MIME entity alice signs: text with a line only this
// case has, and with size > 0 a base64 attachment that makes the entity
// about size bytes.
func loopEntity(name string, size int) string {
	text := "Dear Bob,\r\n\r\nthe plaintext line of " + name + ": the merger closes on Friday.\r\n" +
		".A line that starts with a dot.\r\n-- \r\nAlice\r\n"
	if size == 0 {
		return "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + text
	}
	raw := make([]byte, size*3/4)
	if _, err := rand.Read(raw); err != nil {
		panic(err)
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=\"loop-mixed\"\r\n\r\n" +
		"--loop-mixed\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + text +
		"--loop-mixed\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"figures.bin\"\r\n\r\n")
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--loop-mixed--\r\n")
	return b.String()
}

// tamperArmor flips one bit of the OpenPGP message in a PGP/MIME message,
// in the middle of its encrypted data, and armors it again: the armor is
// valid, the integrity check (MDC) is not.
func tamperArmor(t *testing.T, msg []byte) []byte {
	t.Helper()
	const begin, end = "-----BEGIN PGP MESSAGE-----", "-----END PGP MESSAGE-----"
	i, j := bytes.Index(msg, []byte(begin)), bytes.Index(msg, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("no armored OpenPGP message to tamper with")
	}
	j += len(end)
	blk, err := armor.Decode(bytes.NewReader(msg[i:j]))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(blk.Body)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)*2/3] ^= 0x10
	var b bytes.Buffer
	w, err := armor.Encode(&b, blk.Type, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return append(append(bytes.Clone(msg[:i]), toCRLF(b.Bytes())...), msg[j:]...)
}

// plaintextLine is the line of loopEntity that must never be on the wire.
func plaintextLine(name string) string {
	return "the plaintext line of " + name + ": the merger closes on Friday."
}

// throughA sends alice's signed entity (openssl or gpg output, MIME-Version
// first) to rcpt through company A, takes what Postfix A relays from the
// wire and checks that it is ciphertext only. name is the case's, which
// loopEntity made the entity for; format is "smime" or "pgp-mime".
func (l *loopEnv) throughA(t *testing.T, rcpt, format, name string, signed []byte) (orig []byte, wire delivery, marker string) {
	t.Helper()
	secret := plaintextLine(name)
	if !bytes.Contains(signed, []byte(secret)) {
		t.Fatalf("precondition: the signed message lacks its plaintext line %q", secret)
	}
	l.seq++
	marker = fmt.Sprintf("gateway-loop-%d-%d", os.Getpid(), l.seq)
	orig = withMarker(append([]byte("From: Alice <"+l.alice.addr+">\r\nTo: <"+rcpt+">\r\nSubject: Loop "+name+"\r\n"+
		"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <loop."+name+"@a.test>\r\n"), signed...), marker)
	transcript, err := l.sendTo(t, l.postfixA.smtp, []string{rcpt}, orig)
	if err != nil {
		t.Fatalf("swaks to Postfix A: %v\n%s", err, transcript)
	}
	ds, err := l.wire.take(marker, []string{rcpt}, 90*time.Second)
	if err != nil || len(ds) != 1 {
		t.Fatalf("wire: %d copies, want 1: %v\nswaks:\n%s", len(ds), err, transcript)
	}
	l.wantCiphertext(t, ds[0].data, orig, format, secret)
	return orig, ds[0], marker
}

// loop sends alice's signed entity through both companies (throughA,
// then the wire copy byte for byte to Postfix B's MX) and checks what
// rcpt's mailbox gets.
func (l *loopEnv) loop(t *testing.T, rcpt, format, name string, signed []byte) {
	start := time.Now()
	orig, wire, marker := l.throughA(t, rcpt, format, name, signed)
	tookA := time.Since(start)

	// The wire copy, byte for byte, to company B's MX.
	if err := smtpSend(l.mx, wire.from, rcpt, wire.data); err != nil {
		t.Fatalf("forward the wire copy to Postfix B's MX %s: %v", l.mx, err)
	}
	got, err := l.sink.take(marker, []string{rcpt}, 90*time.Second)
	if err != nil || len(got) != 1 {
		t.Fatalf("mailbox: %d copies, want 1: %v", len(got), err)
	}
	msg := got[0].data
	t.Logf("%s: %d bytes submitted, %d on the wire, %d delivered; A took %v, the whole loop %v",
		name, len(orig), len(wire.data), len(msg), tookA.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// Company B: the original entity, byte for byte, the outer header as
	// sent (plus trace fields), the decryption trace and the result.
	if e, w := mimeEntity(t, msg), mimeEntity(t, orig); !bytes.Equal(e, w) {
		t.Errorf("the mailbox got another MIME entity than alice signed:\n%s", firstDiff(e, w))
	}
	h := parseHeader(t, msg)
	for _, f := range []string{"From", "To", "Subject", "Message-ID", "Date", "X-Integration-Test"} {
		if got, want := h.Get(f), parseHeader(t, orig).Get(f); got != want {
			t.Errorf("outer %s %q, want %q as sent", f, got, want)
		}
	}
	dec := h["X-Danemilter-Decrypted"]
	if len(dec) != 1 || !strings.HasPrefix(dec[0], format) {
		t.Errorf("X-Danemilter-Decrypted %q, want one field starting %q", dec, format)
	}
	ours, _ := authResults(t, msg)
	c := inboundCase{method: "smime", result: "pass", binding: "bound", record: "SMIMEA 3 0 0", from: l.alice.addr}
	if format == "pgp-mime" {
		c = inboundCase{method: "openpgp", result: "pass", binding: "bound", record: "OPENPGPKEY", from: l.alice.addr}
	}
	l.in.wantResult(t, ours, c)
	// The signature still verifies with the independent tools.
	if format == "pgp-mime" {
		if err := gpgVerify(t, l.alicePGP, msg); err != nil {
			t.Errorf("the delivered copy does not verify: %v", err)
		}
	} else if err := opensslVerify(t, l.dir, msg); err != nil {
		t.Errorf("the delivered copy does not verify: %v", err)
	}
}

// wantCiphertext checks what Postfix A relayed: the outer header as sent,
// a top-level entity that is encrypted in the expected format, the
// danemilter trace, and no trace of the plaintext: neither its line nor
// the signature's Content-Type. For S/MIME, openssl cms -decrypt with the
// key in B's key directory must read it back to alice's entity.
func (l *loopEnv) wantCiphertext(t *testing.T, data, orig []byte, format, secret string) {
	t.Helper()
	h := parseHeader(t, data)
	ctype := h.Get("Content-Type")
	switch format {
	case "smime":
		if !strings.HasPrefix(ctype, "application/pkcs7-mime") || !strings.Contains(ctype, "enveloped-data") {
			t.Errorf("wire Content-Type %q, want application/pkcs7-mime enveloped-data", ctype)
		}
	case "pgp-mime":
		if !strings.HasPrefix(ctype, "multipart/encrypted") || !strings.Contains(ctype, "application/pgp-encrypted") {
			t.Errorf("wire Content-Type %q, want multipart/encrypted PGP/MIME", ctype)
		}
	}
	wantTrace(t, data, "encrypted", "format="+format, "keys=1")
	for _, leak := range []string{secret, "merger", "multipart/signed", "A line that starts with a dot"} {
		if bytes.Contains(bytes.ToLower(data), bytes.ToLower([]byte(leak))) {
			t.Errorf("the wire carries plaintext: %q", leak)
		}
	}
	if len(data) < 10<<10 {
		t.Logf("on the wire:\n%s", data)
	}
	if format != "smime" {
		return
	}
	keys, err := filepath.Glob(filepath.Join(l.keysB, "bob@b.test", "smime-*.pem"))
	if err != nil || len(keys) != 1 {
		t.Fatalf("bob's S/MIME key file in %s: %v %v", l.keysB, keys, err)
	}
	f := filepath.Join(l.dir, fmt.Sprintf("wire-%d.eml", l.seq))
	writeFile(t, f, data, 0o600)
	plain := run(t, "", time.Minute, mustLookPath(t, "openssl"), "cms", "-decrypt", "-in", f, "-recip", keys[0], "-inkey", keys[0])
	if want := mimeEntity(t, orig); !bytes.Equal(plain, want) {
		t.Errorf("openssl cms -decrypt with bob's gateway key reads another entity than alice's:\n%s", firstDiff(plain, want))
	}
}

// checkLog fails the test for errors or a panic in a danemilter's output,
// and for plaintext or key material in it.
func (l *loopEnv) checkLog(t *testing.T, log string) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"panic", "level=ERROR", "PRIVATE KEY", "merger closes", "BEGIN PGP"} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("%s contains %q", log, bad)
		}
	}
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "msg=decryption") || strings.Contains(line, "msg=message ") {
			lines = append(lines, line)
		}
	}
	t.Logf("%s:\n%s", log, strings.Join(lines, "\n"))
}
