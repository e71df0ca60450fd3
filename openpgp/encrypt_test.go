package openpgp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// encryptParts encrypts entity and returns the boundary, the whole output
// and the armored text of the data part, after checking the RFC 3156 §4
// structure with mime/multipart.
func encryptParts(t *testing.T, entity []byte, keys []*pgp.Entity, opts Options) (boundary string, out, armored []byte) {
	t.Helper()
	var buf bytes.Buffer
	boundary, err := EncryptMIME(&buf, bytes.NewReader(entity), keys, opts)
	if err != nil {
		t.Fatalf("EncryptMIME: %v", err)
	}
	out = buf.Bytes()
	checkStructure(t, boundary, out)
	mr := multipart.NewReader(bytes.NewReader(out), boundary)
	if _, err := mr.NextRawPart(); err != nil {
		t.Fatal(err)
	}
	p, err := mr.NextRawPart()
	if err != nil {
		t.Fatal(err)
	}
	armored, err = io.ReadAll(p)
	if err != nil {
		t.Fatal(err)
	}
	return boundary, out, armored
}

// checkStructure checks the output of EncryptMIME against RFC 3156 §4 and
// RFC 2046 §5.1.
func checkStructure(t *testing.T, boundary string, out []byte) {
	t.Helper()
	if err := CheckBoundary(boundary); err != nil {
		t.Errorf("returned boundary: %v", err)
	}
	fields := OuterFields(boundary)
	if len(fields) != 1 || fields[0].Name != "Content-Type" {
		t.Fatalf("OuterFields = %v", fields)
	}
	mt, params, err := mime.ParseMediaType(fields[0].Value)
	if err != nil {
		t.Fatalf("outer Content-Type %q: %v", fields[0].Value, err)
	}
	if mt != "multipart/encrypted" || params["protocol"] != "application/pgp-encrypted" || params["boundary"] != boundary {
		t.Errorf("outer Content-Type %q: %s %v", fields[0].Value, mt, params)
	}
	// Every line ends in CRLF, and is short.
	for i, line := range bytes.SplitAfter(out, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !bytes.HasSuffix(line, []byte("\r\n")) || bytes.Count(line, []byte("\r")) != 1 {
			t.Fatalf("line %d %q does not end in a lone CRLF", i, line)
		}
		if len(line) > 78 {
			t.Errorf("line %d is %d characters long", i, len(line)-2)
		}
	}
	// The boundary occurs only in the three delimiter lines.
	if n := bytes.Count(out, []byte(boundary)); n != 3 {
		t.Errorf("boundary occurs %d times, want 3", n)
	}
	if !bytes.HasSuffix(out, []byte("\r\n--"+boundary+"--\r\n")) {
		t.Errorf("output does not end with the close delimiter: %q", out[max(0, len(out)-80):])
	}
	mr := multipart.NewReader(bytes.NewReader(out), boundary)
	p1, err := mr.NextRawPart()
	if err != nil {
		t.Fatalf("part 1: %v", err)
	}
	body1, _ := io.ReadAll(p1)
	if p1.Header.Get("Content-Type") != "application/pgp-encrypted" || string(body1) != "Version: 1\r\n" {
		t.Errorf("version part: %v %q", p1.Header, body1)
	}
	p2, err := mr.NextRawPart()
	if err != nil {
		t.Fatalf("part 2: %v", err)
	}
	body2, _ := io.ReadAll(p2)
	mt2, params2, err := mime.ParseMediaType(p2.Header.Get("Content-Type"))
	if err != nil || mt2 != "application/octet-stream" || params2["name"] != "encrypted.asc" {
		t.Errorf("data part Content-Type %q", p2.Header.Get("Content-Type"))
	}
	if d, dp, err := mime.ParseMediaType(p2.Header.Get("Content-Disposition")); err != nil || d != "inline" || dp["filename"] != "encrypted.asc" {
		t.Errorf("data part Content-Disposition %q", p2.Header.Get("Content-Disposition"))
	}
	if !bytes.HasPrefix(body2, []byte("-----BEGIN PGP MESSAGE-----\r\n")) || !bytes.HasSuffix(body2, []byte("-----END PGP MESSAGE-----\r\n")) {
		t.Errorf("data part is not an armored message: %q...%q", body2[:min(len(body2), 40)], body2[max(0, len(body2)-40):])
	}
	if _, err := mr.NextRawPart(); err != io.EOF {
		t.Errorf("a third part: %v", err)
	}
}

