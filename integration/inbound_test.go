package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
)

// The zones of TestInboundEndToEnd: the senders' domains. local.test is
// the receiving side.
const (
	signerZone = "signer.test."
	bankZone   = "bank.test."
	brokenZone = "broken.test."
	downZone   = "down.test."
	plainZone  = "plain.test."
)

// inboundAuthservID is danemilter's authserv-id in TestInboundEndToEnd
// (RFC 8601 §2.5): what its Authentication-Results fields carry and what a
// forged field must carry to be removed.
const inboundAuthservID = "mx.local.test"

// inboundRcpt is the local user every inbound message goes to.
const inboundRcpt = "rcpt@local.test"

// TestInboundEndToEnd proves issue 13 (inbound verification) with real
// parts, in an environment of its own:
//
//   - signer.test, signed: alice (SMIMEA 3 0 0), hashed (SMIMEA 3 1 1 of
//     her SubjectPublicKeyInfo; the certificate travels in the
//     signature), ta (SMIMEA 2 0 0 of the test root that issued her
//     certificate), mallory (an SMIMEA 3 0 0 of a certificate that is not
//     the one she signs with), bob (OPENPGPKEY of his GnuPG key), dave (an
//     OPENPGPKEY of a key that is not the one he signs with); eve has no
//     record;
//   - bank.test, signed: teller (SMIMEA 3 0 0); its mail is "require";
//   - plain.test, unsigned: ivan's SMIMEA 3 0 0 is insecure;
//   - broken.test, signed, its SMIMEA records changed after signing
//     (bogus), and down.test, whose name server does not answer
//     (indeterminate): both "require";
//   - Postfix with the suite's outbound smtpd and an MX smtpd
//     (milter_macro_daemon_name=MX, inbound_daemons = ["MX"]), and an MX
//     smtpd whose danemilter holds instead of refusing
//     (require_action = "hold"); Sendmail beside it, whose danemilter
//     takes its daemon port (DaemonPortOptions Name=MTA) as inbound.
//
// Messages are signed by openssl cms -sign (detached, opaque, nested in
// multipart/mixed) and gpg --detach-sign (PGP/MIME built here), tampered
// with, mis-addressed, unsigned, and carrying a forged Authentication-Results
// of our authserv-id beside a foreign one. Each goes through SMTP to a local
// user; the sink shows what the user's mailbox would get: the right result
// per case, the forged field gone, the foreign kept, the body byte for byte
// as sent (and openssl cms -verify / gpg --verify still accept it).
func TestInboundEndToEnd(t *testing.T) {
	e := newEnv(t, "gpg", "gpgconf", "postqueue", "postcat", "postsuper")
	in := &inboundEnv{env: e, k: &keysEnv{env: e}}
	in.makeKeys(t)
	ports := freePorts(t, 3)
	in.mx = fmt.Sprintf("127.0.0.1:%d", ports[0])
	in.mxHold = fmt.Sprintf("127.0.0.1:%d", ports[1])
	holdMilterPort := ports[2]
	e.start(t, envSpec{
		zones: []zoneSpec{
			{name: signerZone, signed: true, users: []*user{in.alice}, records: in.k.zoneLines()},
			{name: bankZone, signed: true, users: []*user{in.teller}},
			{name: brokenZone, signed: true, tamper: true, users: []*user{in.erin}},
			{name: downZone, unreachable: true},
			{name: plainZone, users: []*user{in.ivan}},
		},
		config: func(dir string, milterPort int, _ string) string {
			// Sendmail's danemilter (in its own directory) takes its one
			// daemon port, Name=MTA, as inbound.
			daemon := "MX"
			if filepath.Base(dir) == "sendmail" {
				daemon = "MTA"
			}
			return in.writeConfig(t, dir, milterPort, daemon, "reject")
		},
		postfixServices: []postfixService{
			{name: "postfix MX smtpd", addr: in.mx, conf: in.mx + ` inet n - n - - smtpd
  -o syslog_name=postfix/mx -o milter_macro_daemon_name=MX
`},
			{name: "postfix MX smtpd (hold)", addr: in.mxHold, conf: in.mxHold + fmt.Sprintf(` inet n - n - - smtpd
  -o syslog_name=postfix/mxhold -o milter_macro_daemon_name=MX -o smtpd_milters=inet:127.0.0.1:%d
`, holdMilterPort)},
		},
		sendmail: true,
	})
	holdDir := mkdirAll(t, filepath.Join(e.dir, "hold"))
	in.holdLog = filepath.Join(holdDir, "danemilter.log")
	startDanemilter(t, e.bin, in.writeConfig(t, holdDir, holdMilterPort, "MX", "hold"), in.holdLog, holdMilterPort)
	in.requireDNS(t)
	in.makeMessages(t)
	t.Logf("inbound environment ready after %v", time.Since(e.started).Round(time.Millisecond))

	// e.mtas: Postfix, then Sendmail. The subtests of Postfix share its
	// environment and run in parallel.
	pf := in.forMTA(e.mtas[0])
	t.Run("postfix", func(t *testing.T) {
		parallel := func(name string, f func(t *testing.T)) { runParallel(t, name, f) }
		for _, c := range pf.cases() {
			parallel("mx/"+c.name, func(t *testing.T) { pf.testCase(t, pf.mx, c) })
		}
		parallel("mx/forged-and-foreign-results", pf.testForged)
		parallel("outbound/no-results-forged-removed", func(t *testing.T) { pf.testOutbound(t, pf.try) })
		parallel("local-submission/no-results-forged-removed", func(t *testing.T) { pf.testOutbound(t, pf.postfixSendmail) })
		parallel("require/unsigned-refused", pf.testRequireRefused)
		parallel("require/signed-passes", pf.testRequireSigned)
		parallel("require/dry-run-delivered", pf.testRequireDryRun)
		parallel("require/hold", pf.testRequireHold)
		parallel("require/bogus-tempfail", func(t *testing.T) { pf.testRequireDNS(t, pf.msgs["bogus"], "451 4.7.5") })
		parallel("require/indeterminate-tempfail", func(t *testing.T) { pf.testRequireDNS(t, pf.msgs["indeterminate"], "451 4.4.3") })
	})
	// The operator's tool on the same messages, through the same DNS:
	// what it says the daemon would add is what the daemon added.
	t.Run("cli-verify", func(t *testing.T) {
		for _, c := range pf.cliCases() {
			runParallel(t, c.name, func(t *testing.T) { pf.testCLI(t, c) })
		}
	})
	sm := in.forMTA(e.mtas[1])
	t.Run("sendmail", func(t *testing.T) {
		runParallel(t, "smime-detached", func(t *testing.T) { sm.testCase(t, sm.smtpMX(), sm.cases()[0]) })
		runParallel(t, "forged-and-foreign-results", sm.testForged)
		runParallel(t, "require/unsigned-refused", sm.testRequireRefused)
	})

	e.checkNoStrayCopies(t)
	for _, m := range e.mtas {
		in.forMTA(m).checkLog(t)
	}
	in.k.log = in.holdLog
	in.k.checkLog(t)
	t.Logf("inbound end to end test took %v", time.Since(e.started).Round(time.Millisecond))
}

