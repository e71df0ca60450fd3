package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPolicyEndToEnd proves the policy of README "Policy", "When the
// decision is made", "Mixed recipients" and "Policy map file" with real
// parts, in an environment of its own:
//
//   - secure.test, signed: alice and bob have SMIMEA records, carol has
//     none (secure denial);
//   - broken.test, signed with its own trust anchor, but the SMIMEA records
//     of dave and erin were changed after signing: Unbound answers SERVFAIL
//     with an Extended DNS Error (bogus);
//   - plain.test, unsigned (no trust anchor): other and strict have SMIMEA
//     records, which Unbound answers without the AD bit (insecure);
//   - danemilter with policy dane by default; strict@plain.test,
//     erin@broken.test and bob@secure.test at level encrypt; a policy map
//     file checked every 200ms; split delivery through a milter-less
//     Postfix smtpd on 127.0.0.1 (reinject.address).
//
// Mail goes in through swaks (smtpd_milters) and Postfix's sendmail
// (non_smtpd_milters); the sink shows what would have left the host.
func TestPolicyEndToEnd(t *testing.T) {
	e := newEnv(t)
	secure := e.secureZone(t)
	p := &policyEnv{env: e, mapped: "mapped@plain.test", carolAlias: "carol-alias@secure.test"}
	p.dave = newUser(t, e.keys, "dave@broken.test")
	p.erin = newUser(t, e.keys, "erin@broken.test")
	p.other = newUser(t, e.keys, "other@plain.test")
	p.strict = newUser(t, e.keys, "strict@plain.test")
	p.mapFile = filepath.Join(e.dir, "policy.map")
	writeFile(t, p.mapFile, []byte(firstMap(p)), 0o644)
	config := func(dir string, milterPort int, reinject string) string {
		return writePolicyConfig(t, dir, milterPort, e.dns.resolver(), p.mapFile, reinject)
	}
	e.start(t, envSpec{
		zones: []zoneSpec{
			secure,
			{name: "broken.test.", signed: true, tamper: true, users: []*user{p.dave, p.erin}},
			{name: "plain.test.", users: []*user{p.other, p.strict}},
		},
		config: config,
		// README "Configuration" and "Mixed recipients" give
		// reinject.address as host:port. Should the daemon refuse that
		// form, the test says so and goes on with Postfix's
		// inet:host:port, which it also accepts, so that the other proofs
		// still run.
		checkConfig: func(t *testing.T, reinject string) {
			t.Run("config-reinject-address", func(t *testing.T) {
				out, errOut, err := runErr("", 30*time.Second, e.bin, "check-config", "--config", e.config)
				if err != nil {
					t.Errorf("danemilter check-config refuses reinject.address = %q, the host:port form README documents: %v\n%s%s",
						reinject, err, out, errOut)
					e.config = config(e.dir, e.milterPort, "inet:"+reinject)
					t.Logf("going on with reinject.address = %q", "inet:"+reinject)
					return
				}
				t.Logf("check-config accepts reinject.address = %q", reinject)
			})
		},
		// The canonical map gives carol a second address that only the
		// rewritten-recipient subtests use; Sendmail's virtusertable does
		// the same.
		postfixMain: fmt.Sprintf("recipient_canonical_maps = inline:{ %s=%s }\n", p.carolAlias, p.carol),
		reinject:    true,
		sendmail:    true,
		virtuser:    map[string]string{p.carolAlias: p.carol},
	})
	p.log = e.log
	p.requireDNS(t)

	for _, m := range e.mtas {
		pm := p.forMTA(m)
		t.Run(m.name, func(t *testing.T) {
			pm.resetMap(t)
			t.Run("bogus", pm.testBogus)
			t.Run("unsigned-zone", pm.testUnsigned)
			t.Run("mixed-split", pm.testMixedSplit)
			t.Run("mandatory-mixed", pm.testMandatoryMixed)
			t.Run("command-line", pm.testCommandLine)
			t.Run("smtp-rewritten-recipient", pm.testSMTPRewritten)
			t.Run("command-line-rewritten-recipient", pm.testSendmailRewritten)
			t.Run("policy-map-reload", pm.testMapReload)
		})
	}
	// Last: it stops Unbound.
	t.Run("resolver-down", func(t *testing.T) {
		pid := p.dns.unbound.pid()
		p.dns.unbound.kill()
		t.Logf("killed unbound (pid %d)", pid)
		for _, m := range e.mtas {
			t.Run(m.name, p.forMTA(m).testResolverDown)
		}
	})

	e.checkNoStrayCopies(t)
	t.Logf("policy end to end test took %v", time.Since(e.started).Round(time.Millisecond))
}

