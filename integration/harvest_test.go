package integration

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danemilter/danemilter/harvest/pgtest"
)

// partnerZone is the signed zone of TestHarvestEndToEnd's partner: every
// user of it publishes only SMIMEA 3 1 1, a hash that no certificate
// directory of the test can satisfy.
const partnerZone = "partner.test."

// TestHarvestEndToEnd proves issue 14 item 5 (and item 3's two daemons
// sharing PostgreSQL) with real parts: NSD and Unbound serving the signed
// zone partner.test, a PostgreSQL of Debian's packages on 127.0.0.1, and
// Postfix with two listeners, each with its own danemilter, both with
// [store] backend = "postgres" on the same database:
//
//   - the MX smtpd (milter_macro_daemon_name=MX) calls danemilter A, for
//     which MX mail is inbound: it verifies signatures and harvests;
//   - the outbound smtpd calls danemilter B, smime.cipher = "auto": it
//     finds certificates for hashed records in the store and picks the
//     cipher from the stored capabilities.
//
// partner.test publishes SMIMEA 3 1 1 only, for frank (who signs with
// openssl cms -sign: its SMIMECapabilities announce CBC ciphers only),
// grace (whose signature this test builds, announcing AES-256-GCM,
// AES-128-GCM and RSA-OAEP, which OpenSSL cannot put there) and mallory
// (whose record is of a certificate other than the one she signs with).
//
//   - frank, level dane: before anything is harvested, mail to him goes in
//     clear (secure but unusable key: README policy table); after his
//     signed mail passed at the MX, the store (as B sees it, "danemilter
//     store show") holds his certificate, and mail to him through B is
//     AES-256-CBC enveloped-data that openssl cms -decrypt reads;
//   - grace, level encrypt: refused with 5.7.x before; after her signed
//     mail, AES-256-GCM AuthEnvelopedData (id-ct-authEnvelopedData,
//     1.2.840.113549.1.9.16.1.23) with RSA-OAEP that openssl reads;
//   - mallory: her signature gets smime=policy, nothing is stored, mail to
//     her stays in clear.
func TestHarvestEndToEnd(t *testing.T) {
	e := newEnv(t)
	pg := startPG(t)
	dsn, err := pg.NewSchema(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h := &harvestEnv{env: e, k: &keysEnv{env: e}, in: &inboundEnv{env: e, seq: new(atomic.Int64)}, dsn: dsn}
	h.makeKeys(t)
	ports := freePorts(t, 2)
	mx, mxMilterPort := fmt.Sprintf("127.0.0.1:%d", ports[0]), ports[1]
	e.start(t, envSpec{
		zones: []zoneSpec{{name: partnerZone, signed: true, records: h.k.zoneLines()}},
		// The outbound smtpd's danemilter: B.
		config: func(dir string, milterPort int, _ string) string {
			return h.writeConfig(t, dir, milterPort)
		},
		postfixServices: []postfixService{{name: "postfix MX smtpd", addr: mx, conf: mx + fmt.Sprintf(` inet n - n - - smtpd
  -o syslog_name=postfix/mx -o milter_macro_daemon_name=MX -o smtpd_milters=inet:127.0.0.1:%d
`, mxMilterPort)}},
	})
	// The MX's danemilter: A, started after B has created the schema.
	aDir := mkdirAll(t, filepath.Join(e.dir, "mx"))
	h.aConfig = h.writeConfig(t, aDir, mxMilterPort)
	h.aLog = filepath.Join(aDir, "danemilter.log")
	startDanemilter(t, e.bin, h.aConfig, h.aLog, mxMilterPort)
	h.mx = mx
	h.requireDNS(t)
	h.makeMessages(t)
	t.Logf("harvest environment ready after %v: danemilter A (MX) on 127.0.0.1:%d, B (outbound) on 127.0.0.1:%d, PostgreSQL %s",
		time.Since(e.started).Round(time.Millisecond), mxMilterPort, e.milterPort, dsn)

	t.Run("partner", func(t *testing.T) {
		runParallel(t, "cbc-openssl-signer", h.testCBC)
		runParallel(t, "gcm-oaep-go-signer", h.testGCM)
		runParallel(t, "record-mismatch-nothing-stored", h.testMismatch)
	})
	// Both daemons opened the same store; the rows are in PostgreSQL.
	if out := h.storeCmd(t, e.config, "list"); !strings.Contains(out, h.frank.addr) || !strings.Contains(out, h.grace.addr) || strings.Contains(out, h.mallory.addr) {
		t.Errorf("danemilter store list (B's configuration), want frank and grace and not mallory:\n%s", out)
	}
	// The certificates B encrypted to came from A, through PostgreSQL: A
	// harvested each once, B (which saw no inbound mail) nothing.
	if got := harvestedIn(t, h.aLog); got[h.frank.addr] != 1 || got[h.grace.addr] != 1 || len(got) != 2 {
		t.Errorf("danemilter A harvested %v, want frank and grace once each", got)
	}
	if got := harvestedIn(t, e.log); len(got) != 0 {
		t.Errorf("danemilter B harvested %v, want nothing", got)
	}
	if out := h.storeCmd(t, h.aConfig, "show", h.mallory.addr); !strings.Contains(out, "nothing stored") {
		t.Errorf("store show %s (A's configuration) at the end, want nothing stored:\n%s", h.mallory.addr, out)
	}
	e.checkNoStrayCopies(t)
	for _, log := range []string{e.log, h.aLog} {
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("panic")) {
			t.Errorf("%s mentions a panic", log)
		}
	}
	t.Logf("harvest end to end test took %v", time.Since(e.started).Round(time.Millisecond))
}