// msgInfo is what an independent walk over the packets finds.
type msgInfo struct {
	pkesks      int
	seipd       int // version of the encrypted data packet
	cipher      packet.CipherFunction
	compressed  bool
	binary      bool
	plain       []byte
	recipientID uint64
}

// inspect decrypts an armored message with key's secret keys packet by
// packet (not through openpgp.ReadMessage), and describes it.
func inspect(t *testing.T, armored []byte, key *pgp.Entity) msgInfo {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil || block.Type != "PGP MESSAGE" {
		t.Fatalf("armor: %v %v", err, block)
	}
	var info msgInfo
	var sessionKey []byte
	var cipher packet.CipherFunction
	pr := packet.NewReader(block.Body)
	for {
		p, err := pr.Next()
		if err != nil {
			t.Fatalf("packets: %v", err)
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			info.pkesks++
			for _, sk := range key.Subkeys {
				if sessionKey == nil && sk.PrivateKey != nil && (p.KeyId == sk.PublicKey.KeyId || bytes.Equal(p.KeyFingerprint, sk.PublicKey.Fingerprint)) {
					if err := p.Decrypt(sk.PrivateKey, nil); err != nil {
						t.Fatalf("session key: %v", err)
					}
					sessionKey, cipher, info.recipientID = p.Key, p.CipherFunc, sk.PublicKey.KeyId
				}
			}
			continue
		case *packet.SymmetricallyEncrypted:
			if sessionKey == nil {
				t.Fatal("no session key for this recipient")
			}
			info.seipd = p.Version
			if !p.IntegrityProtected {
				t.Error("encrypted data without integrity protection")
			}
			if p.Version == 2 {
				cipher = p.Cipher
			}
			info.cipher = cipher
			rc, err := p.Decrypt(cipher, sessionKey)
			if err != nil {
				t.Fatal(err)
			}
			inner, err := packet.NewReader(rc).Next()
			if err != nil {
				t.Fatal(err)
			}
			switch l := inner.(type) {
			case *packet.Compressed:
				info.compressed = true
			case *packet.LiteralData:
				info.binary = l.IsBinary
				if info.plain, err = io.ReadAll(l.Body); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("inner packet %T", inner)
			}
			if _, err := io.ReadAll(rc); err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Fatalf("integrity check: %v", err)
			}
			return info
		default:
			t.Fatalf("unexpected packet %T", p)
		}
	}
}

// readMessage decrypts with openpgp.ReadMessage.
func readMessage(t *testing.T, armored []byte, keys ...*pgp.Entity) []byte {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	md, err := pgp.ReadMessage(block.Body, pgp.EntityList(keys), nil, nil)
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	plain, err := io.ReadAll(md.UnverifiedBody)
	if err != nil {
		t.Fatalf("ReadMessage body: %v", err)
	}
	if !md.IsEncrypted || md.IsSigned || md.SignatureError != nil {
		t.Errorf("message details: encrypted %v signed %v %v", md.IsEncrypted, md.IsSigned, md.SignatureError)
	}
	return plain
}

func TestEncryptMIMERoundTrip(t *testing.T) {
	entity := testEntity()
	for _, k := range []keyKind{kindRSA3072, kindCv25519, kindP256, kindP384, kindV6, kindV6AEAD, kindAES128} {
		t.Run(string(k), func(t *testing.T) {
			key := newKey(t, k, alice, nil)
			_, _, armored := encryptParts(t, entity, []*pgp.Entity{key}, Options{})
			info := inspect(t, armored, key)
			wantSEIPD := 1
			if k == kindV6AEAD {
				wantSEIPD = 2
			}
			wantCipher := packet.CipherAES256
			if k == kindAES128 {
				wantCipher = packet.CipherAES128 // the key's preference rules (RFC 9580 §5.2.3.14)
			}
			if info.pkesks != 1 || info.seipd != wantSEIPD || info.cipher != wantCipher || info.compressed || !info.binary {
				t.Errorf("message: %+v, want 1 PKESK, SEIPDv%d, %v, uncompressed, binary", info, wantSEIPD, wantCipher)
			}
			if !bytes.Equal(info.plain, entity) {
				t.Errorf("plaintext %q, want %q", info.plain, entity)
			}
			if got := readMessage(t, armored, key); !bytes.Equal(got, entity) {
				t.Errorf("ReadMessage: %q, want %q", got, entity)
			}
		})
	}
}