// forMTA is a copy of the environment whose mail goes through m.
func (p *policyEnv) forMTA(m *mta) *policyEnv {
	c := *p
	c.env = p.env.forMTA(m)
	c.log = m.log
	return &c
}

// policyEnv is the environment of TestPolicyEndToEnd.
type policyEnv struct {
	*env
	dave, erin    *user  // broken.test: bogus SMIMEA records; levels dane and encrypt
	other, strict *user  // plain.test (unsigned): levels dane and encrypt
	mapped        string // plain.test, no record; encrypt in the first map file
	carolAlias    string // recipient_canonical_maps rewrites it to carol
	mapFile       string
	log           string // danemilter's output
}

// writePolicyConfig writes the configuration of TestPolicyEndToEnd.
func writePolicyConfig(t *testing.T, dir string, milterPort int, resolver, mapFile, reinjectAddr string) string {
	t.Helper()
	return daemonConfig{
		policy: fmt.Sprintf("default = \"dane\"\nmap_file = %q\nmap_check_interval = \"200ms\"", mapFile),
		tables: `
[policy.recipients]
"strict@plain.test" = "encrypt"
"erin@broken.test" = "encrypt"
"bob@secure.test" = "encrypt"
`,
		reinject: reinjectAddr,
	}.write(t, dir, milterPort, resolver)
}

var digEDE = regexp.MustCompile(`(?m)^; EDE: (\d+).*$`)

// requireDNS checks with dig that Unbound answers each zone as the test
// needs: secure.test validated, broken.test's SMIMEA records SERVFAIL with a
// DNSSEC Extended DNS Error, plain.test answered without AD.
func (p *policyEnv) requireDNS(t *testing.T) {
	t.Helper()
	p.dns.requireSecure(t, []*user{p.alice, p.bob}, []string{p.carol})
	for _, u := range []*user{p.dave, p.erin} {
		r, err := p.dns.dig(t, "SMIMEA", smimeaOwner(u.addr))
		if err != nil {
			t.Fatalf("precondition: %v", err)
		}
		m := digEDE.FindStringSubmatch(r.answer)
		if r.status != "SERVFAIL" || m == nil {
			t.Fatalf("precondition: want SERVFAIL with an Extended DNS Error for the tampered record of %s; dig said:\n%s", u.addr, r.answer)
		}
		var code int
		fmt.Sscan(m[1], &code)
		if code < 1 || code > 12 || code == 3 || code == 4 {
			t.Fatalf("precondition: EDE %d for %s is not a DNSSEC error (RFC 8914 1-2, 5-12):\n%s", code, u.addr, r.answer)
		}
		t.Logf("bogus %s: dig status %s, %s", u.addr, r.status, strings.TrimSpace(m[0]))
	}
	for _, c := range []struct {
		addr, status string
	}{{p.other.addr, "NOERROR"}, {p.strict.addr, "NOERROR"}, {"nobody@plain.test", "NXDOMAIN"}} {
		r, err := p.dns.dig(t, "SMIMEA", smimeaOwner(c.addr))
		if err != nil {
			t.Fatalf("precondition: %v", err)
		}
		if r.status != c.status || r.has("ad") || (c.status == "NOERROR") != smimeaAnswer.MatchString(r.answer) {
			t.Fatalf("precondition: want %s without the AD bit (insecure) for %s in the unsigned zone; dig said:\n%s", c.status, c.addr, r.answer)
		}
		t.Logf("insecure %s: dig status %s, flags %v (no ad)", c.addr, r.status, r.flags)
	}
}

// attempt is one message submitted with swaks and what the server said.
type attempt struct {
	marker     string
	transcript string
	err        error
	rcpt       map[string]string // recipient -> last line of the reply to its RCPT TO
	data       string            // reply to the end of data; "" when swaks sent no data
}

var swaksLine = regexp.MustCompile(`^(?: -> |<-  |<\*\* )(.*)$`)