// runParallel runs f as a subtest of t in parallel with its siblings.
func runParallel(t *testing.T, name string, f func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		f(t)
	})
}

// inboundEnv is the environment of TestInboundEndToEnd.
type inboundEnv struct {
	*env
	k      *keysEnv // for its record helpers and its log check
	mx     string   // Postfix smtpd whose mail is inbound
	mxHold string   // the same, with a danemilter that holds
	// holdLog is the output of the danemilter with require_action hold.
	holdLog string
	// S/MIME signers: alice (3 0 0), hashed (3 1 1), ta (issued by root,
	// 2 0 0 of root), mallory (signs with a certificate her record does
	// not name: malloryPublished), teller@bank.test, erin@broken.test
	// (bogus), dan@down.test (indeterminate).
	alice, hashed, ta, mallory, malloryPublished *user
	teller, erin, dan                            *user
	ivan                                         *user // plain.test: unsigned zone, SMIMEA 3 0 0 (insecure)
	root                                         *testCA
	// OpenPGP signers: bob (his key published), dave (signs with a key
	// other than daveOther, which his record holds).
	bob, dave, daveOther *pgpUser
	msgs                 map[string][]byte // messages made by makeMessages
	seq                  *atomic.Int64
}

// forMTA is a copy of the environment whose mail goes through m.
func (in *inboundEnv) forMTA(m *mta) *inboundEnv {
	c := *in
	c.env = in.env.forMTA(m)
	c.k = in.k.forMTA(m)
	return &c
}

// writeConfig writes the configuration of a danemilter of
// TestInboundEndToEnd: mail from daemon (the {daemon_name} macro) is
// inbound, bank.test, broken.test and down.test "require", one address of
// signer.test "require dry-run".
func (in *inboundEnv) writeConfig(t *testing.T, dir string, milterPort int, daemon, requireAction string) string {
	t.Helper()
	return daemonConfig{
		tables: fmt.Sprintf(`
[openpgp]
enabled = true

[direction]
inbound_daemons = [%q]

[inbound]
default = "report"
authserv_id = %q
require_action = %q

[inbound.senders]
"bank.test" = "require"
"broken.test" = "require"
"down.test" = "require"
"dryrun@signer.test" = "require dry-run"
`, daemon, inboundAuthservID, requireAction),
	}.write(t, dir, milterPort, in.dns.resolver())
}

// makeKeys makes the signers' keys and the records of signer.test (with
// "danemilter record", checked against an independent computation).
func (in *inboundEnv) makeKeys(t *testing.T) {
	t.Helper()
	keys := in.keys
	in.seq = new(atomic.Int64)
	in.alice = newUser(t, keys, "alice@signer.test")
	in.hashed = newUser(t, keys, "hashed@signer.test")
	in.root = newTestCA(t, keys, "root")
	in.ta = newCertUser(t, keys, "ta", "ta@signer.test", false, in.root)
	in.mallory = newCertUser(t, keys, "mallory", "mallory@signer.test", false, nil)
	in.malloryPublished = newCertUser(t, keys, "mallory-published", "mallory@signer.test", false, nil)
	in.teller = newUser(t, keys, "teller@bank.test")
	in.erin = newUser(t, keys, "erin@broken.test")
	in.dan = newUser(t, keys, "dan@down.test")
	in.ivan = newUser(t, keys, "ivan@plain.test")

	gnupg := mkdirPrivate(t, filepath.Join(in.dir, "gnupg"))
	in.bob = newPGPUser(t, filepath.Join(gnupg, "bob"), "Bob", "bob@signer.test", "future-default")
	in.dave = newPGPUser(t, filepath.Join(gnupg, "dave"), "Dave", "dave@signer.test", "future-default")
	in.daveOther = newPGPUser(t, filepath.Join(gnupg, "dave-other"), "Dave", "dave@signer.test", "future-default")

	in.k.smimea(t, in.hashed, "3", "1", "1")
	// DANE-TA (RFC 8162 §2 by RFC 6698 §2.1.1 usage 2): the record holds
	// the root; the signer's certificate chains to it.
	in.k.smimea(t, &user{addr: in.ta.addr, cert: in.root.cert, certFile: in.root.certFile}, "2", "0", "0")
	in.k.smimea(t, in.malloryPublished, "3", "0", "0")
	in.k.openpgpkey(t, in.bob)
	in.k.openpgpkey(t, in.daveOther)
}