// Two recipients each read the message; AEAD is used only when both
// advertise it.
func TestEncryptMIMETwoRecipients(t *testing.T) {
	entity := testEntity()
	for _, tt := range []struct {
		a, b  keyKind
		seipd int
	}{
		{kindRSA3072, kindCv25519, 1},
		{kindV6AEAD, kindCv25519, 1},
		{kindV6AEAD, kindV6, 1},
		{kindV6AEAD, kindV6AEAD, 2},
	} {
		t.Run(fmt.Sprintf("%s+%s", tt.a, tt.b), func(t *testing.T) {
			ka := newKey(t, tt.a, alice, nil)
			kb := newKey(t, tt.b, "bob@example.net", nil)
			_, _, armored := encryptParts(t, entity, []*pgp.Entity{ka, kb}, Options{})
			for _, k := range []*pgp.Entity{ka, kb} {
				info := inspect(t, armored, k)
				if info.pkesks != 2 || info.seipd != tt.seipd || !bytes.Equal(info.plain, entity) {
					t.Errorf("for %X: %+v", k.PrimaryKey.Fingerprint, info)
				}
				if got := readMessage(t, armored, k); !bytes.Equal(got, entity) {
					t.Errorf("ReadMessage for %X: %q", k.PrimaryKey.Fingerprint, got)
				}
			}
		})
	}
}

// GnuPG reads what EncryptMIME writes: for go-crypto keys of each kind
// imported into GnuPG, for keys GnuPG generated itself, and for a message to
// two recipients in two key rings.
func TestEncryptMIMEGnuPG(t *testing.T) {
	needGPG(t)
	entity := testEntity()
	type recipient struct {
		name string
		g    *gpgEnv
		key  *pgp.Entity // public (and, for go-crypto keys, secret) key
	}
	var rs []recipient
	for _, k := range []keyKind{kindRSA3072, kindCv25519, kindP256} {
		g := newGPG(t)
		key := newKey(t, k, alice, nil)
		g.importSecret(t, key)
		rs = append(rs, recipient{"go-crypto " + string(k), g, key})
	}
	for _, tt := range []struct{ uid, algo, usage string }{
		{"Test <rsa@x.test>", "rsa3072", "encrypt,sign"},
		{"Test <cv@x.test>", "future-default", "default"},
	} {
		g := newGPG(t)
		fpr := g.genKey(t, tt.uid, tt.algo, tt.usage)
		el, err := pgp.ReadKeyRing(bytes.NewReader(g.run(t, nil, "--export", fpr)))
		if err != nil || len(el) != 1 {
			t.Fatalf("reading the key GnuPG exported: %v", err)
		}
		rs = append(rs, recipient{"gpg " + tt.algo, g, el[0]})
	}
	decrypt := func(t *testing.T, r recipient, armored []byte) {
		t.Helper()
		plain, status := r.g.decrypt(t, armored)
		if !bytes.Equal(plain, entity) {
			t.Errorf("%s: gpg decrypted %q, want %q", r.name, plain, entity)
		}
		// DECRYPTION_INFO <mdc method> <cipher>: 9 is AES-256 (RFC 9580
		// §9.3); PLAINTEXT 62 is a binary literal ('b').
		for _, want := range []string{"DECRYPTION_OKAY", "PLAINTEXT 62 ", "GOODMDC"} {
			if !strings.Contains(status, want) {
				t.Errorf("%s: gpg status lacks %q:\n%s", r.name, want, status)
			}
		}
		if !strings.Contains(status, "DECRYPTION_INFO 2 9") {
			t.Errorf("%s: not AES-256 with MDC:\n%s", r.name, status)
		}
		packets := string(r.g.run(t, armored, "--list-packets"))
		if strings.Contains(packets, "compressed packet") || !strings.Contains(packets, "literal data packet") {
			t.Errorf("%s: packets:\n%s", r.name, packets)
		}
	}
	for _, r := range rs {
		t.Run(r.name, func(t *testing.T) {
			_, _, armored := encryptParts(t, entity, []*pgp.Entity{r.key}, Options{})
			decrypt(t, r, armored)
		})
	}
	t.Run("two recipients", func(t *testing.T) {
		a, b := rs[0], rs[len(rs)-1] // go-crypto RSA and GnuPG Curve25519
		_, _, armored := encryptParts(t, entity, []*pgp.Entity{a.key, b.key}, Options{})
		decrypt(t, a, armored)
		decrypt(t, b, armored)
	})
	t.Run("header protection", func(t *testing.T) {
		r := rs[1]
		_, _, armored := encryptParts(t, entity, []*pgp.Entity{r.key}, Options{Protect: []Field{{Name: "Subject", Value: "Secret plans"}}})
		plain, _ := r.g.decrypt(t, armored)
		if !bytes.HasPrefix(plain, []byte("Subject: Secret plans\r\nHP-Outer: Subject: [...]\r\n")) || !bytes.HasSuffix(plain, entity[bytes.Index(entity, []byte("\r\n\r\n")):]) {
			t.Errorf("gpg decrypted %q", plain)
		}
	})
}