// parseSwaks pairs swaks's commands with the final lines of their replies.
func parseSwaks(transcript string) (rcpt map[string]string, data string) {
	rcpt = map[string]string{}
	var cmds, replies []string
	pending := ""
	for _, l := range strings.Split(transcript, "\n") {
		l = strings.TrimRight(l, "\r")
		m := swaksLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if strings.HasPrefix(l, " -> ") {
			pending = m[1]
			continue
		}
		// A reply line: "250-..." goes on, "250 ..." is the last.
		if len(m[1]) >= 4 && m[1][3] == '-' {
			continue
		}
		cmds = append(cmds, pending)
		replies = append(replies, m[1])
		pending = ""
	}
	for i, c := range cmds {
		if strings.HasPrefix(strings.ToUpper(c), "RCPT TO:") {
			rcpt[strings.ToLower(addrArg(c))] = replies[i]
		}
		if strings.EqualFold(c, "DATA") && strings.HasPrefix(replies[i], "354") && i+1 < len(replies) {
			data = replies[i+1]
		}
	}
	return rcpt, data
}

// try submits msg (with a marker) to rcpts through smtpd with swaks; a
// refusal is no failure here, the caller checks the replies.
func (p *policyEnv) try(t *testing.T, rcpts []string, msg []byte) attempt {
	t.Helper()
	a := attempt{marker: p.marker(t)}
	a.transcript, a.err = p.send(t, rcpts, withMarker(msg, a.marker))
	a.rcpt, a.data = parseSwaks(a.transcript)
	return a
}

// wantRcpt checks that the reply to RCPT TO:<addr> starts with want (e.g.
// "250", "550 5.7.5").
func (a attempt) wantRcpt(t *testing.T, addr, want string) {
	t.Helper()
	got, ok := a.rcpt[strings.ToLower(addr)]
	switch {
	case !ok:
		t.Errorf("no reply to RCPT TO:<%s> in swaks's transcript:\n%s", addr, a.transcript)
	case !strings.HasPrefix(got, want):
		t.Errorf("RCPT TO:<%s>: reply %q, want %q...\n%s", addr, got, want, a.transcript)
	default:
		t.Logf("RCPT TO:<%s>: %s", addr, got)
	}
}

// wantQueued checks that the message was accepted at the end of data.
func (a attempt) wantQueued(t *testing.T) {
	t.Helper()
	if !strings.HasPrefix(a.data, "250") {
		t.Fatalf("message not accepted at end of data (reply %q; swaks: %v):\n%s", a.data, a.err, a.transcript)
	}
}

// wantNoData checks that swaks never sent the message's content, because
// every recipient was refused: nothing was queued and nothing can be
// delivered. (The end-of-test sweep of the sink backs this up.)
func (p *policyEnv) wantNoData(t *testing.T, a attempt) {
	t.Helper()
	if a.err == nil {
		t.Errorf("swaks succeeded; want a refusal:\n%s", a.transcript)
	}
	if a.data != "" {
		t.Errorf("the message was sent (end of data: %q); want every recipient refused at RCPT TO:\n%s", a.data, a.transcript)
	}
	if ds := p.sink.rest(a.marker, 0); len(ds) > 0 {
		t.Errorf("%d deliveries reached the sink for a refused message", len(ds))
	}
}

// expect waits until each recipient in enc and plain has a delivery with
// a's marker, waits a few seconds more for copies that should not exist,
// and checks: each recipient got exactly one copy; no copy mixes keyed and
// unkeyed recipients or goes to anyone else; the copies for enc are
// encrypted to exactly their keys and decrypt to orig's MIME entity with
// each one's key; the copies for plain are orig in clear, with the trace
// header of a split's plaintext copy when split is set and none otherwise.
func (p *policyEnv) expect(t *testing.T, a attempt, orig []byte, enc []*user, plain []string, split bool) {
	t.Helper()
	p.check(t, p.collect(t, a, enc, plain, split), withMarker(orig, a.marker), enc, plain, split)
}

// collect waits until each recipient in enc and plain has a delivery with
// a's marker, waits a few seconds more for copies that should not exist,
// and returns every delivery with the marker.
func (p *policyEnv) collect(t *testing.T, a attempt, enc []*user, plain []string, split bool) []delivery {
	t.Helper()
	ds, err := p.sink.take(a.marker, recipients(enc, plain), 30*time.Second)
	if err != nil {
		t.Fatalf("%v\nsubmission:\n%s", err, a.transcript)
	}
	// Copies that should not exist take time to appear, if they do:
	// Postfix retries every second here. A split makes two queue files,
	// so it gets longer. (The end-of-test sweep looks once more.)
	settle := time.Second
	if split {
		settle = 3 * time.Second
	}
	return append(ds, p.sink.rest(a.marker, settle)...)
}