// requireDNS checks with dig that Unbound answers each sender's records as
// the test needs: secure, bogus, or not at all.
func (in *inboundEnv) requireDNS(t *testing.T) {
	t.Helper()
	in.dns.requireSecure(t, []*user{in.alice, in.teller}, []string{"eve@signer.test"})
	for owner, rrtype := range map[string]string{
		smimeaOwner(in.hashed.addr): "SMIMEA", smimeaOwner(in.ta.addr): "SMIMEA", smimeaOwner(in.mallory.addr): "SMIMEA",
		openpgpkeyOwner(in.bob.addr): "OPENPGPKEY", openpgpkeyOwner(in.dave.addr): "OPENPGPKEY",
	} {
		r, err := in.dns.dig(t, rrtype, owner)
		if err != nil || r.status != "NOERROR" || !r.has("ad") || !regexp.MustCompile(`\sIN\s+`+rrtype+`\s`).MatchString(r.answer) {
			t.Fatalf("precondition: no DNSSEC-validated %s at %s: %v\n%s", rrtype, owner, err, r.answer)
		}
	}
	r, err := in.dns.dig(t, "SMIMEA", smimeaOwner(in.ivan.addr))
	if err != nil || r.status != "NOERROR" || r.has("ad") || !smimeaAnswer.MatchString(r.answer) {
		t.Fatalf("precondition: want the SMIMEA record of %s without the AD bit (insecure): %v\n%s", in.ivan.addr, err, r.answer)
	}
	r, err = in.dns.dig(t, "SMIMEA", smimeaOwner(in.erin.addr))
	if err != nil || r.status != "SERVFAIL" || digEDE.FindString(r.answer) == "" {
		t.Fatalf("precondition: want SERVFAIL with an Extended DNS Error (bogus) for %s: %v\n%s", in.erin.addr, err, r.answer)
	}
	r, err = in.dns.dig(t, "SMIMEA", smimeaOwner(in.dan.addr))
	if err == nil && r.status != "SERVFAIL" {
		t.Fatalf("precondition: want SERVFAIL or no answer (indeterminate) for %s:\n%s", in.dan.addr, r.answer)
	}
}

// signedEntity is the MIME entity every signer signs: CRLF, a line that
// starts with a dot (SMTP dot-stuffing), and trailing white space.
const signedEntity = "Content-Type: text/plain; charset=us-ascii\r\n" +
	"Content-Transfer-Encoding: 7bit\r\n\r\n" +
	"The transfer of 1000 EUR is approved for Friday.\r\n" +
	".A line that starts with a dot.\r\n" +
	"Trailing white space here:  \r\n" +
	"-- \r\nSigned mail test\r\n"

// outerHeader is a message's header above its MIME part.
func outerHeader(from, subject string) string {
	local, domain, _ := strings.Cut(from, "@")
	return "From: " + local + " <" + from + ">\r\nTo: <" + inboundRcpt + ">\r\nSubject: " + subject + "\r\n" +
		"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "." + local + "@" + domain + ">\r\n"
}

// smimeSigned is entity signed by u with openssl cms -sign: detached
// (multipart/signed) or opaque (application/pkcs7-mime signed-data). Its
// output begins with MIME-Version and the Content-* fields. extra are more
// certificates to include (-certfile).
func (in *inboundEnv) smimeSigned(t *testing.T, u *user, entity string, opaque bool, extra string) []byte {
	t.Helper()
	f, err := os.CreateTemp(in.dir, "entity-*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(entity); err != nil {
		t.Fatal(err)
	}
	f.Close()
	argv := []string{mustLookPath(t, "openssl"), "cms", "-sign", "-binary", "-crlfeol", "-md", "sha256",
		"-in", f.Name(), "-signer", u.certFile, "-inkey", u.keyFile}
	if opaque {
		argv = append(argv, "-nodetach")
	}
	if extra != "" {
		argv = append(argv, "-certfile", extra)
	}
	return toCRLF(run(t, "", 30*time.Second, argv...))
}

// pgpSigned is entity signed by p with gpg --detach-sign, as RFC 3156 §5
// multipart/signed: the signed part is entity exactly, CRLF.
func pgpSigned(t *testing.T, p *pgpUser, entity string) []byte {
	t.Helper()
	f := filepath.Join(p.home, "entity.txt")
	writeFile(t, f, []byte(entity), 0o600)
	sig := p.gpg(t, "--armor", "--detach-sign", "--digest-algo", "SHA256", "--local-user", p.fpr, "--output", "-", f)
	return []byte("MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"" + pgpBoundary + "\"\r\n\r\n" +
		"This is an OpenPGP/MIME signed message (RFC 3156).\r\n" +
		"--" + pgpBoundary + "\r\n" + entity +
		"\r\n--" + pgpBoundary + "\r\n" +
		"Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n\r\n" +
		string(toCRLF(bytes.TrimRight(sig, "\n"))) + "\r\n" +
		"\r\n--" + pgpBoundary + "--\r\n")
}

const pgpBoundary = "pgp-signed-boundary"

// nestedInMixed puts a signed MIME entity (MIME-Version first, as openssl
// writes it) as the first part of a multipart/mixed with a footer after
// it, as a mailing list might.
func nestedInMixed(t *testing.T, signed []byte) []byte {
	t.Helper()
	part, ok := bytes.CutPrefix(signed, []byte("MIME-Version: 1.0\r\n"))
	if !ok {
		t.Fatalf("openssl output does not start with MIME-Version:\n%s", clip(signed, 300))
	}
	return []byte("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mixed-outer\"\r\n\r\n" +
		"--mixed-outer\r\n" + string(part) + "\r\n--mixed-outer\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n\r\nA footer added after signing.\r\n" +
		"--mixed-outer--\r\n")
}

// tamperText changes "Friday" to "Monday" once, in the signed text.
func tamperText(t *testing.T, msg []byte) []byte {
	t.Helper()
	if !bytes.Contains(msg, []byte("Friday")) {
		t.Fatalf("nothing to tamper with:\n%s", clip(msg, 600))
	}
	return bytes.Replace(msg, []byte("Friday"), []byte("Monday"), 1)
}

// tamperOpaque changes "Friday" to "Monday" inside the base64 signed-data
// of an opaque S/MIME entity: the DER stays well formed, the digest no
// longer matches.
func tamperOpaque(t *testing.T, entity []byte) []byte {
	t.Helper()
	head, body, ok := bytes.Cut(entity, []byte("\r\n\r\n"))
	if !ok {
		t.Fatal("opaque entity without a body")
	}
	der, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(body), nil)))
	if err != nil {
		t.Fatalf("opaque body: %v", err)
	}
	der = tamperText(t, der)
	enc := base64.StdEncoding.EncodeToString(der)
	var b bytes.Buffer
	b.Write(head)
	b.WriteString("\r\n\r\n")
	for len(enc) > 64 {
		b.WriteString(enc[:64] + "\r\n")
		enc = enc[64:]
	}
	b.WriteString(enc + "\r\n")
	return b.Bytes()
}