func TestEncryptMIMEHeaderProtection(t *testing.T) {
	key := newKey(t, kindCv25519, alice, nil)
	protect := []Field{
		{Name: "Received", Value: "from a by b"},
		{Name: "From", Value: "Alice <alice@example.org>"},
		{Name: "To", Value: "Bob <bob@example.net>"},
		{Name: "subject", Value: "Quarterly\r\n numbers: " + strings.Repeat("very ", 20) + "secret"},
		{Name: "Date", Value: "Wed, 25 Nov 2026 10:00:00 +0000"},
		{Name: "Message-ID", Value: "<1@example.org>"},
		{Name: "DKIM-Signature", Value: "v=1; ..."},
		{Name: "Bcc", Value: "carol@example.net"},
		{Name: "Bad Name", Value: "x"},
	}
	body := "\r\n--inner\r\nContent-Type: text/plain\r\n\r\nhello\r\n--inner--\r\n"
	entity := "Content-Type: multipart/mixed;\r\n boundary=\"inner\"\r\nContent-Transfer-Encoding: 7bit\r\n" + body
	_, _, armored := encryptParts(t, []byte(entity), []*pgp.Entity{key}, Options{Protect: protect})
	plain := string(readMessage(t, armored, key))

	head, rest, ok := strings.Cut(plain, "\r\n\r\n")
	if !ok || "\r\n"+rest != body {
		t.Fatalf("body changed: %q", plain)
	}
	hdr, err := textproto.NewReader(bufio.NewReader(strings.NewReader(head + "\r\n\r\n"))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("inner header: %v\n%s", err, head)
	}
	wantSubject := "Quarterly numbers: " + strings.Repeat("very ", 20) + "secret"
	if got := hdr.Get("Subject"); got != wantSubject {
		t.Errorf("Subject %q, want %q", got, wantSubject)
	}
	for _, n := range []string{"From", "To", "Date", "Message-Id"} {
		if hdr.Get(n) == "" {
			t.Errorf("no %s inside", n)
		}
	}
	for _, n := range []string{"Received", "Dkim-Signature", "Bcc", "Bad Name"} {
		if _, ok := hdr[n]; ok {
			t.Errorf("%s copied inside", n)
		}
	}
	outer := hdr["Hp-Outer"]
	wantOuter := []string{"From: Alice <alice@example.org>", "To: Bob <bob@example.net>", "Subject: [...]",
		"Date: Wed, 25 Nov 2026 10:00:00 +0000", "Message-ID: <1@example.org>"}
	if strings.Join(outer, "|") != strings.Join(wantOuter, "|") {
		t.Errorf("HP-Outer = %q, want %q", outer, wantOuter)
	}
	mt, params, err := mime.ParseMediaType(hdr.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] != "inner" || params["hp"] != "cipher" || params["protected-headers"] != "v1" {
		t.Errorf("Content-Type %q: %v", hdr.Get("Content-Type"), err)
	}
	if hdr.Get("Content-Transfer-Encoding") != "7bit" {
		t.Errorf("Content-Transfer-Encoding lost")
	}
	for _, line := range strings.Split(head, "\r\n") {
		if len(line) > 78 {
			t.Errorf("inner header line of %d characters: %q", len(line), line)
		}
	}
}