// startPG starts a PostgreSQL of Debian's packages for the test and stops
// it when the test ends.
func startPG(t *testing.T) *pgtest.Server {
	t.Helper()
	pg, err := pgtest.Start()
	if err != nil {
		if os.Getenv("DANEMILTER_INTEGRATION") == "1" {
			t.Fatalf("DANEMILTER_INTEGRATION=1 but no PostgreSQL: %v", err)
		}
		t.Skipf("no PostgreSQL (run setup.sh as root): %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logTail(t, "PostgreSQL log", pg.LogPath(), 50)
		}
		if err := pg.Close(); err != nil {
			t.Errorf("stopping PostgreSQL: %v", err)
		}
	})
	return pg
}

// harvestEnv is the environment of TestHarvestEndToEnd.
type harvestEnv struct {
	*env
	k *keysEnv // for its record helpers
	// in is for the inbound helpers, and its marker, safe for parallel
	// subtests.
	in  *inboundEnv
	dsn string // the shared store
	mx  string // the MX smtpd (danemilter A)
	// aConfig and aLog are danemilter A's; env.config and env.log are B's.
	aConfig, aLog string
	// frank and grace sign with the certificates their records hash;
	// mallory signs with hers, her record hashes malloryPublished.
	frank, grace, mallory, malloryPublished *user
	graceKey                                *rsa.PrivateKey
	msgs                                    map[string][]byte // signed messages from the partner
}

// writeConfig writes the configuration both danemilters share but for the
// port (and spool): MX mail inbound, the store in PostgreSQL, cipher auto,
// grace@partner.test mandatory.
func (h *harvestEnv) writeConfig(t *testing.T, dir string, milterPort int) string {
	t.Helper()
	return daemonConfig{
		tables: fmt.Sprintf(`
[policy.recipients]
"grace@partner.test" = "encrypt"

[smime]
cipher = "auto"

[direction]
inbound_daemons = ["MX"]

[inbound]
default = "report"
authserv_id = %q

[store]
backend = "postgres"
dsn = %q
timeout = "2s"
`, inboundAuthservID, h.dsn),
	}.write(t, dir, milterPort, h.dns.resolver())
}