// makeMessages signs and builds the messages of the test.
func (in *inboundEnv) makeMessages(t *testing.T) {
	t.Helper()
	m := map[string][]byte{}
	alice := in.smimeSigned(t, in.alice, signedEntity, false, "")
	aliceOpaque := in.smimeSigned(t, in.alice, signedEntity, true, "")
	msg := func(from, subject string, entity []byte) []byte {
		return append([]byte(outerHeader(from, subject)), entity...)
	}
	m["smime-detached"] = msg(in.alice.addr, "detached", alice)
	m["smime-opaque"] = msg(in.alice.addr, "opaque", aliceOpaque)
	m["smime-nested-in-mixed"] = msg(in.alice.addr, "nested", nestedInMixed(t, alice))
	m["smime-3-1-1"] = msg(in.hashed.addr, "hashed", in.smimeSigned(t, in.hashed, signedEntity, false, ""))
	// The root is not in the signature: the 2 0 0 record carries it
	// (RFC 7671 §5.2.2).
	m["smime-dane-ta-2-0-0"] = msg(in.ta.addr, "dane-ta", in.smimeSigned(t, in.ta, signedEntity, false, ""))
	m["smime-tampered-detached"] = tamperText(t, msg(in.alice.addr, "tampered detached", alice))
	m["smime-tampered-opaque"] = msg(in.alice.addr, "tampered opaque", tamperOpaque(t, aliceOpaque))
	m["smime-from-mismatch"] = msg("eve@signer.test", "from mismatch", alice)
	m["smime-record-mismatch"] = msg(in.mallory.addr, "record mismatch", in.smimeSigned(t, in.mallory, signedEntity, false, ""))
	m["smime-insecure-zone"] = msg(in.ivan.addr, "insecure", in.smimeSigned(t, in.ivan, signedEntity, false, ""))
	m["unsigned"] = msg(in.alice.addr, "unsigned", []byte("MIME-Version: 1.0\r\n"+signedEntity))
	bob := pgpSigned(t, in.bob, signedEntity)
	m["openpgp"] = msg(in.bob.addr, "pgp", bob)
	m["openpgp-tampered"] = tamperText(t, msg(in.bob.addr, "pgp tampered", bob))
	m["openpgp-record-mismatch"] = msg(in.dave.addr, "pgp record mismatch", pgpSigned(t, in.dave, signedEntity))
	m["openpgp-from-mismatch"] = msg("eve@signer.test", "pgp from mismatch", bob)
	m["bank-unsigned"] = msg(in.teller.addr, "bank unsigned", []byte("MIME-Version: 1.0\r\n"+signedEntity))
	m["bank-signed"] = msg(in.teller.addr, "bank signed", in.smimeSigned(t, in.teller, signedEntity, false, ""))
	m["dryrun-unsigned"] = msg("dryrun@signer.test", "dry run unsigned", []byte("MIME-Version: 1.0\r\n"+signedEntity))
	m["bogus"] = msg(in.erin.addr, "bogus", in.smimeSigned(t, in.erin, signedEntity, false, ""))
	m["indeterminate"] = msg(in.dan.addr, "indeterminate", in.smimeSigned(t, in.dan, signedEntity, false, ""))
	// The one with Authentication-Results fields: forged ones of ours (RFC
	// 8601 §5: as written, with a version, in other case, after a
	// comment, folded, quoted, under a lower-case field name, and a
	// DANE-OpenPGP-Result), above the signed detached message, and a
	// foreign one.
	m["forged"] = append([]byte("Authentication-Results: "+inboundAuthservID+"; smime=pass (forged) body.smime-identifier=alice@signer.test\r\n"+
		"Authentication-Results: MX.Local.Test 1; smime=pass (forged, other case)\r\n"+
		"authentication-results: "+inboundAuthservID+"; smime=pass (forged, field name in lower case)\r\n"+
		"Authentication-Results: (forged, comment first) "+inboundAuthservID+"; smime=pass\r\n"+
		"Authentication-Results:\r\n "+inboundAuthservID+";\r\n smime=pass (forged, folded)\r\n"+
		"Authentication-Results: \""+inboundAuthservID+"\"; smime=pass (forged, quoted)\r\n"+
		openpgpResultField+": "+inboundAuthservID+"; openpgp=pass (forged) policy.dane=bound\r\n"+
		"Authentication-Results: other.test; dkim=pass header.d=signer.test\r\n"), m["smime-detached"]...)
	// The originals verify before they are sent: what fails later is
	// what the path did.
	for _, name := range []string{"smime-detached", "smime-opaque", "smime-3-1-1", "smime-dane-ta-2-0-0", "smime-record-mismatch"} {
		if err := opensslVerify(t, in.dir, m[name]); err != nil {
			t.Fatalf("precondition: the message %s as made does not verify: %v", name, err)
		}
	}
	if err := gpgVerify(t, in.bob, m["openpgp"]); err != nil {
		t.Fatalf("precondition: the PGP/MIME message as made does not verify: %v", err)
	}
	in.msgs = m
}

// inboundCase is one message sent to the local user and what the
// verification results must say of it.
type inboundCase struct {
	name string
	// method is "smime" (Authentication-Results, RFC 7281) or "openpgp"
	// (danemilter's DANE-OpenPGP-Result, verify package doc).
	method string
	result string // the result word
	// binding, when set, is the policy.dane property: how the signer is
	// bound to the From address (verify.Binding).
	binding string
	// record, when set, is text the field must hold: the record that
	// bound the signer ("SMIMEA 3 1 1").
	record string
	// verifies: the delivered copy must still verify (openssl cms
	// -verify -noverify, gpg --verify).
	verifies bool
	// from is the message's From address, which a pass must name as the
	// signer (body.smime-identifier, body.openpgp-identifier); wantResult
	// reads it from the message when empty.
	from string
}