func TestEncryptMIMEHeaderProtectionEdges(t *testing.T) {
	key := newKey(t, kindCv25519, alice, nil)
	protect := []Field{{Name: "Subject", Value: "s"}}
	for _, tt := range []struct{ name, entity, want string }{
		{"no Content-Type", "\r\nbody\r\n",
			"Subject: s\r\nHP-Outer: Subject: [...]\r\nContent-Type: text/plain; charset=us-ascii; protected-headers=\"v1\"; hp=\"cipher\"\r\n\r\nbody\r\n"},
		{"LF line ends", "Content-Type: text/plain\n\nbody\n",
			"Subject: s\r\nHP-Outer: Subject: [...]\r\nContent-Type: text/plain; protected-headers=\"v1\"; hp=\"cipher\"\r\n\nbody\n"},
		{"header only", "Content-Type: text/plain",
			"Subject: s\r\nHP-Outer: Subject: [...]\r\nContent-Type: text/plain; protected-headers=\"v1\"; hp=\"cipher\"\r\n\r\n"},
		{"already protected", "Content-Type: text/plain; hp=\"clear\"\r\n\r\nbody\r\n",
			"Content-Type: text/plain; hp=\"clear\"\r\n\r\nbody\r\n"},
		{"legacy protected", "Content-Type: text/plain; protected-headers=v1\r\n\r\nbody\r\n",
			"Content-Type: text/plain; protected-headers=v1\r\n\r\nbody\r\n"},
		{"long line in header", "X-Long: " + strings.Repeat("a", 10000) + "\r\n\r\nb",
			"Subject: s\r\nHP-Outer: Subject: [...]\r\nContent-Type: text/plain; charset=us-ascii; protected-headers=\"v1\"; hp=\"cipher\"\r\nX-Long: " + strings.Repeat("a", 10000) + "\r\n\r\nb"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, armored := encryptParts(t, []byte(tt.entity), []*pgp.Entity{key}, Options{Protect: protect})
			// Compare unfolded: a long Content-Type is folded.
			if got := strings.ReplaceAll(string(readMessage(t, armored, key)), "\r\n ", " "); got != tt.want {
				t.Errorf("inner entity\n%q, want\n%q", got, tt.want)
			}
		})
	}
	t.Run("too long", func(t *testing.T) {
		entity := strings.Repeat("X-A: b\r\n", maxHeaderBytes/8+1) + "\r\nbody"
		_, err := EncryptMIME(io.Discard, strings.NewReader(entity), []*pgp.Entity{key}, Options{Protect: protect})
		if !errors.Is(err, ErrHeaderTooLong) {
			t.Errorf("err = %v, want ErrHeaderTooLong", err)
		}
	})
	t.Run("nothing to protect", func(t *testing.T) {
		entity := testEntity()
		_, _, armored := encryptParts(t, entity, []*pgp.Entity{key}, Options{Protect: []Field{{Name: "Received", Value: "x"}}})
		if got := readMessage(t, armored, key); !bytes.Equal(got, entity) {
			t.Errorf("inner entity %q, want it unchanged", got[:min(len(got), 200)])
		}
	})
}