// recipients lists the addresses of enc and plain.
func recipients(enc []*user, plain []string) []string {
	var all []string
	for _, u := range enc {
		all = append(all, u.addr)
	}
	return append(all, plain...)
}

// check does expect's checks on the deliveries ds of orig (with its marker).
func (p *policyEnv) check(t *testing.T, ds []delivery, orig []byte, enc []*user, plain []string, split bool) {
	t.Helper()
	all := recipients(enc, plain)
	seen := map[string]int{}
	for _, d := range ds {
		var us []*user
		var ps []string
		for _, r := range d.rcpts {
			seen[strings.ToLower(r)]++
			if i := slices.IndexFunc(enc, func(u *user) bool { return strings.EqualFold(u.addr, r) }); i >= 0 {
				us = append(us, enc[i])
			} else if slices.ContainsFunc(plain, func(s string) bool { return strings.EqualFold(s, r) }) {
				ps = append(ps, r)
			} else {
				t.Errorf("delivery to %s, who must get nothing:\n%s", r, clip(d.data, 600))
			}
		}
		switch {
		case len(us) > 0 && len(ps) > 0:
			t.Errorf("one delivery carries recipients with keys %v and without %v:\n%s", d.rcpts, ps, clip(d.data, 600))
		case len(us) > 0:
			p.checkEncrypted(t, d.data, orig, len(enc), us...)
			if tr := parseHeader(t, d.data).Get("X-Danemilter"); split != strings.Contains(tr, fmt.Sprintf("split=smime:%d+plain:%d", len(enc), len(plain))) {
				t.Errorf("encrypted copy to %v: X-Danemilter %q; split %v", d.rcpts, tr, split)
			}
		case len(ps) > 0:
			traces := checkPlain(t, fmt.Sprint("copy to ", d.rcpts), d.data, orig)
			if split {
				if len(traces) != 1 || !strings.HasPrefix(traces[0], "plaintext copy") {
					t.Errorf("plaintext copy to %v: X-Danemilter %q, want one \"plaintext copy; ...\"", d.rcpts, traces)
				}
			} else if len(traces) != 0 {
				t.Errorf("message to %v passed in clear has X-Danemilter %q, want none", d.rcpts, traces)
			}
			t.Logf("%v: plaintext, body and header fields as sent, X-Danemilter %q", d.rcpts, traces)
		}
	}
	for _, r := range all {
		if n := seen[strings.ToLower(r)]; n != 1 {
			t.Errorf("%s got %d copies, want exactly 1", r, n)
		}
	}
	t.Logf("%d deliveries for %v: %d encrypted recipients, %d in clear, each exactly once", len(ds), all, len(enc), len(plain))
}

// testBogus: records whose signatures do not validate defer the recipient
// at RCPT TO with 451 4.7.5, under dane (dave) and encrypt (erin), and
// never reach anyone in clear; the other recipients of the transaction go
// through.
func (p *policyEnv) testBogus(t *testing.T) {
	orig := readCorpus(t, "plain.eml")
	for _, u := range []*user{p.dave, p.erin} {
		a := p.try(t, []string{u.addr}, orig)
		a.wantRcpt(t, u.addr, "451 4.7.5")
		p.wantNoData(t, a)
	}
	// Bogus next to a recipient with a key: dave alone is deferred.
	a := p.try(t, []string{p.dave.addr, p.alice.addr}, orig)
	a.wantRcpt(t, p.dave.addr, "451 4.7.5")
	a.wantRcpt(t, p.alice.addr, "250")
	a.wantQueued(t)
	p.expect(t, a, orig, []*user{p.alice}, nil, false)
}

// testUnsigned: in an unsigned zone a published SMIMEA record is not used.
// Under dane the message goes out in clear, unchanged; under encrypt the
// recipient is refused at RCPT TO with 550 5.7.5.
func (p *policyEnv) testUnsigned(t *testing.T) {
	orig := readCorpus(t, "plain.eml")
	a := p.try(t, []string{p.other.addr}, orig)
	a.wantRcpt(t, p.other.addr, "250")
	a.wantQueued(t)
	p.expect(t, a, orig, nil, []string{p.other.addr}, false)

	a = p.try(t, []string{p.strict.addr}, orig)
	a.wantRcpt(t, p.strict.addr, "550 5.7.5")
	p.wantNoData(t, a)
}

