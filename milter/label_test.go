package milter

// Issue 9: a label must not carry plaintext past "encrypt". A body passes as
// already encrypted only when it is one complete encrypted message whose
// recipients include a usable key of every recipient it would otherwise be
// encrypted to; everything else is encrypted like any other message.

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	gomilter "github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/recipient"
	"github.com/danemilter/danemilter/smime"

	"github.com/danemilter/danemilter/milter/miltertest"
)

const labelHead = "From: s@local.example\r\nTo: someone@partner.example\r\nSubject: quarterly numbers\r\nMIME-Version: 1.0\r\n"

// fakeSMIME is the first fake of issue 9: Content-Type
// application/pkcs7-mime; smime-type=enveloped-data, and a base64 body that
// is 30 82 00 32, the envelopedData OID, then plaintext.
func fakeSMIME() []byte {
	der := []byte{0x30, 0x82, 0x00, 0x32, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}
	der = append(der, "Dear partner, the merger closes on Friday."...)
	return []byte(labelHead + "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(der) + "\r\n")
}

// fakePGP is the second: multipart/encrypted, protocol
// application/pgp-encrypted, with plaintext between the armor lines.
func fakePGP() []byte {
	return []byte(labelHead + "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n" +
		"Dear partner, the merger closes on Friday.\r\n-----END PGP MESSAGE-----\r\n\r\n--b1--\r\n")
}

var labelEntity = []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nThe merger closes on Friday.\r\n")

// genuineSMIME is a message its sender's client encrypted to the given
// users' certificates.
func genuineSMIME(t *testing.T, to ...*user) []byte {
	t.Helper()
	var certs []*x509.Certificate
	for _, u := range to {
		c, err := x509.ParseCertificate(u.der)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	var b bytes.Buffer
	b.WriteString(labelHead)
	for _, f := range smime.OuterFieldsFor(smime.AES128GCM) {
		b.WriteString(f.Name + ": " + f.Value + "\r\n")
	}
	b.WriteString("\r\n")
	if err := smime.EncryptBase64(&b, bytes.NewReader(labelEntity), int64(len(labelEntity)), certs, smime.Options{Cipher: smime.AES128GCM}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// genuinePGP is a PGP/MIME message encrypted to keys.
func genuinePGP(t *testing.T, keys ...*pgp.Entity) []byte {
	t.Helper()
	var body bytes.Buffer
	boundary, err := openpgp.EncryptMIME(&body, bytes.NewReader(labelEntity), keys, openpgp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString(labelHead)
	for _, f := range openpgp.OuterFields(boundary) {
		b.WriteString(f.Name + ": " + f.Value + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body.Bytes())
	return b.Bytes()
}

// bodyOf returns the body of a message.
func bodyOf(t *testing.T, msg []byte) []byte {
	t.Helper()
	_, b, err := miltertest.SplitMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLabelFakesEncrypted: both fakes of issue 9, to a recipient at level
// encrypt (and at dane and may), are encrypted to the recipient's key; the
// recipient decrypts and finds the fake body inside.
func TestLabelFakesEncrypted(t *testing.T) {
	fake := &dane.Fake{}
	alice := newUser(t, "alice@partner.example")
	alice.publish(t, fake)
	pia := pgpUser(t, fake, "pia@pgp.example")
	for _, level := range []policy.Level{policy.LevelEncrypt, policy.LevelDane, policy.LevelMay} {
		for name, msg := range map[string][]byte{"S/MIME fake": fakeSMIME(), "PGP/MIME fake": fakePGP()} {
			t.Run(fmt.Sprintf("%s/%s", level, name), func(t *testing.T) {
				addr := start(t, Options{Resolver: fake, Levels: policy.NewTable(level), OpenPGP: true})
				sent := bodyOf(t, msg)

				res, err := miltertest.Simulate("tcp", addr, "QF1", "s@local.example", []string{"alice@partner.example"}, msg)
				if err != nil {
					t.Fatal(err)
				}
				if res.Final.Type != gomilter.ActionAccept || bytes.Equal(res.Message, msg) || !isSMIME(res.Message) {
					t.Fatalf("not encrypted for alice: %+v", res.Final)
				}
				if bytes.Contains(res.Message, []byte("merger")) {
					t.Error("the plaintext is still readable in what goes out")
				}
				if got := alice.decrypt(t, res.Message); !bytes.Contains(got, sent) {
					t.Errorf("alice's decryption does not hold the original body:\n%s", got)
				}

				res, err = miltertest.Simulate("tcp", addr, "QF2", "s@local.example", []string{"pia@pgp.example"}, msg)
				if err != nil {
					t.Fatal(err)
				}
				if res.Final.Type != gomilter.ActionAccept || !isPGP(res.Message) || bytes.Contains(res.Message, []byte("merger")) {
					t.Fatalf("not encrypted for pia: %+v", res.Final)
				}
				if got := pgpDecrypt(t, res.Message, pia); !bytes.Contains(got, sent) {
					t.Errorf("pia's decryption does not hold the original body:\n%s", got)
				}
			})
		}
	}
}

// TestLabelFakeNoKey: to an encrypt-level recipient without a key, a fake
// is refused as plaintext would be, never passed.
func TestLabelFakeNoKey(t *testing.T) {
	fake := &dane.Fake{}
	addr := start(t, Options{Resolver: fake, Levels: policy.NewTable(policy.LevelEncrypt), OpenPGP: true})
	for name, msg := range map[string][]byte{"S/MIME fake": fakeSMIME(), "PGP/MIME fake": fakePGP(), "genuine": genuinePGP(t, pgpUser(t, &dane.Fake{}, "x@elsewhere.example"))} {
		res, err := miltertest.Simulate("tcp", addr, "QN1", "s@local.example", []string{"nokey@partner.example"}, msg)
		if err != nil {
			t.Fatal(err)
		}
		refused := res.Final != nil && res.Final.Type == gomilter.ActionRejectWithCode || len(res.Rcpts) == 1 && res.Rcpts[0] != nil
		if !refused {
			t.Errorf("%s: not refused: %+v %+v", name, res.Final, res.Rcpts)
		}
	}
}

// TestLabelGenuine: genuine ciphertext that includes every keyed
// recipient's key passes untouched; ciphertext that leaves one out is
// encrypted again, and every recipient reads the result.
func TestLabelGenuine(t *testing.T) {
	fake := &dane.Fake{}
	alice := newUser(t, "alice@partner.example")
	alice.publish(t, fake)
	carol := newUser(t, "carol@partner.example")
	carol.publish(t, fake)
	bob := newUser(t, "bob@elsewhere.example") // has a key, publishes nothing here
	pia := pgpUser(t, fake, "pia@pgp.example")
	other := pgpUser(t, &dane.Fake{}, "other@elsewhere.example")

	tbl := policy.NewTable(policy.LevelEncrypt)
	if err := tbl.Set("carol@partner.example", policy.LevelMay); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Set("dave@nokey.example", policy.LevelMay); err != nil {
		t.Fatal(err)
	}
	addr := start(t, Options{Resolver: fake, Levels: tbl, OpenPGP: true})

	toAlice := genuineSMIME(t, alice)
	toBob := genuineSMIME(t, bob)
	toAliceCarol := genuineSMIME(t, alice, carol)
	toPia := genuinePGP(t, pia)
	toOther := genuinePGP(t, other)

	for _, tt := range []struct {
		name   string
		msg    []byte
		rcpts  []string
		passes bool
	}{
		{"S/MIME to alice", toAlice, []string{"alice@partner.example"}, true},
		{"S/MIME to alice, dave has no key (may)", toAlice, []string{"alice@partner.example", "dave@nokey.example"}, true},
		{"S/MIME to bob only", toBob, []string{"alice@partner.example"}, false},
		{"S/MIME to alice, carol (may, keyed) left out", toAlice, []string{"alice@partner.example", "carol@partner.example"}, false},
		{"S/MIME to alice and carol", toAliceCarol, []string{"alice@partner.example", "carol@partner.example"}, true},
		{"PGP/MIME to pia", toPia, []string{"pia@pgp.example"}, true},
		{"PGP/MIME to another key", toOther, []string{"pia@pgp.example"}, false},
		{"S/MIME to alice, given to pia", toAlice, []string{"pia@pgp.example"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := miltertest.Simulate("tcp", addr, "QG1", "s@local.example", tt.rcpts, tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Final == nil || res.Final.Type != gomilter.ActionAccept {
				t.Fatalf("final %+v", res.Final)
			}
			if tt.passes {
				if !bytes.Equal(res.Message, tt.msg) || len(res.Modifications) != 0 {
					t.Fatalf("genuine ciphertext changed (%d modifications)", len(res.Modifications))
				}
				return
			}
			if bytes.Equal(bodyOf(t, res.Message), bodyOf(t, tt.msg)) {
				t.Fatal("passed although a recipient's key is not included")
			}
			inner := bodyOf(t, tt.msg)
			for _, r := range tt.rcpts {
				var got []byte
				switch r {
				case "alice@partner.example":
					got = alice.decrypt(t, res.Message)
				case "carol@partner.example":
					got = carol.decrypt(t, res.Message)
				case "pia@pgp.example":
					if isPGP(res.Message) {
						got = pgpDecrypt(t, res.Message, pia)
					} else {
						t.Fatalf("pia got %q", header(res.Message, "Content-Type"))
					}
				}
				if !bytes.Contains(got, inner) {
					t.Errorf("%s: the decryption does not hold the original ciphertext", r)
				}
			}
		})
	}
}

// TestLabelGenuineTwoFormats: genuine PGP/MIME to pia, with alice (S/MIME
// only, level encrypt) left out: the message must be encrypted for alice
// too, in another format, which without re-injection cannot be done in one
// copy: an explicit temporary refusal, never a pass.
func TestLabelGenuineTwoFormats(t *testing.T) {
	fake := &dane.Fake{}
	alice := newUser(t, "alice@partner.example")
	alice.publish(t, fake)
	pia := pgpUser(t, fake, "pia@pgp.example")
	addr := start(t, Options{Resolver: fake, Levels: policy.NewTable(policy.LevelEncrypt), OpenPGP: true})
	res, err := miltertest.Simulate("tcp", addr, "QT1", "s@local.example", []string{"pia@pgp.example", "alice@partner.example"}, genuinePGP(t, pia))
	if err != nil {
		t.Fatal(err)
	}
	if res.Final == nil || res.Final.Type != gomilter.ActionRejectWithCode || res.Final.SMTPCode != 451 {
		t.Fatalf("final %+v, want 451", res.Final)
	}
}

// syncBuffer is a log destination for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimRight(s.b.String(), "\n"), "\n")
}

// TestLogLineBounded: the per-message log line describes the first 50
// recipients and counts the rest (issue 9 item 6: 829 KB for 10,000
// recipients before); a zone with many unusable records does not make one
// recipient's description grow either.
func TestLogLineBounded(t *testing.T) {
	fake := &dane.Fake{}
	alice := newUser(t, "alice@partner.example")
	alice.publish(t, fake)
	// 40 records that do not match alice's address.
	name, _ := dane.SMIMEAName("noisy@partner.example", false)
	var rrs []dns.RR
	for i := range 40 {
		rrs = append(rrs, &dns.SMIMEA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 300},
			Usage: 3, Selector: 1, MatchingType: 1, Certificate: fmt.Sprintf("%064x", i)})
	}
	fake.Set(name, dns.TypeSMIMEA, dane.Result{Name: name, Type: dns.TypeSMIMEA, Status: dane.StatusSecure, Records: rrs})

	var logs syncBuffer
	tbl := policy.NewTable(policy.LevelMay)
	addr := start(t, Options{Resolver: fake, Levels: tbl, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const n = 2000
	rcpts := []string{"noisy@partner.example", "alice@partner.example"}
	for i := range n - 2 {
		rcpts = append(rcpts, fmt.Sprintf("user%04d@nokey.example", i))
	}
	res, err := miltertest.Simulate("tcp", addr, "QB1", "s@local.example", rcpts, readEML(t, "plain.eml"))
	if err != nil || res.Final == nil || res.Final.Type != gomilter.ActionAccept {
		t.Fatalf("%v %+v", err, res)
	}
	var line string
	for _, l := range logs.lines() {
		if strings.Contains(l, "msg=message") && strings.Contains(l, "queue_id=QB1") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no message log line in\n%s", logs.b.String())
	}
	t.Logf("log line for %d recipients: %d octets", n, len(line))
	if len(line) > maxLoggedRecipients*maxDetail+4096 {
		t.Errorf("log line of %d octets", len(line))
	}
	if len(line) > 16<<10 {
		t.Errorf("log line of %d octets for recipients that each take one short description", len(line))
	}
	if want := fmt.Sprintf("and %d more: %d plain", n-maxLoggedRecipients, n-maxLoggedRecipients); !strings.Contains(line, want) {
		t.Errorf("log line lacks %q:\n%s", want, line)
	}
	if !strings.Contains(line, "rcpt_count=2000") || !strings.Contains(line, "alice@partner.example=") || strings.Contains(line, "user1999@") {
		t.Errorf("log line:\n%s", line)
	}
	if !strings.Contains(line, fmt.Sprintf("skipped_more=%d", 40-maxSkipped)) || strings.Count(line, "skipped=") != maxSkipped {
		t.Errorf("noisy recipient's records not bounded:\n%s", line)
	}
}

func TestSummarize(t *testing.T) {
	h := &handler{opts: &Options{}}
	var vs []verdict
	for i := range 120 {
		ev := recipient.Recipient{Address: fmt.Sprintf("u%d@x.example", i), Local: i%3 == 0, Match: policy.Match{Level: policy.LevelDane}}
		label := "encrypt"
		if ev.Local {
			label = "local"
		}
		vs = append(vs, verdict{ev: ev, label: label})
	}
	got := h.summarize(vs)
	if !strings.HasSuffix(got, " and 70 more: 47 encrypt, 23 local") {
		t.Errorf("summary ends %q", got[max(0, len(got)-60):])
	}
	if strings.Count(got, "@x.example") != maxLoggedRecipients {
		t.Errorf("%d recipients described", strings.Count(got, "@x.example"))
	}
	if s := summarizeAddrs([]string{"a", "b"}); s != "a b" {
		t.Errorf("summarizeAddrs = %q", s)
	}
	if s := clip(strings.Repeat("x", 2000), 100); len(s) != 100 || !strings.HasSuffix(s, "...") {
		t.Errorf("clip = %q", s)
	}
}