func TestEncryptMIMEErrors(t *testing.T) {
	good := newKey(t, kindCv25519, alice, nil)
	expired := newKey(t, kindCv25519, alice, &packet.Config{KeyLifetimeSecs: 60})
	weak := newKey(t, kindRSA1024, alice, nil)
	signingOnly := newKey(t, kindCv25519, alice, &packet.Config{})
	signingOnly.Subkeys = nil
	entity := testEntity()
	boom := errors.New("boom")

	for _, tt := range []struct {
		name  string
		w     io.Writer
		r     io.Reader
		keys  []*pgp.Entity
		opts  Options
		want  error
		index int // of the RecipientError, when want is ErrUnusableKey
	}{
		{"no recipients", io.Discard, bytes.NewReader(entity), nil, Options{}, ErrNoRecipients, 0},
		{"nil key", io.Discard, bytes.NewReader(entity), []*pgp.Entity{good, nil}, Options{}, ErrUnusableKey, 1},
		{"expired at Now", io.Discard, bytes.NewReader(entity), []*pgp.Entity{good, expired}, Options{Now: time.Now().Add(time.Hour)}, ErrUnusableKey, 1},
		{"weak", io.Discard, bytes.NewReader(entity), []*pgp.Entity{weak}, Options{}, ErrUnusableKey, 0},
		{"signing only", io.Discard, bytes.NewReader(entity), []*pgp.Entity{signingOnly}, Options{}, ErrUnusableKey, 0},
		{"bad boundary", io.Discard, bytes.NewReader(entity), []*pgp.Entity{good}, Options{Boundary: "abc"}, ErrBadBoundary, 0},
		{"boundary too long", io.Discard, bytes.NewReader(entity), []*pgp.Entity{good}, Options{Boundary: "_" + strings.Repeat("a", 70)}, ErrBadBoundary, 0},
		{"reader fails", io.Discard, iotest.ErrReader(boom), []*pgp.Entity{good}, Options{}, boom, 0},
		{"reader fails late", io.Discard, io.MultiReader(bytes.NewReader(largeEntity(100_000)), iotest.ErrReader(boom)), []*pgp.Entity{good}, Options{}, boom, 0},
		{"writer fails", errWriter{boom}, bytes.NewReader(entity), []*pgp.Entity{good}, Options{}, boom, 0},
		{"writer fails late", &limitWriter{n: 50_000, err: boom}, bytes.NewReader(largeEntity(200_000)), []*pgp.Entity{good}, Options{}, boom, 0},
		{"rand fails", io.Discard, bytes.NewReader(entity), []*pgp.Entity{good}, Options{Rand: iotest.ErrReader(boom)}, boom, 0},
		{"header reader fails", io.Discard, iotest.ErrReader(boom), []*pgp.Entity{good}, Options{Protect: []Field{{Name: "Subject", Value: "x"}}}, boom, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := EncryptMIME(tt.w, tt.r, tt.keys, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want == ErrUnusableKey {
				var re *RecipientError
				if !errors.As(err, &re) || re.Index != tt.index {
					t.Errorf("err = %#v, want a *RecipientError for index %d", err, tt.index)
				}
			}
		})
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// limitWriter accepts n bytes, then fails.
type limitWriter struct {
	n   int
	err error
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, w.err
	}
	w.n -= len(p)
	return len(p), nil
}

func TestCheckBoundary(t *testing.T) {
	for _, b := range []string{"=_danemilter_0123456789abcdef01234567", "_", "a.b", "x:y", "(c)", "?", "a b_c", strings.Repeat("_", 70)} {
		if err := CheckBoundary(b); err != nil {
			t.Errorf("CheckBoundary(%q) = %v", b, err)
		}
	}
	for _, b := range []string{"", "abc", "---BEGIN PGP", "=AAAA", "a_b ", "a\"b_", "a_b\r\n", "ä_", strings.Repeat("_", 71), "a;b_", "a@_"} {
		if err := CheckBoundary(b); !errors.Is(err, ErrBadBoundary) {
			t.Errorf("CheckBoundary(%q) = %v, want ErrBadBoundary", b, err)
		}
	}
	b1, err := NewBoundary(nil)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := NewBoundary(nil)
	if b1 == b2 || CheckBoundary(b1) != nil || !strings.HasPrefix(b1, "=_danemilter_") || len(b1) != 13+24 {
		t.Errorf("NewBoundary: %q %q", b1, b2)
	}
	if _, err := NewBoundary(iotest.ErrReader(io.ErrUnexpectedEOF)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("NewBoundary with a failing reader: %v", err)
	}
}

func TestEncryptMIMEGivenBoundary(t *testing.T) {
	key := newKey(t, kindCv25519, alice, nil)
	b, out, _ := encryptParts(t, testEntity(), []*pgp.Entity{key}, Options{Boundary: "my_boundary"})
	if b != "my_boundary" || !bytes.HasPrefix(out, []byte(preamble+"\r\n--my_boundary\r\n")) {
		t.Errorf("boundary %q, output %q", b, out[:80])
	}
}

// Encrypting shares nothing between calls: one key, many goroutines (run
// with -race).
func TestEncryptMIMEConcurrent(t *testing.T) {
	keys := []*pgp.Entity{newKey(t, kindCv25519, alice, nil), newKey(t, kindRSA3072, alice, nil)}
	entity := testEntity()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b bytes.Buffer
			if _, err := EncryptMIME(&b, bytes.NewReader(entity), keys, Options{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// genReader yields n bytes of a fixed pattern without holding them.
type genReader struct{ n int64 }

func (g *genReader) Read(p []byte) (int, error) {
	if g.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.n {
		p = p[:g.n]
	}
	for i := range p {
		p[i] = "0123456789abcdefghijklmnopqrstuvwxyz\r\n"[i%38]
	}
	g.n -= int64(len(p))
	return len(p), nil
}

// heapWriter discards what it is given and measures the live heap (after a
// collection) every few megabytes.
type heapWriter struct {
	n, next int64
	peak    uint64
}

func (h *heapWriter) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if h.n >= h.next {
		h.next += 4 << 20
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		h.peak = max(h.peak, ms.HeapAlloc)
	}
	return len(p), nil
}

// A 25 MB entity is encrypted in bounded memory, read from a stream or
// from a bytes.Reader (which io.Copy would hand over in one Write).
func TestEncryptMIMEStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("25 MB")
	}
	key := newKey(t, kindCv25519, alice, nil)
	const size = 25_000_000
	for _, src := range []string{"stream", "bytes.Reader"} {
		t.Run(src, func(t *testing.T) {
			var r io.Reader = &genReader{n: size}
			if src == "bytes.Reader" {
				data, _ := io.ReadAll(&genReader{n: size})
				r = bytes.NewReader(data)
			}
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			h := &heapWriter{}
			if _, err := EncryptMIME(h, r, []*pgp.Entity{key}, Options{}); err != nil {
				t.Fatal(err)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if h.n < size*4/3 {
				t.Errorf("wrote %d bytes for %d", h.n, size)
			}
			rise := int64(h.peak) - int64(before.HeapAlloc)
			total := after.TotalAlloc - before.TotalAlloc
			// crypto/cipher.StreamWriter, under go-crypto's SEIPDv1 writer,
			// allocates a buffer per write: garbage of about the message's
			// size, collected as it goes; what stays live is small.
			t.Logf("live heap rise during 25 MB: %d KiB; allocated in all: %d KiB", rise/1024, total/1024)
			if rise > 4<<20 {
				t.Errorf("live heap rose by %d KiB while encrypting 25 MB", rise/1024)
			}
		})
	}
}

// The armored body has the size mail expects: about 4/3 of the entity.
func TestEncryptMIMEOverhead(t *testing.T) {
	key := newKey(t, kindCv25519, alice, nil)
	entity := largeEntity(1_000_000)
	var b bytes.Buffer
	if _, err := EncryptMIME(&b, bytes.NewReader(entity), []*pgp.Entity{key}, Options{}); err != nil {
		t.Fatal(err)
	}
	ratio := float64(b.Len()) / float64(len(entity))
	if ratio < 1.33 || ratio > 1.42 {
		t.Errorf("output/input = %.3f", ratio)
	}
}

// The output written to a file decrypts with gpg reading the file as a
// whole message after the caller's header is added (what the milter sends).
func TestEncryptMIMEWholeMessageGnuPG(t *testing.T) {
	g := newGPG(t)
	key := newKey(t, kindCv25519, alice, nil)
	g.importSecret(t, key)
	var msg bytes.Buffer
	msg.WriteString("From: a@example.com\r\nTo: alice@example.org\r\nSubject: [...]\r\nMIME-Version: 1.0\r\n")
	boundary, err := NewBoundary(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range OuterFields(boundary) {
		fmt.Fprintf(&msg, "%s: %s\r\n", f.Name, f.Value)
	}
	msg.WriteString("\r\n")
	entity := testEntity()
	if _, err := EncryptMIME(&msg, bytes.NewReader(entity), []*pgp.Entity{key}, Options{Boundary: boundary}); err != nil {
		t.Fatal(err)
	}
	// gpg finds the armored block inside the mail and decrypts it.
	plain, _ := g.decrypt(t, msg.Bytes())
	if !bytes.Equal(plain, entity) {
		t.Errorf("gpg decrypted %q", plain)
	}
}