// testMixedSplit: alice (key) and carol (proven without) in one
// transaction: alice gets only ciphertext, carol a plaintext copy, each
// exactly once.
func (p *policyEnv) testMixedSplit(t *testing.T) {
	for _, name := range []string{"plain.eml", "multipart-attachment.eml"} {
		t.Run(name, func(t *testing.T) {
			orig := readCorpus(t, name)
			a := p.try(t, []string{p.alice.addr, p.carol}, orig)
			a.wantRcpt(t, p.alice.addr, "250")
			a.wantRcpt(t, p.carol, "250")
			a.wantQueued(t)
			p.expect(t, a, orig, []*user{p.alice}, []string{p.carol}, true)
		})
	}
}

// testMandatoryMixed: a mandatory recipient without a usable key (strict, in
// the unsigned zone) is refused at RCPT TO while alice gets ciphertext; a
// mandatory recipient with a key (bob) next to one without (carol): bob
// gets only ciphertext, carol a plaintext copy.
func (p *policyEnv) testMandatoryMixed(t *testing.T) {
	orig := readCorpus(t, "plain.eml")
	t.Run("mandatory-unkeyed", func(t *testing.T) {
		a := p.try(t, []string{p.strict.addr, p.alice.addr}, orig)
		a.wantRcpt(t, p.strict.addr, "550 5.7.5")
		a.wantRcpt(t, p.alice.addr, "250")
		a.wantQueued(t)
		p.expect(t, a, orig, []*user{p.alice}, nil, false)
	})
	t.Run("mandatory-keyed-and-unkeyed", func(t *testing.T) {
		a := p.try(t, []string{p.bob.addr, p.carol}, orig)
		a.wantRcpt(t, p.bob.addr, "250")
		a.wantRcpt(t, p.carol, "250")
		a.wantQueued(t)
		p.expect(t, a, orig, []*user{p.bob}, []string{p.carol}, true)
	})
}

// testCommandLine submits with the MTA's command line: Postfix's sendmail
// (postdrop, pickup, cleanup: non_smtpd_milters), Sendmail's sendmail
// through its mail submission program (submit.cf, which hands the message
// to the daemon over SMTP, where the milters run): the split works the same.
func (p *policyEnv) testCommandLine(t *testing.T) {
	orig := readCorpus(t, "plain.eml")
	off := logSize(t, p.log)
	a := p.commandLine(t, []string{p.alice.addr, p.carol}, orig)
	p.expect(t, a, orig, []*user{p.alice}, []string{p.carol}, true)
	// What the MTA showed the milter (README "Sendmail" table): Postfix's
	// local submission has {client_port} 0, Sendmail's MSP comes over SMTP.
	line, _ := waitLog(t, p.log, off, 10*time.Second, func(l string) bool { return strings.Contains(l, `msg="mta view"`) })
	t.Logf("%s: %s", p.cur.name, line)
	if want := fmt.Sprint(p.cur.postfix != nil); logField(line, "local_submission") != want {
		t.Errorf("local_submission %q, want %s", logField(line, "local_submission"), want)
	}
}

// commandLine submits msg (with a marker) to rcpts with the current MTA's
// command line.
func (p *policyEnv) commandLine(t *testing.T, rcpts []string, orig []byte) attempt {
	t.Helper()
	if p.cur == nil || p.cur.sendmail == nil {
		return p.sendmail(t, rcpts, orig)
	}
	a := attempt{marker: p.marker(t)}
	var err error
	a.transcript, err = p.cur.sendmail.submit(t, sender, rcpts, withMarker(orig, a.marker))
	if err != nil {
		t.Fatalf("sendmail -C submit.cf: %v\n%s", err, a.transcript)
	}
	return a
}

// sendmail submits msg (with a marker) to rcpts with Postfix's sendmail.
func (p *policyEnv) sendmail(t *testing.T, rcpts []string, orig []byte) attempt {
	t.Helper()
	a := attempt{marker: p.marker(t)}
	msg := withMarker(orig, a.marker)
	// sendmail reads lines with the local line end; -i: a lone "." is text.
	// -C names the private instance; Postfix lets root name any
	// configuration directory (others only those in the default main.cf's
	// alternate_config_directories).
	in := bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	sendmail := strings.TrimSpace(string(run(t, "", 30*time.Second, mustLookPath(t, "postconf"), "-c", p.postfix.confDir, "-h", "sendmail_path")))
	argv := append([]string{sendmail, "-C", p.postfix.confDir, "-i", "-f", sender, "--"}, rcpts...)
	out, errOut, err := runStdin(in, 60*time.Second, argv...)
	a.transcript = fmt.Sprintf("%s\n%s%s", strings.Join(argv, " "), out, errOut)
	if err != nil {
		t.Fatalf("sendmail -C %s: %v\n%s", p.postfix.confDir, err, a.transcript)
	}
	return a
}