func (in *inboundEnv) cases() []inboundCase {
	return []inboundCase{
		{name: "smime-detached", method: "smime", result: "pass", binding: "bound", record: "SMIMEA 3 0 0", verifies: true},
		{name: "smime-opaque", method: "smime", result: "pass", binding: "bound", record: "SMIMEA 3 0 0", verifies: true},
		{name: "smime-nested-in-mixed", method: "smime", result: "policy", binding: "bound", record: "SMIMEA 3 0 0"}, // a footer beside the signed part: bound, but covers only part of the message
		{name: "smime-3-1-1", method: "smime", result: "pass", binding: "bound", record: "SMIMEA 3 1 1", verifies: true},
		{name: "smime-dane-ta-2-0-0", method: "smime", result: "pass", binding: "bound", record: "SMIMEA 2 0 0", verifies: true},
		{name: "smime-tampered-detached", method: "smime", result: "fail", binding: "not-checked"},
		{name: "smime-tampered-opaque", method: "smime", result: "fail", binding: "not-checked"},
		// A valid signature that is not the From address's, or whose
		// record names another certificate: never a pass (issue 13 item
		// 3), "policy" (verify.ResultPolicy).
		{name: "smime-from-mismatch", method: "smime", result: "policy", binding: "not-checked", verifies: true},
		{name: "smime-record-mismatch", method: "smime", result: "policy", binding: "mismatch", verifies: true},
		// A record in an unsigned zone binds nothing (RFC 8162 §6).
		{name: "smime-insecure-zone", method: "smime", result: "policy", binding: "no-record", verifies: true},
		// Checked and unsigned: smime=none (verify package doc).
		{name: "unsigned", method: "smime", result: "none"},
		{name: "openpgp", method: "openpgp", result: "pass", binding: "bound", record: "OPENPGPKEY", verifies: true},
		{name: "openpgp-tampered", method: "openpgp", result: "fail", binding: "not-checked"},
		// A PGP/MIME signer key comes from DNS only: records of the From
		// address that hold other keys are a mismatch ("policy"); without
		// a record the signature cannot be checked at all ("neutral").
		// Neither is ever a pass.
		{name: "openpgp-record-mismatch", method: "openpgp", result: "policy", binding: "mismatch"},
		{name: "openpgp-from-mismatch", method: "openpgp", result: "neutral", binding: "no-record", verifies: true},
	}
}

// cliCases are cases for "danemilter verify": every message case, and
// the signed messages whose records are bogus or cannot be had, which the
// daemon refuses for their "require" senders and the tool reports.
func (in *inboundEnv) cliCases() []inboundCase {
	return append(in.cases(),
		inboundCase{name: "bogus", method: "smime", result: "permerror", binding: "bogus"},
		inboundCase{name: "indeterminate", method: "smime", result: "temperror", binding: "indeterminate"},
		inboundCase{name: "bank-signed", method: "smime", result: "pass", binding: "bound", record: "SMIMEA 3 0 0"},
		inboundCase{name: "bank-unsigned", method: "smime", result: "none"},
	)
}

// testCLI runs "danemilter verify" on c's message as sent, with the
// daemon's configuration: its exit code (0 pass, 2 not checkable, 1
// otherwise) and the header fields it says the daemon would add must be
// what c wants, as for the fields the daemon added.
func (in *inboundEnv) testCLI(t *testing.T, c inboundCase) {
	orig := in.msgs[c.name]
	f := filepath.Join(in.dir, "cli-"+c.name+".eml")
	writeFile(t, f, orig, 0o644)
	out, errOut, err := runErr("", time.Minute, in.bin, "verify", "--config", in.config, f)
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("danemilter verify: %v\n%s", err, errOut)
	}
	want := 1
	switch c.result {
	case "pass":
		want = 0
	case "temperror":
		want = 2
	}
	if code != want {
		t.Errorf("danemilter verify %s: exit %d, want %d\n%s", c.name, code, want, out)
	}
	_, fields, ok := strings.Cut(string(out), "header fields the daemon would add")
	if _, fields, ok = strings.Cut(fields, "\n"); !ok {
		t.Fatalf("danemilter verify printed no header fields:\n%s", out)
	}
	ours, _ := authResults(t, append(toCRLF([]byte(fields)), "\r\n"...))
	c.from = fromAddr(t, orig)
	in.wantResult(t, ours, c)
	if t.Failed() {
		t.Logf("danemilter verify %s:\n%s", c.name, out)
	}
}

// marker makes a message recognizable at the sink; unlike env.marker it
// may be called from parallel subtests.
func (in *inboundEnv) marker(t *testing.T) string {
	return fmt.Sprintf("%s-%d-%d", strings.NewReplacer("/", "-", ".", "-").Replace(t.Name()), os.Getpid(), in.seq.Add(1))
}

// try submits msg to the local user through the smtpd at server.
func (in *inboundEnv) try(t *testing.T, server string, msg []byte) attempt {
	t.Helper()
	a := attempt{marker: in.marker(t)}
	a.transcript, a.err = in.sendTo(t, server, []string{inboundRcpt}, withMarker(msg, a.marker))
	a.rcpt, a.data = parseSwaks(a.transcript)
	return a
}

// postfixSendmail submits msg to the local user with Postfix's sendmail
// (postdrop, pickup, cleanup: non_smtpd_milters); server is not used. The
// returned attempt's data is "250" when sendmail took the message.
func (in *inboundEnv) postfixSendmail(t *testing.T, _ string, msg []byte) attempt {
	t.Helper()
	a := attempt{marker: in.marker(t)}
	// Local line ends; -i: a lone "." is text; root may name any -C.
	lf := bytes.ReplaceAll(withMarker(msg, a.marker), []byte("\r\n"), []byte("\n"))
	sendmail := strings.TrimSpace(string(run(t, "", 30*time.Second, mustLookPath(t, "postconf"), "-c", in.postfix.confDir, "-h", "sendmail_path")))
	argv := []string{sendmail, "-C", in.postfix.confDir, "-i", "-f", sender, "--", inboundRcpt}
	out, errOut, err := runStdin(lf, 60*time.Second, argv...)
	a.transcript, a.err = fmt.Sprintf("%s\n%s%s", strings.Join(argv, " "), out, errOut), err
	if err == nil {
		a.data = "250 (sendmail)"
	}
	return a
}