// makeKeys makes the partner's users and their SMIMEA 3 1 1 records.
func (h *harvestEnv) makeKeys(t *testing.T) {
	t.Helper()
	h.frank = newUser(t, h.keys, "frank@partner.test")
	h.grace = newUser(t, h.keys, "grace@partner.test")
	h.mallory = newCertUser(t, h.keys, "mallory", "mallory@partner.test", false, nil)
	h.malloryPublished = newCertUser(t, h.keys, "mallory-published", "mallory@partner.test", false, nil)
	b, err := os.ReadFile(h.grace.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	h.graceKey = key.(*rsa.PrivateKey)
	for _, u := range []*user{h.frank, h.grace, h.malloryPublished} {
		h.k.smimea(t, u, "3", "1", "1")
	}
}

// requireDNS checks with dig that each partner user has exactly one
// DNSSEC-validated SMIMEA record, and that it is 3 1 1.
func (h *harvestEnv) requireDNS(t *testing.T) {
	t.Helper()
	for _, u := range []*user{h.frank, h.grace, h.mallory} {
		owner := smimeaOwner(u.addr)
		r, err := h.dns.dig(t, "SMIMEA", owner)
		if err != nil {
			t.Fatalf("precondition: %v", err)
		}
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(owner) + `\s+\d+\s+IN\s+SMIMEA\s+3 1 1 `)
		if n := len(re.FindAllString(r.answer, -1)); r.status != "NOERROR" || !r.has("ad") || n != 1 || strings.Count(r.answer, " IN SMIMEA ") > 1 {
			t.Fatalf("precondition: want one DNSSEC-validated SMIMEA 3 1 1 at %s, got %d (status %s, flags %v):\n%s",
				owner, n, r.status, r.flags, r.answer)
		}
	}
}

// makeMessages makes the partner's signed messages to the local user.
func (h *harvestEnv) makeMessages(t *testing.T) {
	t.Helper()
	in := h.in
	msg := func(from, subject string, entity []byte) []byte {
		return append([]byte(outerHeader(from, subject)), entity...)
	}
	h.msgs = map[string][]byte{
		"frank":   msg(h.frank.addr, "harvest frank", in.smimeSigned(t, h.frank, signedEntity, false, "")),
		"grace":   msg(h.grace.addr, "harvest grace", h.goSigned(t, signedEntity)),
		"mallory": msg(h.mallory.addr, "harvest mallory", in.smimeSigned(t, h.mallory, signedEntity, false, "")),
	}
	for name, m := range h.msgs {
		if err := opensslVerify(t, h.dir, m); err != nil {
			t.Fatalf("precondition: the message from %s as made does not verify: %v", name, err)
		}
	}
	// openssl cms -sign announces no GCM; the Go-built signature does
	// (its OID in the signature's DER).
	gcm := derOf(t, oidAES256GCM)
	for name, want := range map[string]bool{"frank": false, "grace": true} {
		if got := bytes.Contains(p7sDER(t, h.msgs[name]), gcm); got != want {
			t.Fatalf("precondition: %s's signature announces aes256-GCM: %v, want %v", name, got, want)
		}
	}
}

// p7sDER is the DER of the application/pkcs7-signature part of a
// multipart/signed message.
func p7sDER(t *testing.T, msg []byte) []byte {
	t.Helper()
	_, part, ok := bytes.Cut(msg, []byte("\r\nContent-Type: application/pkcs7-signature"))
	if ok {
		_, part, ok = bytes.Cut(part, []byte("\r\n\r\n"))
	}
	if ok {
		part, _, ok = bytes.Cut(part, []byte("\r\n--"))
	}
	if !ok {
		t.Fatalf("no application/pkcs7-signature part:\n%s", clip(msg, 2000))
	}
	der, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(part), nil)))
	if err != nil {
		t.Fatalf("signature part: %v", err)
	}
	return der
}

