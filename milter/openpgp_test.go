package milter

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	gomilter "github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/policy"

	"github.com/danemilter/danemilter/milter/miltertest"
)

// pgpUser makes a Curve25519 OpenPGP key for addr and publishes it as an
// OPENPGPKEY record in f.
func pgpUser(t *testing.T, f *dane.Fake, addr string) *pgp.Entity {
	t.Helper()
	local, _, _ := strings.Cut(addr, "@")
	e, err := pgp.NewEntity(local, "", addr, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, DefaultHash: crypto.SHA256,
		DefaultCipher: packet.CipherAES256, Time: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	name, err := dane.OPENPGPKEYName(addr, false)
	if err != nil {
		t.Fatal(err)
	}
	f.Set(name, dns.TypeOPENPGPKEY, dane.Result{Status: dane.StatusSecure, TTL: time.Minute, Records: []dns.RR{
		&dns.OPENPGPKEY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeOPENPGPKEY, Class: dns.ClassINET, Ttl: 60}, PublicKey: base64.StdEncoding.EncodeToString(pub.Bytes())},
	}})
	return e
}

// pgpDecrypt reads a PGP/MIME message (RFC 3156) with go-crypto and returns
// the decrypted entity.
func pgpDecrypt(t *testing.T, msg []byte, key *pgp.Entity) []byte {
	t.Helper()
	ct := strings.Join(header(msg, "Content-Type"), "")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/encrypted" || params["protocol"] != "application/pgp-encrypted" {
		t.Fatalf("Content-Type %q is not PGP/MIME", ct)
	}
	_, body, _ := miltertest.SplitMessage(msg)
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts [][]byte
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, b)
	}
	if len(parts) != 2 || !bytes.Contains(parts[0], []byte("Version: 1")) {
		t.Fatalf("%d parts, want the version part and the data part", len(parts))
	}
	blk, err := armor.Decode(bytes.NewReader(parts[1]))
	if err != nil {
		t.Fatal(err)
	}
	md, err := pgp.ReadMessage(blk.Body, pgp.EntityList{key}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(md.UnverifiedBody)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func isPGP(msg []byte) bool {
	return strings.HasPrefix(strings.Join(header(msg, "Content-Type"), ""), "multipart/encrypted")
}

func isSMIME(msg []byte) bool {
	return strings.HasPrefix(strings.Join(header(msg, "Content-Type"), ""), "application/pkcs7-mime")
}

func TestOpenPGP(t *testing.T) {
	fake := &dane.Fake{}
	pia := pgpUser(t, fake, "pia@pgp.example")
	both := newUser(t, "both@mixed.example")
	both.publish(t, fake)
	bothPGP := pgpUser(t, fake, "both@mixed.example")
	sam := newUser(t, "sam@smime.example")
	sam.publish(t, fake)
	name, _ := dane.OPENPGPKEYName("forged@pgpbogus.example", false)
	fake.SetStatus(name, dns.TypeOPENPGPKEY, dane.StatusBogus, dane.ErrBogus)
	plain := readEML(t, "utf8-8bit.eml")

	t.Run("OPENPGPKEY only: PGP/MIME that go-crypto decrypts to the entity", func(t *testing.T) {
		addr := start(t, Options{Resolver: fake, OpenPGP: true})
		res, err := miltertest.Simulate("tcp", addr, "QP1", "s@local.example", []string{"pia@pgp.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Final.Type != gomilter.ActionAccept || !isPGP(res.Message) {
			t.Fatalf("final %+v, Content-Type %q", res.Final, header(res.Message, "Content-Type"))
		}
		if got := pgpDecrypt(t, res.Message, pia); !bytes.Equal(got, entity(t, plain)) {
			t.Errorf("decrypted entity differs:\n%q\n%q", got, entity(t, plain))
		}
		if tr := header(res.Message, TraceHeader); len(tr) != 1 || !strings.Contains(tr[0], "format=pgp-mime") {
			t.Errorf("trace %q", tr)
		}
		for _, h := range []string{"From", "To", "Subject", "Message-ID"} {
			if strings.Join(header(res.Message, h), "") != strings.Join(header(plain, h), "") {
				t.Errorf("%s changed", h)
			}
		}
	})

	t.Run("OpenPGP off: OPENPGPKEY not looked up", func(t *testing.T) {
		addr := start(t, Options{Resolver: fake})
		res, err := miltertest.Simulate("tcp", addr, "QP2", "s@local.example", []string{"pia@pgp.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.Message, plain) {
			t.Error("message changed although OpenPGP is off")
		}
	})

	t.Run("both record types: the preference decides", func(t *testing.T) {
		for _, pref := range []Format{FormatSMIME, FormatOpenPGP} {
			addr := start(t, Options{Resolver: fake, OpenPGP: true, Prefer: func(string) Format { return pref }})
			res, err := miltertest.Simulate("tcp", addr, "QP3", "s@local.example", []string{"both@mixed.example"}, plain)
			if err != nil {
				t.Fatal(err)
			}
			if pref == FormatSMIME {
				if !isSMIME(res.Message) || !bytes.Equal(both.decrypt(t, res.Message), entity(t, plain)) {
					t.Error("preference smime: not S/MIME readable by the user")
				}
			} else if !isPGP(res.Message) || !bytes.Equal(pgpDecrypt(t, res.Message, bothPGP), entity(t, plain)) {
				t.Error("preference openpgp: not PGP/MIME readable by the user")
			}
		}
	})

	t.Run("one format covers everyone: no split", func(t *testing.T) {
		rec := &recorder{}
		addr := start(t, Options{Resolver: fake, OpenPGP: true, Reinjector: rec, Prefer: func(string) Format { return FormatOpenPGP }})
		res, err := miltertest.Simulate("tcp", addr, "QP4", "s@local.example", []string{"both@mixed.example", "sam@smime.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.calls) != 0 || !isSMIME(res.Message) {
			t.Fatalf("re-injected %d, S/MIME %v", len(rec.calls), isSMIME(res.Message))
		}
		for _, u := range []*user{both, sam} {
			if !bytes.Equal(u.decrypt(t, res.Message), entity(t, plain)) {
				t.Errorf("%s cannot read it", u.addr)
			}
		}
	})

	t.Run("S/MIME user and OpenPGP user: one copy each", func(t *testing.T) {
		rec := &recorder{}
		addr := start(t, Options{Resolver: fake, OpenPGP: true, Reinjector: rec})
		res, err := miltertest.Simulate("tcp", addr, "QP5", "s@local.example", []string{"sam@smime.example", "pia@pgp.example", "carol@nokey.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Final.Type != gomilter.ActionAccept {
			t.Fatalf("final %+v", res.Final)
		}
		if !isSMIME(res.Message) || !bytes.Equal(sam.decrypt(t, res.Message), entity(t, plain)) {
			t.Error("the S/MIME copy is not readable by sam")
		}
		if len(rec.calls) != 2 {
			t.Fatalf("%d re-injections, want 2", len(rec.calls))
		}
		var sawPGP, sawPlain bool
		for _, c := range rec.calls {
			switch strings.Join(c.rcpts, ",") {
			case "pia@pgp.example":
				sawPGP = true
				if !isPGP(c.msg) || !bytes.Equal(pgpDecrypt(t, c.msg, pia), entity(t, plain)) {
					t.Error("the PGP copy is not readable by pia")
				}
			case "carol@nokey.example":
				sawPlain = true
				_, b, _ := miltertest.SplitMessage(c.msg)
				_, ob, _ := miltertest.SplitMessage(plain)
				if !bytes.Equal(b, ob) {
					t.Error("the plaintext copy differs")
				}
			default:
				t.Errorf("re-injected to %q", c.rcpts)
			}
		}
		if !sawPGP || !sawPlain {
			t.Errorf("copies: pgp %v plain %v", sawPGP, sawPlain)
		}
		if del := deleted(res.Modifications); strings.Join(del, ",") != "pia@pgp.example,carol@nokey.example" {
			t.Errorf("removed %q", del)
		}
	})

	t.Run("different formats without splitting", func(t *testing.T) {
		tbl := policy.NewTable(policy.LevelDane)
		addr := start(t, Options{Resolver: fake, OpenPGP: true, Levels: tbl})
		res, err := miltertest.Simulate("tcp", addr, "QP6", "s@local.example", []string{"sam@smime.example", "pia@pgp.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Final.Type != gomilter.ActionAccept || !bytes.Equal(res.Message, plain) {
			t.Errorf("opportunistic: want plaintext, got %+v", res.Final)
		}
		must(t, tbl.Set("pgp.example", policy.LevelEncrypt))
		addr = start(t, Options{Resolver: fake, OpenPGP: true, Levels: tbl})
		res, err = miltertest.Simulate("tcp", addr, "QP7", "s@local.example", []string{"sam@smime.example", "pia@pgp.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Final.Type != gomilter.ActionRejectWithCode || !strings.HasPrefix(res.Final.SMTPReply, "451 4.7.5") {
			t.Errorf("mandatory: want 451 4.7.5, got %+v", res.Final)
		}
	})

	t.Run("a forged OPENPGPKEY answer is not hidden by a clean SMIMEA denial", func(t *testing.T) {
		addr := start(t, Options{Resolver: fake, OpenPGP: true, RcptWait: time.Second})
		res, err := miltertest.Simulate("tcp", addr, "QP8", "s@local.example", []string{"forged@pgpbogus.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rcpts[0] == nil || !strings.HasPrefix(res.Rcpts[0].SMTPReply, "451 4.7.5") {
			t.Errorf("rcpt %+v, want 451 4.7.5", res.Rcpts[0])
		}
	})

	t.Run("header protection", func(t *testing.T) {
		addr := start(t, Options{Resolver: fake, OpenPGP: true, ProtectHeaders: true})
		res, err := miltertest.Simulate("tcp", addr, "QP9", "s@local.example", []string{"pia@pgp.example"}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if s := header(res.Message, "Subject"); len(s) != 1 || s[0] != "[...]" {
			t.Errorf("outer Subject %q", s)
		}
		inner := pgpDecrypt(t, res.Message, pia)
		orig := strings.Join(header(plain, "Subject"), "")
		if !bytes.Contains(inner, []byte("Subject: "+orig)) || !bytes.Contains(inner, []byte("protected-headers")) {
			t.Errorf("inner entity lacks the real Subject %q:\n%.400s", orig, inner)
		}
	})
}