// deliverVia sends msg to the local user through server and returns the
// one copy the sink got.
func (in *inboundEnv) deliverVia(t *testing.T, server string, msg []byte) []byte {
	t.Helper()
	a := in.try(t, server, msg)
	a.wantQueued(t)
	return in.received(t, a)
}

// received waits for the one copy of a's message at the sink.
func (in *inboundEnv) received(t *testing.T, a attempt) []byte {
	t.Helper()
	ds, err := in.sink.take(a.marker, []string{inboundRcpt}, 30*time.Second)
	if err != nil {
		t.Fatalf("%v\nswaks:\n%s", err, a.transcript)
	}
	if len(ds) != 1 {
		t.Fatalf("%d copies delivered, want 1", len(ds))
	}
	return ds[0].data
}

// testCase sends one case's message through server and checks what the
// user gets.
func (in *inboundEnv) testCase(t *testing.T, server string, c inboundCase) {
	orig := in.msgs[c.name]
	got := in.deliverVia(t, server, orig)
	ours, _ := authResults(t, got)
	c.from = fromAddr(t, orig)
	in.wantResult(t, ours, c)
	wantBodyKept(t, got, orig)
	if c.verifies {
		in.wantVerifies(t, c.method, got)
	}
}

// wantResult checks that our fields say what c wants: one
// Authentication-Results field, whose smime result is c's for S/MIME and
// "none" for OpenPGP; one DANE-OpenPGP-Result field for OpenPGP, none for
// S/MIME.
func (in *inboundEnv) wantResult(t *testing.T, ours []arField, c inboundCase) {
	t.Helper()
	t.Logf("our fields: %q", raws(ours))
	var ar, pgp []arField
	for _, f := range ours {
		if strings.EqualFold(f.name, openpgpResultField) {
			pgp = append(pgp, f)
		} else {
			ar = append(ar, f)
		}
	}
	wantPGP := 0
	if c.method == "openpgp" {
		wantPGP = 1
	}
	if len(ar) != 1 || len(pgp) != wantPGP {
		t.Errorf("%d Authentication-Results and %d %s fields of %s, want 1 and %d: %q",
			len(ar), len(pgp), openpgpResultField, inboundAuthservID, wantPGP, raws(ours))
	}
	check := func(fs []arField, method, result, binding, record string) {
		t.Helper()
		var found []string
		for _, f := range fs {
			for _, r := range f.results {
				if r.method != method {
					continue
				}
				found = append(found, r.result)
				if r.result != result {
					continue
				}
				if binding != "" && r.props["policy.dane"] != binding {
					t.Errorf("%s=%s with policy.dane=%q, want %q: %q", method, r.result, r.props["policy.dane"], binding, f.raw)
				}
				if record != "" && !strings.Contains(collapseSpace(f.raw), record) {
					t.Errorf("%s=%s does not name the record that binds the signer (%q): %q", method, r.result, record, f.raw)
				}
				if id := r.props["body."+method+"-identifier"]; result == "pass" && c.from != "" && !strings.EqualFold(id, c.from) {
					t.Errorf("%s=pass names the signer %q, want the From address %s: %q", method, id, c.from, f.raw)
				}
			}
		}
		if len(found) != 1 || found[0] != result {
			t.Errorf("%s results %q, want [%s]: %q", method, found, result, raws(ours))
		}
	}
	if c.method == "openpgp" {
		check(ar, "smime", "none", "", "")
		check(pgp, "openpgp", c.result, c.binding, c.record)
		return
	}
	check(ar, c.method, c.result, c.binding, c.record)
}

// testForged: a forged Authentication-Results of our authserv-id is gone
// (RFC 8601 §5), a foreign one is kept, ours is added above the rest.
func (in *inboundEnv) testForged(t *testing.T) {
	orig := in.msgs["forged"]
	got := in.deliverVia(t, in.smtpMX(), orig)
	ours, foreign := authResults(t, got)
	in.wantResult(t, ours, inboundCase{method: "smime", result: "pass", binding: "bound", from: in.alice.addr})
	for _, f := range ours {
		if strings.Contains(f.raw, "forged") {
			t.Errorf("a forged field is still there: %q", f.raw)
		}
	}
	wantForeign(t, foreign)
	fields, _ := splitMessage(t, got)
	var names []string
	for _, f := range fields {
		names = append(names, fieldName(f))
	}
	t.Logf("header fields as delivered: %s", strings.Join(names, ", "))
	if len(ours) > 0 && len(foreign) > 0 && ours[0].index > foreign[0].index {
		t.Errorf("our field (header field %d) is below the foreign one (field %d), want it on top (RFC 8601 §1)", ours[0].index, foreign[0].index)
	}
	wantBodyKept(t, got, orig)
	in.wantVerifies(t, "smime", got)
}

// smtpMX is the inbound listener of the current MTA: Postfix's MX smtpd,
// or Sendmail's daemon port.
func (in *inboundEnv) smtpMX() string {
	if in.cur != nil && in.cur.sendmail != nil {
		return in.cur.smtp
	}
	return in.mx
}

// testOutbound: the forged message submitted as outbound mail (through
// the outbound smtpd, or Postfix's sendmail: a local submission) gets no
// Authentication-Results of ours, and the forged ones are removed all the
// same; the foreign one is kept.
func (in *inboundEnv) testOutbound(t *testing.T, submit func(t *testing.T, server string, msg []byte) attempt) {
	orig := in.msgs["forged"]
	a := submit(t, in.postfix.smtp, orig)
	a.wantQueued(t)
	got := in.received(t, a)
	ours, foreign := authResults(t, got)
	if len(ours) != 0 {
		t.Errorf("outbound mail has Authentication-Results of %s: %q", inboundAuthservID, raws(ours))
	}
	wantForeign(t, foreign)
	wantBodyKept(t, got, orig)
	in.wantVerifies(t, "smime", got)
}