// cmsPrint is "openssl cms -cmsout <args> -print" of a message.
func (h *harvestEnv) cmsPrint(t *testing.T, msg []byte, args ...string) string {
	t.Helper()
	f, err := os.CreateTemp(h.dir, "cms-*.eml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(msg); err != nil {
		t.Fatal(err)
	}
	f.Close()
	argv := append([]string{mustLookPath(t, "openssl"), "cms", "-cmsout", "-in", f.Name()}, args...)
	if !slices.Contains(args, "-print") {
		argv = append(argv, "-print")
	}
	return string(run(t, "", 30*time.Second, argv...))
}

// OIDs of the signature this test builds (RFC 5652, RFC 8551 §2.5.2,
// RFC 5084, RFC 8017).
var (
	oidData              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningTime       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidSMIMECapabilities = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15}
	oidSHA256            = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAOAEP           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}
	oidAES256GCM         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	oidAES128GCM         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}
	oidAES256CBC         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	// id-ct-authEnvelopedData (RFC 5083 §1.1).
	oidAuthEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23}
)

// der builders: each returns the DER of one element or fails the test.
func derOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func derSeq(t *testing.T, parts ...[]byte) []byte {
	t.Helper()
	return derOf(t, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: bytes.Join(parts, nil)})
}

// derSet is a SET OF, its elements in DER order (X.690 §11.6).
func derSet(t *testing.T, parts ...[]byte) []byte {
	t.Helper()
	return derOf(t, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: sortedJoin(parts)})
}

func sortedJoin(parts [][]byte) []byte {
	s := slices.Clone(parts)
	slices.SortFunc(s, bytes.Compare)
	return bytes.Join(s, nil)
}

func derTagged(t *testing.T, tag int, content []byte) []byte {
	t.Helper()
	return derOf(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: content})
}

