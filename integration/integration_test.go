// Package integration is danemilter's end-to-end test with real parts, all
// on non-standard ports of 127.0.0.1 and in a temporary directory:
//
//   - NSD serves the zone secure.test, signed with ldns-keygen and
//     ldns-signzone, holding SMIMEA records (RFC 8162) "3 0 0 <certificate>"
//     for alice and bob and none for carol;
//   - Unbound validates it, with the zone's DS as its only trust anchor;
//   - "danemilter serve" asks Unbound;
//   - a private Postfix instance takes mail from swaks, passes it through
//     danemilter (smtpd_milters) and relays it to a small SMTP sink in the
//     test;
//   - openssl cms -decrypt proves each encrypted message readable by its
//     recipients, byte for byte;
//   - miltertest plays testdata/encrypt.lua against the daemon.
//
// TestPolicyEndToEnd (policy_test.go) adds, in its own environment, a zone
// with bogus SMIMEA records and an unsigned zone, levels dane and encrypt,
// split delivery through a milter-less Postfix listener, mail from
// Postfix's sendmail (non_smtpd_milters), policy map reloads and a stopped
// resolver.
//
// TestKeysEndToEnd (keys_test.go) adds, in its own environment, SMIMEA
// records of other usages, selectors and matching types (3 1 1 with an
// ECDSA P-256 certificate, 1 0 1 under a test root, a two-certificate
// rollover), an AES-GCM cipher override, OPENPGPKEY records of GnuPG keys
// (PGP/MIME decrypted with gpg), the format preference and a message split
// into an S/MIME and a PGP/MIME copy.
//
// TestLabelEndToEnd (label_test.go) proves that a message labelled as
// encrypted passes untouched only when it really is encrypted to the
// recipient's key.
//
// TestInboundEndToEnd (inbound_test.go) proves inbound verification (issue
// 13) in its own environment: mail signed by openssl cms -sign and gpg
// --detach-sign (and tampered, mis-addressed, unsigned, carrying forged
// Authentication-Results) comes in through a Postfix smtpd whose
// {daemon_name} is inbound, and through Sendmail, to a local user; the
// delivered copy carries the right Authentication-Results or
// DANE-OpenPGP-Result, no forged field, and the signed body unchanged.
// "require" senders are refused (550), held (Postfix's hold queue),
// deferred when DNS is bogus or unreachable (451), or announced in dry
// run; "danemilter verify" agrees with what the daemon added.
//
// Each test brings up its environment with newEnv and start (env_test.go)
// from an envSpec: its zones, its danemilter configuration, what Postfix
// adds, whether Sendmail runs too. Test keys and certificates come from
// pki_test.go; one go build of danemilter serves every test.
//
// The test needs root and the Debian packages of setup.sh. It skips without
// them, and under -short, unless DANEMILTER_INTEGRATION=1 is set, which
// turns a skip into a failure.
package integration