func wantForeign(t *testing.T, foreign []arField) {
	t.Helper()
	if len(foreign) != 1 || foreign[0].authserv != "other.test" || len(foreign[0].results) != 1 ||
		foreign[0].results[0].method != "dkim" || foreign[0].results[0].result != "pass" {
		t.Errorf("foreign Authentication-Results %q, want the one other.test dkim=pass field kept", raws(foreign))
	}
}

// testRequireRefused: bank.test is "require": its unsigned message is
// refused at the end of data with 550 5.7.x, and nothing is delivered.
func (in *inboundEnv) testRequireRefused(t *testing.T) {
	a := in.try(t, in.smtpMX(), in.msgs["bank-unsigned"])
	if !regexp.MustCompile(`^550[ -]5\.7\.\d+`).MatchString(a.data) {
		t.Errorf("end of data: %q, want 550 5.7.x\n%s", a.data, a.transcript)
	} else {
		t.Logf("end of data: %s", a.data)
	}
	if ds := in.sink.rest(a.marker, 2*time.Second); len(ds) > 0 {
		t.Errorf("%d copies of a refused message delivered", len(ds))
	}
}

// testRequireSigned: a message from bank.test signed by the key its DNS
// publishes is delivered with smime=pass.
func (in *inboundEnv) testRequireSigned(t *testing.T) {
	orig := in.msgs["bank-signed"]
	got := in.deliverVia(t, in.mx, orig)
	ours, _ := authResults(t, got)
	in.wantResult(t, ours, inboundCase{method: "smime", result: "pass", binding: "bound", record: "SMIMEA 3 0 0", from: in.teller.addr})
	wantBodyKept(t, got, orig)
}

// testRequireDryRun: dryrun@signer.test is "require dry-run": its
// unsigned message is delivered, with a trace header that says what
// would have been done.
func (in *inboundEnv) testRequireDryRun(t *testing.T) {
	orig := in.msgs["dryrun-unsigned"]
	got := in.deliverVia(t, in.mx, orig)
	ours, _ := authResults(t, got)
	in.wantResult(t, ours, inboundCase{method: "smime", result: "none"})
	tr := parseHeader(t, got)["X-Danemilter"]
	if len(tr) != 1 || !strings.Contains(tr[0], "dry-run") {
		t.Errorf("X-Danemilter %q, want one field naming the dry run", tr)
	} else {
		t.Logf("X-Danemilter: %s", tr[0])
	}
	wantBodyKept(t, got, orig)
}