// goSigned is entity signed by grace as RFC 8551 §3.5.3 multipart/signed:
// a detached CMS SignedData (RFC 5652 §5) built here with encoding/asn1,
// RSA PKCS #1 v1.5 with SHA-256, signed attributes contentType,
// messageDigest, signingTime and smimeCapabilities announcing AES-256-GCM,
// AES-128-GCM, RSA-OAEP and AES-256-CBC, in that order of preference.
func (h *harvestEnv) goSigned(t *testing.T, entity string) []byte {
	t.Helper()
	digest := sha256.Sum256([]byte(entity))
	alg := func(oid asn1.ObjectIdentifier) []byte { return derSeq(t, derOf(t, oid)) }
	attr := func(oid asn1.ObjectIdentifier, value []byte) []byte {
		return derSeq(t, derOf(t, oid), derSet(t, value))
	}
	signingTime := derOf(t, time.Now().UTC().Truncate(time.Second)) // UTCTime until 2050 (RFC 5652 §11.3)
	caps := derSeq(t, alg(oidAES256GCM), alg(oidAES128GCM), alg(oidRSAOAEP), alg(oidAES256CBC))
	attrs := [][]byte{
		attr(oidContentType, derOf(t, oidData)),
		attr(oidMessageDigest, derOf(t, digest[:])),
		attr(oidSigningTime, signingTime),
		attr(oidSMIMECapabilities, caps),
	}
	// The signature is over the DER of the attributes as a SET OF (RFC
	// 5652 §5.4); in SignerInfo they carry the tag [0] IMPLICIT.
	signed := sha256.Sum256(derSet(t, attrs...))
	sig, err := rsa.SignPKCS1v15(rand.Reader, h.graceKey, crypto.SHA256, signed[:])
	if err != nil {
		t.Fatal(err)
	}
	cert := h.grace.cert
	signerInfo := derSeq(t,
		derOf(t, 1),
		derSeq(t, cert.RawIssuer, derOf(t, cert.SerialNumber)), // IssuerAndSerialNumber
		alg(oidSHA256),
		derTagged(t, 0, sortedJoin(attrs)),
		derSeq(t, derOf(t, oidRSAEncryption), derOf(t, asn1.NullRawValue)),
		derOf(t, sig),
	)
	signedData := derSeq(t,
		derOf(t, 1),
		derSet(t, alg(oidSHA256)),
		derSeq(t, derOf(t, oidData)), // detached: no eContent
		derTagged(t, 0, cert.Raw),    // certificates [0] IMPLICIT
		derSet(t, signerInfo),
	)
	contentInfo := derSeq(t, derOf(t, oidSignedData), derTagged(t, 0, signedData))

	const boundary = "go-signed-boundary"
	var b strings.Builder
	b.WriteString("MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=\"sha-256\"; boundary=\"" + boundary + "\"\r\n\r\n" +
		"This is an S/MIME signed message (RFC 8551), signed by the test.\r\n\r\n" +
		"--" + boundary + "\r\n" + entity + "\r\n--" + boundary + "\r\n" +
		"Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(contentInfo)
	for len(enc) > 64 {
		b.WriteString(enc[:64] + "\r\n")
		enc = enc[64:]
	}
	b.WriteString(enc + "\r\n\r\n--" + boundary + "--\r\n")
	return []byte(b.String())
}

// inbound sends the partner's signed message name to the local user
// through the MX and checks the smime result danemilter A adds.
func (h *harvestEnv) inbound(t *testing.T, name, result, binding string) {
	t.Helper()
	in := h.in
	orig := h.msgs[name]
	got := in.deliverVia(t, h.mx, orig)
	ours, _ := authResults(t, got)
	in.wantResult(t, ours, inboundCase{name: name, method: "smime", result: result, binding: binding, from: fromAddr(t, orig)})
	wantBodyKept(t, got, orig)
}

// storeCmd runs "danemilter store" with a configuration and returns its
// output.
func (h *harvestEnv) storeCmd(t *testing.T, config string, args ...string) string {
	t.Helper()
	argv := append([]string{h.bin, "store", "--config", config}, args...)
	return string(run(t, "", 30*time.Second, argv...))
}

// waitStored polls "danemilter store show" with B's configuration until
// it shows u's certificate (A harvests in the background, after the
// message was answered), and returns the output.
func (h *harvestEnv) waitStored(t *testing.T, u *user) string {
	t.Helper()
	sum := sha256.Sum256(u.cert.Raw)
	fpr := hex.EncodeToString(sum[:])
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := h.storeCmd(t, h.config, "show", u.addr)
		if strings.Contains(strings.ToLower(strings.ReplaceAll(out, ":", "")), fpr) {
			t.Logf("danemilter store show %s (B's configuration):\n%s", u.addr, out)
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's certificate (sha256 %s) not in the store 15s after the MX accepted the signed message:\n%s", u.addr, fpr, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// outbound sends a message from the local user to addr through the
// outbound smtpd (danemilter B) and returns the attempt.
func (h *harvestEnv) outbound(t *testing.T, addr string, orig []byte) attempt {
	t.Helper()
	a := attempt{marker: h.in.marker(t)}
	a.transcript, a.err = h.send(t, []string{addr}, withMarker(orig, a.marker))
	a.rcpt, a.data = parseSwaks(a.transcript)
	return a
}

// outboundOne sends orig to addr through B and returns the one copy the
// sink got.
func (h *harvestEnv) outboundOne(t *testing.T, addr string, orig []byte) []byte {
	t.Helper()
	a := h.outbound(t, addr, orig)
	a.wantQueued(t)
	ds, err := h.sink.take(a.marker, []string{addr}, 30*time.Second)
	if err != nil {
		t.Fatalf("%v\nswaks:\n%s", err, a.transcript)
	}
	if len(ds) != 1 {
		t.Fatalf("%d copies delivered to %s, want 1", len(ds), addr)
	}
	return ds[0].data
}

// wantClear checks that a copy went out unencrypted, unchanged.
func wantClear(t *testing.T, msg, orig []byte) {
	t.Helper()
	for _, v := range checkPlain(t, "outbound", msg, orig) {
		if strings.HasPrefix(v, "encrypted") {
			t.Errorf("copy in clear says X-Danemilter: %s", v)
		}
	}
	if h := parseHeader(t, msg); strings.Contains(h.Get("Content-Type"), "pkcs7") {
		t.Errorf("copy in clear has Content-Type %q", h.Get("Content-Type"))
	}
}

// outboundMessage is the local user's message to a partner user.
func outboundMessage(to, subject string) []byte {
	return []byte("From: Sender <" + sender + ">\r\nTo: <" + to + ">\r\nSubject: " + subject + "\r\n" +
		"Date: Wed, 02 Dec 2026 11:00:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@local.test>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" +
		"Confidential: the figures for " + to + ".\r\n.A line that starts with a dot.\r\n")
}

// lookupSays runs "danemilter lookup" with B's configuration and checks
// its exit code and that its output holds each of want.
func (h *harvestEnv) lookupSays(t *testing.T, addr string, code int, want ...string) {
	t.Helper()
	got, out := lookupExit(t, h.bin, h.config, addr)
	if got != code {
		t.Errorf("danemilter lookup %s: exit %d, want %d\n%s", addr, got, code, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("danemilter lookup %s lacks %q:\n%s", addr, w, out)
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("danemilter lookup %s: exit %d\n%s", addr, got, out)
}

// testCBC: frank (level dane) gets mail in clear until his openssl-signed
// mail was harvested at the MX, then AES-256-CBC (his client announced no
// GCM) to the harvested certificate.
func (h *harvestEnv) testCBC(t *testing.T) {
	u := h.frank
	if out := h.storeCmd(t, h.config, "show", u.addr); !strings.Contains(out, "nothing stored") {
		t.Fatalf("precondition: store show %s before any mail:\n%s", u.addr, out)
	}
	h.lookupSays(t, u.addr, 1, "SMIMEA 3 1 1", "send in clear")
	before := outboundMessage(u.addr, "before harvest")
	wantClear(t, h.outboundOne(t, u.addr, before), before)

	h.inbound(t, "frank", "pass", "bound")
	show := h.waitStored(t, u)
	if !strings.Contains(show, "capabilities: aes256-cbc") {
		t.Errorf("store show: openssl's announced capabilities not stored:\n%s", show)
	}
	if strings.Contains(strings.ToLower(show), "gcm") {
		t.Errorf("store show: GCM announced by openssl cms -sign?\n%s", show)
	}
	h.lookupSays(t, u.addr, 0, "encrypt as S/MIME (aes256-cbc")

	after := outboundMessage(u.addr, "after harvest")
	msg := h.outboundOne(t, u.addr, after)
	h.checkSMIME(t, msg, after, "enveloped-data", 1, u)
	wantTrace(t, msg, "format=smime", "cipher=aes256-cbc", "keys=1")
	if printed := h.cmsPrint(t, msg); !strings.Contains(printed, "d.envelopedData:") || !strings.Contains(printed, "aes-256-cbc") {
		t.Errorf("openssl cms -cmsout -print: want envelopedData with aes-256-cbc:\n%s", clip([]byte(printed), 3000))
	}
}

// testGCM: grace (level encrypt) is refused until her signed mail, which
// announces AES-256-GCM and RSA-OAEP, was harvested; then she gets
// AuthEnvelopedData with AES-256-GCM and RSA-OAEP that openssl reads.
func (h *harvestEnv) testGCM(t *testing.T) {
	u := h.grace
	h.lookupSays(t, u.addr, 1, "SMIMEA 3 1 1", "at RCPT TO")
	before := outboundMessage(u.addr, "before harvest gcm")
	a := h.outbound(t, u.addr, before)
	rcpt, data := a.rcpt[u.addr], a.data
	switch {
	case strings.HasPrefix(rcpt, "5") && strings.Contains(rcpt, "5.7."):
		t.Logf("refused before harvesting at RCPT TO: %s", rcpt)
	case strings.HasPrefix(data, "5") && strings.Contains(data, "5.7."):
		t.Logf("refused before harvesting at end of data: %s", data)
	default:
		t.Errorf("mail to %s (encrypt, no usable key yet): RCPT %q, DATA %q, want a 5.7.x refusal\n%s", u.addr, rcpt, data, a.transcript)
	}

	h.inbound(t, "grace", "pass", "bound")
	show := h.waitStored(t, u)
	if !strings.Contains(show, "capabilities: aes256-gcm, aes128-gcm, rsaes-oaep, aes256-cbc") {
		t.Errorf("store show: the announced capabilities not stored as announced:\n%s", show)
	}
	h.lookupSays(t, u.addr, 0, "encrypt as S/MIME (aes256-gcm", "RSA-OAEP")

	after := outboundMessage(u.addr, "after harvest gcm")
	msg := h.outboundOne(t, u.addr, after)
	h.checkSMIME(t, msg, after, "authEnveloped-data", 1, u)
	wantTrace(t, msg, "format=smime", "cipher=aes256-gcm", "keys=1")
	// The ContentInfo's contentType, by its OID bytes and as openssl
	// prints it.
	der := smimeDER(t, msg)
	if want := derOf(t, oidAuthEnvelopedData); !bytes.Contains(der[:min(len(der), 32)], want) {
		t.Errorf("ContentInfo does not begin with id-ct-authEnvelopedData (%x): %x", want, der[:min(len(der), 32)])
	}
	printed := h.cmsPrint(t, msg)
	if !strings.Contains(printed, "d.authEnvelopedData:") || !strings.Contains(printed, "aes-256-gcm") {
		t.Errorf("openssl cms -cmsout -print: want authEnvelopedData with aes-256-gcm:\n%s", clip([]byte(printed), 3000))
	}
	if !strings.Contains(printed, "rsaesOaep") {
		t.Errorf("openssl cms -cmsout -print: want the key transported with RSA-OAEP (announced):\n%s", clip([]byte(printed), 3000))
	}
}

// smimeDER is the DER of an application/pkcs7-mime message's body.
func smimeDER(t *testing.T, msg []byte) []byte {
	t.Helper()
	_, body := splitMessage(t, msg)
	der, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(body), nil)))
	if err != nil {
		t.Fatalf("S/MIME body is not base64: %v", err)
	}
	return der
}

// testMismatch: mallory signs with a certificate her record does not
// hash: smime=policy at the MX, nothing stored, mail to her in clear.
func (h *harvestEnv) testMismatch(t *testing.T) {
	u := h.mallory
	h.inbound(t, "mallory", "policy", "mismatch")
	// A hands a passing signer to its harvester before it answers the
	// end of data, and logs it: by now the decision is in A's log.
	if n := harvestedIn(t, h.aLog)[u.addr]; n != 0 {
		t.Errorf("danemilter A harvested %s's certificate %d time(s) (%s)", u.addr, n, h.aLog)
	}
	if out := h.storeCmd(t, h.config, "show", u.addr); !strings.Contains(out, "nothing stored") {
		t.Errorf("store show %s after a mismatching signature, want nothing stored:\n%s", u.addr, out)
	}
	orig := outboundMessage(u.addr, "mismatch")
	wantClear(t, h.outboundOne(t, u.addr, orig), orig)
}

// harvestedLine is danemilter's debug line for a signer certificate handed
// to the harvester (milter.handler.harvest).
var harvestedLine = regexp.MustCompile(`msg="harvested the signer certificate"[^\n]*? header_from=(\S+)`)

// harvestedIn counts the harvested certificates a danemilter log shows, by
// address.
func harvestedIn(t *testing.T, log string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, m := range harvestedLine.FindAllSubmatch(b, -1) {
		n[strings.ToLower(string(m[1]))]++
	}
	return n
}