// testSMTPRewritten: through smtpd the milter sees the address of RCPT TO,
// carol-alias, which cleanup then rewrites to carol (canonical map); the
// split's DeleteRecipient names carol-alias, Postfix's original recipient,
// and carol gets only the plaintext copy.
func (p *policyEnv) testSMTPRewritten(t *testing.T) {
	if p.cur != nil && p.cur.sendmail != nil {
		t.Logf("sendmail -bv %s: %s", p.carolAlias, p.cur.sendmail.verify(t, p.carolAlias))
	}
	orig := readCorpus(t, "plain.eml")
	off := p.maillogSize(t)
	a := p.try(t, []string{p.alice.addr, p.carolAlias}, orig)
	a.wantRcpt(t, p.alice.addr, "250")
	a.wantRcpt(t, p.carolAlias, "250")
	a.wantQueued(t)
	ds := p.collect(t, a, []*user{p.alice}, []string{p.carol}, true)
	p.logDeliveries(t, ds, off)
	p.check(t, ds, withMarker(orig, a.marker), []*user{p.alice}, []string{p.carol}, true)
}

// testSendmailRewritten: the same through sendmail (non_smtpd_milters).
// Here cleanup rewrites first and shows the milter carol, not carol-alias,
// while Postfix matches a milter's DeleteRecipient against the original
// recipient (cleanup_del_rcpt compares with the ORCP record, carol-alias):
// a delete would match nothing, and carol would also get the encrypted
// copy. danemilter sees the local submission ({client_port} "0"), deletes
// nothing, re-injects every copy and discards the transaction: each
// recipient gets exactly one readable copy, as over SMTP.
func (p *policyEnv) testSendmailRewritten(t *testing.T) {
	orig := readCorpus(t, "plain.eml")
	off := p.maillogSize(t)
	a := p.commandLine(t, []string{p.alice.addr, p.carolAlias}, orig)
	ds := p.collect(t, a, []*user{p.alice}, []string{p.carol}, true)
	p.logDeliveries(t, ds, off)
	p.check(t, ds, withMarker(orig, a.marker), []*user{p.alice}, []string{p.carol}, true)
	if p.cur.sendmail != nil {
		return // Sendmail's MSP hands the message over SMTP: no local submission
	}
	line, _ := waitLog(t, p.log, 0, 10*time.Second, func(l string) bool {
		return strings.Contains(l, `reinjected="all (local submission)"`)
	})
	t.Logf("danemilter: %s", line)
}

// logDeliveries logs the deliveries of one submission (recipients, whether
// encrypted, X-Danemilter) and Postfix's delivery and milter log lines after
// offset off.
func (p *policyEnv) logDeliveries(t *testing.T, ds []delivery, off int64) {
	t.Helper()
	for _, d := range ds {
		h := parseHeader(t, d.data)
		t.Logf("sink: to %v, Content-Type %q, X-Danemilter %q", d.rcpts, h.Get("Content-Type"), h["X-Danemilter"])
	}
	if p.cur != nil && p.cur.sendmail != nil {
		return // Sendmail logs to syslog, which the test does not run
	}
	b, err := os.ReadFile(p.postfix.maillog)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b[off:])), "\n") {
		if strings.Contains(l, " to=<") || strings.Contains(l, "milter") {
			t.Logf("maillog: %s", l)
		}
	}
}