import (
	"bytes"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEndToEnd(t *testing.T) {
	e := newEnv(t)
	e.start(t, envSpec{
		zones: []zoneSpec{e.secureZone(t)},
		config: func(dir string, milterPort int, _ string) string {
			return writeConfig(t, dir, milterPort, e.dns.resolver())
		},
		sendmail: true,
	})
	e.dns.requireSecure(t, []*user{e.alice, e.bob}, []string{e.carol})

	t.Run("lookup", e.testLookup)
	e.eachMTA(t, func(t *testing.T, e *env) {
		for _, name := range []string{"plain.eml", "utf8-8bit.eml", "multipart-attachment.eml", "folded-headers.eml", "no-content-type.eml"} {
			t.Run("encrypt/"+name, func(t *testing.T) { e.testEncrypt(t, name) })
		}
		t.Run("mta-view", e.testMTAView)
		t.Run("two-recipients", e.testTwoRecipients)
		t.Run("no-record-plaintext", e.testNoRecord)
		t.Run("miltertest", e.testMiltertest)
		// Last: it stops the daemon (and starts it again).
		t.Run("milter-down-tempfail", e.testMilterDown)
	})
	t.Logf("end to end test took %v", time.Since(e.started).Round(time.Millisecond))
}

// testLookup checks the exit codes of "danemilter lookup": 0 when a usable
// key exists, 1 when none does.
func (e *env) testLookup(t *testing.T) {
	for _, c := range []struct {
		addr string
		want int
	}{{e.alice.addr, 0}, {e.bob.addr, 0}, {e.carol, 1}} {
		code, out := lookupExit(t, e.bin, e.config, c.addr)
		if code != c.want {
			t.Errorf("danemilter lookup %s: exit %d, want %d\n%s", c.addr, code, c.want, out)
		} else {
			t.Logf("danemilter lookup %s: exit %d\n%s", c.addr, code, out)
		}
	}
}

// marker makes a message of the test recognizable at the sink.
func (e *env) marker(t *testing.T) string {
	e.seq++
	return fmt.Sprintf("%s-%d-%d", strings.NewReplacer("/", "-", ".", "-").Replace(t.Name()), os.Getpid(), e.seq)
}

// withMarker puts "X-Integration-Test: marker" on top of a message; it is
// not a Content-* field, so the MIME entity stays the same.
func withMarker(msg []byte, marker string) []byte {
	return append([]byte("X-Integration-Test: "+marker+"\r\n"), msg...)
}

// send submits msg (CRLF line ends) through Postfix's smtpd with swaks. It
// returns swaks's transcript and its error (non-nil for any refusal).
func (e *env) send(t *testing.T, rcpts []string, msg []byte) (string, error) {
	t.Helper()
	return e.sendTo(t, e.smtpAddr(), rcpts, msg)
}

// sendTo is send through the smtpd at server.
func (e *env) sendTo(t *testing.T, server string, rcpts []string, msg []byte) (string, error) {
	t.Helper()
	// --no-data-fixup sends the file as it is, so the test decides every
	// byte: dot-stuffed (RFC 5321 §4.5.2) and ending with the "." line,
	// whose CRLF swaks adds. (With its fix-ups swaks would add an empty line
	// before the final dot.)
	var data bytes.Buffer
	for _, line := range bytes.SplitAfter(msg, []byte("\r\n")) {
		if bytes.HasPrefix(line, []byte(".")) {
			data.WriteByte('.')
		}
		data.Write(line)
	}
	data.WriteString(".")
	f, err := os.CreateTemp(e.dir, "data-*.eml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data.Bytes()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, errOut, err := runErr("", 90*time.Second, mustLookPath(t, "swaks"),
		"--server", server, "--helo", "client.local.test",
		"--from", sender, "--to", strings.Join(rcpts, ","),
		"--data", "@"+f.Name(), "--no-data-fixup", "--suppress-data", "--timeout", "60")
	return string(out) + string(errOut), err
}

// deliver sends msg to rcpts and returns what the sink received for them.
func (e *env) deliver(t *testing.T, rcpts []string, msg []byte) []delivery {
	t.Helper()
	marker := e.marker(t)
	msg = withMarker(msg, marker)
	transcript, err := e.send(t, rcpts, msg)
	if err != nil {
		t.Fatalf("swaks to %v: %v\n%s", rcpts, err, transcript)
	}
	ds, err := e.sink.take(marker, rcpts, 30*time.Second)
	if err != nil {
		t.Fatalf("%v\nswaks:\n%s", err, transcript)
	}
	return ds
}

// checkNoStrayCopies fails the test for whatever reached the sink and no
// subtest took: a copy that should not exist (a duplicate, or mail for a
// refused recipient).
func (e *env) checkNoStrayCopies(t *testing.T) {
	t.Helper()
	for _, d := range e.sink.rest("", 2*time.Second) {
		t.Errorf("unexpected delivery at the sink (from %s to %v):\n%s", d.from, d.rcpts, clip(d.data, 600))
	}
}

// testEncrypt sends a message of the corpus to alice and proves that it
// arrives encrypted and that OpenSSL decrypts it to the original MIME
// entity, byte for byte.
func (e *env) testEncrypt(t *testing.T, name string) {
	orig := readCorpus(t, name)
	ds := e.deliver(t, []string{e.alice.addr}, orig)
	if len(ds) != 1 {
		t.Fatalf("alice got %d deliveries, want 1", len(ds))
	}
	if got := ds[0].rcpts; len(got) != 1 || got[0] != e.alice.addr {
		t.Errorf("envelope recipients %v, want [%s]", got, e.alice.addr)
	}
	e.checkEncrypted(t, ds[0].data, orig, 1, e.alice)
}

// testTwoRecipients sends one message to alice and bob: both must be able
// to decrypt what they get.
func (e *env) testTwoRecipients(t *testing.T) {
	orig := readCorpus(t, "plain.eml")
	rcpts := []string{e.alice.addr, e.bob.addr}
	ds := e.deliver(t, rcpts, orig)
	t.Logf("%d deliveries for %v", len(ds), rcpts)
	for _, d := range ds {
		var us []*user
		for _, r := range d.rcpts {
			switch r {
			case e.alice.addr:
				us = append(us, e.alice)
			case e.bob.addr:
				us = append(us, e.bob)
			default:
				t.Errorf("unexpected recipient %q", r)
			}
		}
		// The milter sees one transaction with both recipients, so the
		// message is encrypted to both keys, however Postfix then splits
		// the delivery; each recipient decrypts with their own key.
		e.checkEncrypted(t, d.data, orig, 2, us...)
	}
}

// testNoRecord sends to carol, whose name is proven not to exist: with
// policy dane the message goes out unchanged.
func (e *env) testNoRecord(t *testing.T) {
	for _, name := range []string{"plain.eml", "utf8-8bit.eml"} {
		orig := readCorpus(t, name)
		ds := e.deliver(t, []string{e.carol}, orig)
		if len(ds) != 1 {
			t.Fatalf("carol got %d deliveries, want 1", len(ds))
		}
		for _, v := range checkPlain(t, name, ds[0].data, orig) {
			if strings.HasPrefix(v, "encrypted") {
				t.Errorf("%s: message to carol says X-Danemilter: %s", name, v)
			}
		}
	}
}

// checkPlain checks that msg, as delivered, is orig in clear: the same body
// byte for byte and every header field of orig unchanged. It returns the
// values of the X-Danemilter fields msg has.
func checkPlain(t *testing.T, name string, msg, orig []byte) []string {
	t.Helper()
	_, wantBody := splitMessage(t, orig)
	gotFields, gotBody := splitMessage(t, msg)
	if !bytes.Equal(gotBody, wantBody) {
		t.Errorf("%s: body changed:\n%s", name, firstDiff(gotBody, wantBody))
	}
	origFields, _ := splitMessage(t, orig)
	for _, f := range origFields {
		if !slices.Contains(gotFields, f) {
			t.Errorf("%s: header field %q missing or changed", name, f)
		}
	}
	return parseHeader(t, msg)["X-Danemilter"]
}

// checkEncrypted checks that msg, as delivered, is the S/MIME enveloped
// form of orig (RFC 8551 §3.3) with the outer header kept and a trace
// header naming keys keys, and that each of users decrypts it with openssl
// cms to orig's MIME entity exactly.
func (e *env) checkEncrypted(t *testing.T, msg, orig []byte, keys int, users ...*user) {
	t.Helper()
	e.checkSMIME(t, msg, orig, "enveloped-data", keys, users...)
}

// checkSMIME is checkEncrypted for the S/MIME type smimeType of the
// Content-Type: "enveloped-data" (CBC) or "authEnveloped-data" (GCM, RFC
// 5083).
func (e *env) checkSMIME(t *testing.T, msg, orig []byte, smimeType string, keys int, users ...*user) {
	t.Helper()
	h := parseHeader(t, msg)

	if cts := h["Content-Type"]; len(cts) != 1 {
		t.Errorf("delivered message has %d Content-Type fields, want 1: %q", len(cts), cts)
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "application/pkcs7-mime" || !strings.EqualFold(params["smime-type"], smimeType) {
		t.Errorf("Content-Type %q (%v), want application/pkcs7-mime; smime-type=%s", h.Get("Content-Type"), err, smimeType)
	}
	if cte := h.Get("Content-Transfer-Encoding"); !strings.EqualFold(strings.TrimSpace(cte), "base64") {
		t.Errorf("Content-Transfer-Encoding %q, want base64", cte)
	}
	if h.Get("MIME-Version") == "" {
		t.Errorf("no MIME-Version in the encrypted message")
	}
	traces := h["X-Danemilter"]
	if len(traces) != 1 || !strings.HasPrefix(traces[0], "encrypted") {
		t.Errorf("X-Danemilter %q, want one field starting with \"encrypted\"", traces)
	} else if !strings.Contains(traces[0], fmt.Sprintf("keys=%d", keys)) {
		t.Errorf("X-Danemilter %q, want keys=%d", traces[0], keys)
	}
	checkOuterHeader(t, msg, orig)

	want := mimeEntity(t, orig)
	msgFile, err := os.CreateTemp(e.dir, "delivered-*.eml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := msgFile.Write(msg); err != nil {
		t.Fatal(err)
	}
	msgFile.Close()
	for _, u := range users {
		out, errOut, err := runErr("", 30*time.Second, mustLookPath(t, "openssl"), "cms", "-decrypt",
			"-in", msgFile.Name(), "-recip", u.certFile, "-inkey", u.keyFile)
		if err != nil {
			t.Errorf("openssl cms -decrypt as %s: %v\n%s\nmessage:\n%s", u.addr, err, errOut, msg)
			continue
		}
		if !bytes.Equal(out, want) {
			t.Errorf("%s decrypts a different MIME entity than the original's:\n%s\ngot:\n%q\nwant:\n%q",
				u.addr, firstDiff(out, want), clip(out, 800), clip(want, 800))
			continue
		}
		t.Logf("%s: openssl cms -decrypt gives the original MIME entity, %d bytes identical", u.addr, len(out))
	}
}

// checkOuterHeader checks that msg, encrypted, kept orig's RFC 5322 fields
// and that no field of orig's MIME entity stays outside, in clear.
func checkOuterHeader(t *testing.T, msg, orig []byte) {
	t.Helper()
	h, oh := parseHeader(t, msg), parseHeader(t, orig)
	for _, k := range []string{"From", "To", "Subject", "Date", "Message-Id"} {
		if got, want := collapseSpace(h.Get(k)), collapseSpace(oh.Get(k)); got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
	fields, _ := splitMessage(t, msg)
	origFields, _ := splitMessage(t, orig)
	for _, f := range origFields {
		if strings.HasPrefix(strings.ToLower(fieldName(f)), "content-") && slices.Contains(fields, f) {
			t.Errorf("original entity field %q is still in the outer header", f)
		}
	}
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return append(b[:n:n], "..."...)
	}
	return b
}

// testMiltertest runs testdata/encrypt.lua against the daemon.
func (e *env) testMiltertest(t *testing.T) {
	script, err := filepath.Abs(filepath.Join("testdata", "encrypt.lua"))
	if err != nil {
		t.Fatal(err)
	}
	port := strings.TrimPrefix(e.milter.addr, "127.0.0.1:")
	out, errOut, err := runErr("", 60*time.Second, mustLookPath(t, "miltertest"), "-D", "port="+port, "-s", script)
	t.Logf("miltertest output:\n%s%s", out, errOut)
	if err != nil {
		t.Fatalf("miltertest -s %s: %v", script, err)
	}
}

var tempfailReply = regexp.MustCompile(`(?m)^<\*\*\s+(4\d\d[ -].*)$`)

// testMilterDown stops danemilter: the MTA must refuse mail with a
// temporary error (Postfix: milter_default_action = tempfail; Sendmail:
// F=T) and nothing may reach
// the sink in clear. Started again, danemilter encrypts again.
func (e *env) testMilterDown(t *testing.T) {
	pid := e.milter.pid()
	e.milter.stop()
	t.Logf("stopped danemilter (pid %d): %v", pid, e.milter.err)

	before := e.sink.count()
	marker := e.marker(t)
	msg := withMarker(readCorpus(t, "plain.eml"), marker)
	transcript, err := e.send(t, []string{e.alice.addr}, msg)
	if err == nil {
		t.Errorf("swaks succeeded with danemilter down; want a 4xx refusal\n%s", transcript)
	}
	if m := tempfailReply.FindStringSubmatch(transcript); m == nil {
		t.Errorf("swaks got no 4xx reply with danemilter down:\n%s", transcript)
	} else {
		t.Logf("refused as expected: %s", strings.TrimSpace(m[1]))
	}
	if ds, err := e.sink.take(marker, []string{e.alice.addr}, 4*time.Second); err == nil || len(ds) > 0 {
		t.Errorf("a message reached the sink while danemilter was down: %d deliveries", len(ds))
	}
	if n := e.sink.count(); n != before {
		t.Errorf("sink received %d messages while danemilter was down", n-before)
	}
	// Refused, the message was not even queued.
	if files := e.cur.queued(t); len(files) > 0 {
		t.Errorf("%s queued %d messages while danemilter was down: %v", e.cur.name, len(files), files)
	}

	// Started again, the same message goes out encrypted.
	e.milter = startDanemilter(t, e.bin, e.config, e.cur.log+".restarted", e.milterPort)
	orig := readCorpus(t, "plain.eml")
	ds := e.deliver(t, []string{e.alice.addr}, orig)
	if len(ds) != 1 {
		t.Fatalf("alice got %d deliveries after the restart, want 1", len(ds))
	}
	e.checkEncrypted(t, ds[0].data, orig, 1, e.alice)
}

// testMTAView records what the MTA shows the milter (danemilter's "mta
// view" debug line: protocol version, header leading space, largest data
// packet, the queue ID at MAIL, RCPT and end of message, {client_port}, the
// RCPT arguments as sent) for README "What each MTA shows the milter", and
// checks what danemilter relies on: a queue ID at end of message, and
// recipients it can parse.
func (e *env) testMTAView(t *testing.T) {
	off := logSize(t, e.cur.log)
	orig := readCorpus(t, "folded-headers.eml")
	ds := e.deliver(t, []string{e.alice.addr, e.carol}, orig)
	if len(ds) == 0 {
		t.Fatal("no delivery")
	}
	line, _ := waitLog(t, e.cur.log, off, 10*time.Second, func(l string) bool { return strings.Contains(l, `msg="mta view"`) })
	t.Logf("%s: %s", e.cur.name, line)
	qid := logField(line, "queue_id")
	if qid == "" {
		t.Errorf("no queue ID at end of message: %s", line)
	}
	for _, f := range []string{"milter_protocol", "header_leading_space", "queue_id_at_mail", "queue_id_at_rcpt", "client_port", "rcpt_args"} {
		t.Logf("%s %s = %q", e.cur.name, f, logField(line, f))
	}
	if args := logField(line, "rcpt_args"); !strings.Contains(args, e.alice.addr) || !strings.Contains(args, e.carol) {
		t.Errorf("rcpt_args %q lack the recipients", args)
	}
}

// logField is the value of key=value or key="value" in a log line.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if u, err := strconv.Unquote(v[:1+strings.Index(v[1:], `"`)+1]); err == nil {
			return u
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}