// testRequireHold: with require_action "hold", bank.test's unsigned
// message is accepted and lands in Postfix's hold queue, not at the sink.
func (in *inboundEnv) testRequireHold(t *testing.T) {
	a := in.try(t, in.mxHold, in.msgs["bank-unsigned"])
	a.wantQueued(t)
	conf := in.postfix.confDir
	var id string
	deadline := time.Now().Add(15 * time.Second)
	for id == "" && time.Now().Before(deadline) {
		out := run(t, "", 30*time.Second, mustLookPath(t, "postqueue"), "-c", conf, "-j")
		for _, l := range bytes.Split(out, []byte("\n")) {
			var q struct {
				QueueName string `json:"queue_name"`
				QueueID   string `json:"queue_id"`
			}
			if len(bytes.TrimSpace(l)) == 0 || json.Unmarshal(l, &q) != nil || q.QueueName != "hold" {
				continue
			}
			content, _, err := runErr("", 30*time.Second, mustLookPath(t, "postcat"), "-c", conf, "-q", q.QueueID)
			if err == nil && bytes.Contains(content, []byte(a.marker)) {
				id = q.QueueID
			}
		}
		if id == "" {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if id == "" {
		t.Errorf("the message is not in Postfix's hold queue (postqueue -j shows %s)",
			run(t, "", 30*time.Second, mustLookPath(t, "postqueue"), "-c", conf, "-j"))
	} else {
		t.Logf("held as %s", id)
		run(t, "", 30*time.Second, mustLookPath(t, "postsuper"), "-c", conf, "-d", id, "hold")
	}
	if ds := in.sink.rest(a.marker, time.Second); len(ds) > 0 {
		t.Errorf("%d copies of a held message delivered", len(ds))
	}
}

// testRequireDNS: a signed message from a "require" sender whose records
// cannot be had (bogus, indeterminate) is refused for now with want
// (e.g. "451 4.7.5"), never passed and never refused for good.
func (in *inboundEnv) testRequireDNS(t *testing.T, msg []byte, want string) {
	a := in.try(t, in.mx, msg)
	if !strings.HasPrefix(a.data, want) {
		t.Errorf("end of data: %q, want %q...\n%s", a.data, want, a.transcript)
	} else {
		t.Logf("end of data: %s", a.data)
	}
	if ds := in.sink.rest(a.marker, time.Second); len(ds) > 0 {
		t.Errorf("%d copies of a refused message delivered", len(ds))
	}
}

// wantBodyKept checks that the body the user got is the body sent, byte
// for byte: the milter never touches the signed part.
func wantBodyKept(t *testing.T, got, orig []byte) {
	t.Helper()
	_, gb := splitMessage(t, got)
	_, ob := splitMessage(t, orig)
	if !bytes.Equal(gb, ob) {
		t.Errorf("the body was changed on the way:\n%s", firstDiff(gb, ob))
	}
}

// wantVerifies checks that the delivered message still verifies with the
// independent tool of its method.
func (in *inboundEnv) wantVerifies(t *testing.T, method string, msg []byte) {
	t.Helper()
	var err error
	if method == "openpgp" {
		err = gpgVerify(t, in.bob, msg)
	} else {
		err = opensslVerify(t, in.dir, msg)
	}
	if err != nil {
		t.Errorf("the delivered copy no longer verifies: %v", err)
	}
}

// opensslVerify runs openssl cms -verify -noverify on a message: the
// signature, not the chain.
func opensslVerify(t *testing.T, dir string, msg []byte) error {
	t.Helper()
	f, err := os.CreateTemp(dir, "verify-*.eml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(msg); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, errOut, err := runErr("", 30*time.Second, mustLookPath(t, "openssl"), "cms", "-verify", "-noverify", "-in", f.Name(), "-out", os.DevNull)
	if err != nil {
		return fmt.Errorf("openssl cms -verify -noverify: %v\n%s%s", err, out, errOut)
	}
	return nil
}

// gpgVerify runs gpg --verify, in p's home (it holds the key of every
// PGP/MIME signer whose copy must verify), on the signed part and the
// signature of a message this test built (pgpSigned).
func gpgVerify(t *testing.T, p *pgpUser, msg []byte) error {
	t.Helper()
	delim := []byte("\r\n--" + pgpBoundary + "\r\n")
	_, rest, ok := bytes.Cut(msg, []byte("--"+pgpBoundary+"\r\n"))
	if !ok {
		return fmt.Errorf("no multipart/signed with boundary %s", pgpBoundary)
	}
	signed, rest, ok := bytes.Cut(rest, delim)
	if !ok {
		return fmt.Errorf("no second part")
	}
	_, sig, ok := bytes.Cut(rest, []byte("\r\n\r\n"))
	if !ok {
		return fmt.Errorf("no signature part body")
	}
	sig, _, _ = bytes.Cut(sig, []byte("\r\n--"+pgpBoundary+"--"))
	dir, err := os.MkdirTemp(p.home, "verify-")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "signed"), signed, 0o600)
	writeFile(t, filepath.Join(dir, "signature.asc"), sig, 0o600)
	_, errOut, err := runErr("", time.Minute, mustLookPath(t, "gpg"), "--batch", "--no-tty", "--homedir", p.home, "--status-fd", "2",
		"--verify", filepath.Join(dir, "signature.asc"), filepath.Join(dir, "signed"))
	if err != nil || !bytes.Contains(errOut, []byte("[GNUPG:] GOODSIG")) {
		return fmt.Errorf("gpg --verify: %v\n%s", err, errOut)
	}
	return nil
}

// openpgpResultField is danemilter's field for PGP/MIME results, in the
// syntax of Authentication-Results (verify package doc).
const openpgpResultField = "DANE-OpenPGP-Result"

// arField is one Authentication-Results (or DANE-OpenPGP-Result) field of
// a message.
type arField struct {
	name     string
	index    int    // its position among the message's header fields
	raw      string // as written
	authserv string // lower case
	results  []arResult
}

// arResult is one resinfo of a field (RFC 8601 §2.2).
type arResult struct {
	method, result string
	props          map[string]string
}

// authResults parses the Authentication-Results fields of msg, with
// go-msgauth's authres after removing comments (which it does not know),
// and the DANE-OpenPGP-Result fields, and returns ours (authserv-id inboundAuthservID, in any case) and the
// others.
func authResults(t *testing.T, msg []byte) (ours, others []arField) {
	t.Helper()
	fields, _ := splitMessage(t, msg)
	for i, f := range fields {
		name := fieldName(f)
		if !strings.EqualFold(name, "Authentication-Results") && !strings.EqualFold(name, openpgpResultField) {
			continue
		}
		_, value, _ := strings.Cut(f, ":")
		value = strings.Join(strings.Fields(value), " ")
		id, results, err := authres.Parse(withoutComments(value))
		if err != nil {
			t.Errorf("cannot parse %q: %v", f, err)
		}
		a := arField{name: name, index: i, raw: f, authserv: strings.ToLower(strings.Trim(id, `"`))}
		for _, r := range results {
			a.results = append(a.results, resultOf(r))
		}
		if a.authserv == inboundAuthservID {
			ours = append(ours, a)
		} else {
			others = append(others, a)
		}
	}
	return ours, others
}

// withoutComments removes RFC 5322 comments from a header value and
// replaces white space and ";" inside quoted strings, which authres.Parse
// would split at, by "_".
func withoutComments(v string) string {
	var b strings.Builder
	depth, quoted, escaped := 0, false, false
	for _, r := range v {
		switch {
		case escaped:
			escaped = false
			if depth == 0 {
				b.WriteRune(r)
			}
			continue
		case r == '\\' && (quoted || depth > 0):
			escaped = true
			if depth == 0 {
				b.WriteRune(r)
			}
			continue
		case quoted:
			if r == '"' {
				quoted = false
			} else if r == ' ' || r == '\t' || r == ';' {
				r = '_'
			}
		case r == '"' && depth == 0:
			quoted = true
		case r == '(':
			depth++
			continue
		case r == ')' && depth > 0:
			depth--
			continue
		case depth > 0:
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// resultOf turns an authres result into method, result and properties.
func resultOf(r authres.Result) arResult {
	switch r := r.(type) {
	case *authres.GenericResult:
		return arResult{method: strings.ToLower(r.Method), result: string(r.Value), props: r.Params}
	case *authres.DKIMResult:
		return arResult{method: "dkim", result: string(r.Value), props: map[string]string{"header.d": r.Domain, "header.i": r.Identifier}}
	case *authres.SPFResult:
		return arResult{method: "spf", result: string(r.Value)}
	case *authres.DMARCResult:
		return arResult{method: "dmarc", result: string(r.Value)}
	case *authres.AuthResult:
		return arResult{method: "auth", result: string(r.Value)}
	}
	return arResult{method: fmt.Sprintf("%T", r)}
}

// fromAddr is the address of a message's From field.
func fromAddr(t *testing.T, msg []byte) string {
	t.Helper()
	a, err := mail.ParseAddress(parseHeader(t, msg).Get("From"))
	if err != nil {
		t.Fatalf("From of the test's own message: %v", err)
	}
	return a.Address
}

func raws(fs []arField) []string {
	var s []string
	for _, f := range fs {
		s = append(s, strings.TrimRight(f.raw, "\r\n"))
	}
	return s
}

// checkLog is keysEnv.checkLog for this environment's danemilters.
func (in *inboundEnv) checkLog(t *testing.T) {
	t.Helper()
	in.k.checkLog(t)
}