// testMapReload: a map file with a bad line is refused as a whole, logged
// with the line number, and the last good map stays in force; the fixed
// file takes effect; SIGHUP reloads.
func (p *policyEnv) testMapReload(t *testing.T) {
	orig := readCorpus(t, "plain.eml")
	// The first map: mapped@plain.test encrypt (unsigned zone: refused).
	a := p.try(t, []string{p.mapped}, orig)
	a.wantRcpt(t, p.mapped, "550 5.7.5")
	p.wantNoData(t, a)

	// A bad map: lines 2 and 3 are good, line 4 names no level. Had it
	// been used even in part, other would be refused and mapped accepted.
	off := logSize(t, p.log)
	writeFile(t, p.mapFile, []byte("# bad map\n"+p.mapped+" dane\n"+p.other.addr+" encrypt\nnobody@plain.test mandatory\n"), 0o644)
	want := p.mapFile + ":4:"
	line, off := waitLog(t, p.log, off, 10*time.Second, func(l string) bool {
		return strings.Contains(l, "policy map") && strings.Contains(l, want)
	})
	t.Logf("danemilter: %s", line)
	if !strings.Contains(line, "level=ERROR") {
		t.Errorf("the bad map is not logged as an error: %s", line)
	}
	a = p.try(t, []string{p.other.addr}, orig)
	a.wantRcpt(t, p.other.addr, "250")
	a.wantQueued(t)
	p.expect(t, a, orig, nil, []string{p.other.addr}, false)
	a = p.try(t, []string{p.mapped}, orig)
	a.wantRcpt(t, p.mapped, "550 5.7.5")
	p.wantNoData(t, a)

	// Fixed: the new entries take effect.
	writeFile(t, p.mapFile, []byte("# fixed map\n"+p.mapped+" dane\n"+p.other.addr+" encrypt\n"), 0o644)
	line, off = waitLog(t, p.log, off, 10*time.Second, func(l string) bool {
		return strings.Contains(l, "policy map reloaded")
	})
	t.Logf("danemilter: %s", line)
	a = p.try(t, []string{p.other.addr}, orig)
	a.wantRcpt(t, p.other.addr, "550 5.7.5")
	p.wantNoData(t, a)
	a = p.try(t, []string{p.mapped}, orig)
	a.wantRcpt(t, p.mapped, "250")
	a.wantQueued(t)
	p.expect(t, a, orig, nil, []string{p.mapped}, false)

	// SIGHUP: the daemon reloads the map and says so.
	if err := syscall.Kill(p.milter.pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line, _ = waitLog(t, p.log, off, 10*time.Second, func(l string) bool {
		return strings.Contains(l, "policy map") && strings.Contains(l, "SIGHUP")
	})
	t.Logf("danemilter after SIGHUP: %s", line)
}

// resetMap writes the first map again, if another MTA's run changed it,
// and waits until this MTA's danemilter has it: the danemilters of both
// MTAs follow the same file.
func (p *policyEnv) resetMap(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile(p.mapFile); err == nil && string(b) == firstMap(p) {
		return
	}
	off := logSize(t, p.log)
	writeFile(t, p.mapFile, []byte(firstMap(p)), 0o644)
	waitLog(t, p.log, off, 10*time.Second, func(l string) bool { return strings.Contains(l, "policy map reloaded") })
}

// firstMap is the policy map file the test starts with.
func firstMap(p *policyEnv) string {
	return "# policy map of the integration test\n" + p.mapped + " encrypt\n"
}

// testResolverDown, with Unbound stopped: a recipient whose answer is not
// cached is deferred at RCPT TO with 451 4.4.3, and nothing is delivered.
func (p *policyEnv) testResolverDown(t *testing.T) {
	const fresh = "bob2@secure.test"
	a := p.try(t, []string{fresh}, readCorpus(t, "plain.eml"))
	a.wantRcpt(t, fresh, "451 4.4.3")
	p.wantNoData(t, a)
}

// maillogSize is the size of Postfix's log (0 for Sendmail, whose log goes
// to syslog).
func (p *policyEnv) maillogSize(t *testing.T) int64 {
	t.Helper()
	if p.cur != nil && p.cur.sendmail != nil {
		return 0
	}
	return logSize(t, p.postfix.maillog)
}

// logSize is the current size of a log file.
func logSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// waitLog waits until a complete line written to path after offset from
// satisfies ok, and returns it and the offset after it.
func waitLog(t *testing.T, path string, from int64, timeout time.Duration, ok func(string) bool) (string, int64) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) > from {
			off := from
			for _, l := range strings.SplitAfter(string(b[from:]), "\n") {
				if !strings.HasSuffix(l, "\n") {
					break
				}
				off += int64(len(l))
				if ok(l) {
					return strings.TrimSpace(l), off
				}
			}
		}
		if time.Now().After(deadline) {
			logTail(t, "danemilter log", path, 40)
			t.Fatalf("no such line in %s within %v", path, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
