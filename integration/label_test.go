package integration

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const labelZone = "label.test."

// TestLabelEndToEnd proves issue 9 item 2 with real parts: a label must not
// carry plaintext past level encrypt. In an environment of its own:
//
//   - label.test, signed: partner@label.test has an SMIMEA record (3 0 0,
//     RSA), pgp@label.test an OPENPGPKEY record of a GnuPG key;
//   - danemilter with policy encrypt for everyone and OpenPGP on;
//   - swaks sends through Postfix the two fakes of the issue
//     (testdata/label-fake-smime.eml: application/pkcs7-mime whose base64
//     body is a SEQUENCE header, the envelopedData OID and plaintext;
//     testdata/label-fake-pgp.eml: multipart/encrypted with plaintext
//     between the armor lines) to each recipient: the sink gets ciphertext,
//     which openssl cms -decrypt and gpg --decrypt turn back into the fake
//     entity, byte for byte;
//   - genuine ciphertext made by openssl cms -encrypt and gpg --encrypt to
//     the recipient's key passes untouched; made for another key, it is
//     encrypted again to the recipient's.
func TestLabelEndToEnd(t *testing.T) {
	e := newEnv(t, "gpg", "gpgconf")
	k := &keysEnv{env: e}
	dir := e.dir
	gnupg := mkdirPrivate(t, filepath.Join(dir, "gnupg"))
	partner := newUser(t, e.keys, "partner@label.test")
	outsider := newUser(t, e.keys, "outsider@elsewhere.test") // a key no record names
	pgpU := newPGPUser(t, filepath.Join(gnupg, "pgp"), "PGP Partner", "pgp@label.test", "future-default")
	pgpOut := newPGPUser(t, filepath.Join(gnupg, "out"), "PGP Outsider", "pgp-out@elsewhere.test", "future-default")
	k.openpgpkey(t, pgpU)
	e.start(t, envSpec{
		zones: []zoneSpec{{name: labelZone, signed: true, users: []*user{partner}, records: k.zoneLines()}},
		config: func(dir string, milterPort int, _ string) string {
			return daemonConfig{policy: `default = "encrypt"`, tables: "\n[openpgp]\nenabled = true\n"}.
				write(t, dir, milterPort, e.dns.resolver())
		},
	})
	k.log = e.log
	e.dns.requireSecure(t, []*user{partner}, nil)
	if r, err := e.dns.dig(t, "OPENPGPKEY", openpgpkeyOwner(pgpU.addr)); err != nil || r.status != "NOERROR" || !r.has("ad") {
		t.Fatalf("precondition: no DNSSEC-validated OPENPGPKEY for %s: %v\n%s", pgpU.addr, err, r.answer)
	}

	fakes := map[string][]byte{
		"label-fake-smime.eml": readCorpus(t, "label-fake-smime.eml"),
		"label-fake-pgp.eml":   readCorpus(t, "label-fake-pgp.eml"),
	}
	for name, orig := range fakes {
		t.Run("fake-to-smime/"+name, func(t *testing.T) {
			msg := k.deliverOne(t, partner.addr, orig)
			if bytes.Contains(msg, []byte("merger")) {
				t.Errorf("the sink received readable text:\n%s", clip(msg, 1500))
			}
			checkSMIMEAround(t, dir, msg, orig, partner)
		})
		t.Run("fake-to-openpgp/"+name, func(t *testing.T) {
			msg := k.deliverOne(t, pgpU.addr, orig)
			if bytes.Contains(msg, []byte("merger")) {
				t.Errorf("the sink received readable text:\n%s", clip(msg, 1500))
			}
			k.checkPGP(t, msg, orig, []*pgpUser{pgpU}, pgpU)
		})
	}

	t.Run("genuine-smime-passes", func(t *testing.T) {
		orig := opensslEncrypted(t, dir, partner)
		msg := k.deliverOne(t, partner.addr, orig)
		if tr := checkPlain(t, "openssl cms -encrypt", msg, orig); len(tr) != 0 {
			t.Errorf("X-Danemilter %q on a message that passed", tr)
		}
	})
	t.Run("genuine-smime-for-another-key-encrypted-again", func(t *testing.T) {
		orig := opensslEncrypted(t, dir, outsider)
		msg := k.deliverOne(t, partner.addr, orig)
		checkSMIMEAround(t, dir, msg, orig, partner)
	})
	t.Run("genuine-openpgp-passes", func(t *testing.T) {
		orig := gpgEncrypted(t, pgpU, pgpU)
		msg := k.deliverOne(t, pgpU.addr, orig)
		if tr := checkPlain(t, "gpg --encrypt", msg, orig); len(tr) != 0 {
			t.Errorf("X-Danemilter %q on a message that passed", tr)
		}
	})
	t.Run("genuine-openpgp-for-another-key-encrypted-again", func(t *testing.T) {
		orig := gpgEncrypted(t, pgpOut, pgpOut)
		msg := k.deliverOne(t, pgpU.addr, orig)
		k.checkPGP(t, msg, orig, []*pgpUser{pgpU}, pgpU)
	})

	e.checkNoStrayCopies(t)
	k.checkLog(t)
}

// opensslEncrypted is a message a client encrypted with openssl cms
// -encrypt to u's certificate (AES-256-CBC, S/MIME output).
func opensslEncrypted(t *testing.T, dir string, u *user) []byte {
	t.Helper()
	in := filepath.Join(dir, "entity-"+u.addr)
	writeFile(t, in, []byte("Content-Type: text/plain; charset=us-ascii\r\n\r\nThe merger closes on Friday.\r\n"), 0o600)
	out := run(t, "", 30*time.Second, mustLookPath(t, "openssl"), "cms", "-encrypt", "-binary", "-aes256", "-in", in, "-recip", u.certFile)
	// openssl writes MIME-Version, Content-Disposition, Content-Type,
	// Content-Transfer-Encoding, an empty line and the base64 body.
	return toCRLF(append([]byte("From: Sender <sender@local.test>\nTo: <"+u.addr+">\nSubject: encrypted by the client\n"+
		"Date: Wed, 02 Dec 2026 10:00:00 +0000\nMessage-ID: <openssl-"+u.addr+"@local.test>\n"), out...))
}

// gpgEncrypted is a PGP/MIME message (RFC 3156) a client encrypted with
// gpg --encrypt to the key of to, from the key ring of in.
func gpgEncrypted(t *testing.T, in, to *pgpUser) []byte {
	t.Helper()
	f := filepath.Join(in.home, "entity")
	writeFile(t, f, []byte("Content-Type: text/plain; charset=us-ascii\r\n\r\nThe merger closes on Friday.\r\n"), 0o600)
	armored := in.gpg(t, "--armor", "--trust-model", "always", "--encrypt", "-r", to.addr, "--output", "-", f)
	body := "--gpgb\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n" +
		"--gpgb\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n" +
		strings.ReplaceAll(strings.TrimRight(string(armored), "\n"), "\n", "\r\n") + "\r\n\r\n--gpgb--\r\n"
	return []byte("From: Sender <sender@local.test>\r\nTo: <" + to.addr + ">\r\nSubject: encrypted by the client\r\n" +
		"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <gpg-" + to.addr + "@local.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"gpgb\"\r\n\r\n" + body)
}

// checkSMIMEAround checks that msg, as delivered, is S/MIME encrypted by
// danemilter (one Content-Type, application/pkcs7-mime, the trace header)
// and that u decrypts it with openssl cms to orig's MIME entity exactly.
// (checkSMIME's test that no original Content-* field stays outside does
// not apply when the original was S/MIME itself: its fields are the same
// text as the new envelope's.)
func checkSMIMEAround(t *testing.T, dir string, msg, orig []byte, u *user) {
	t.Helper()
	h := parseHeader(t, msg)
	if cts := h["Content-Type"]; len(cts) != 1 || !strings.HasPrefix(cts[0], "application/pkcs7-mime") {
		t.Errorf("Content-Type %q, want one application/pkcs7-mime", cts)
	}
	if tr := h["X-Danemilter"]; len(tr) != 1 || !strings.HasPrefix(tr[0], "encrypted; format=smime") {
		t.Errorf("X-Danemilter %q, want one field starting with \"encrypted; format=smime\"", tr)
	}
	f := filepath.Join(dir, "delivered-"+u.addr+".eml")
	writeFile(t, f, msg, 0o600)
	out := run(t, "", 30*time.Second, mustLookPath(t, "openssl"), "cms", "-decrypt", "-in", f, "-recip", u.certFile, "-inkey", u.keyFile)
	if want := mimeEntity(t, orig); !bytes.Equal(out, want) {
		t.Errorf("%s decrypts a different MIME entity than the original's:\n%s", u.addr, firstDiff(out, want))
		return
	}
	t.Logf("%s: openssl cms -decrypt gives the original MIME entity, %d bytes identical", u.addr, len(mimeEntity(t, orig)))
}
