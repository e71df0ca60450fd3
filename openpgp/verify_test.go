package openpgp

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"
)

// signedContent is the first part of the test messages: header fields, an
// empty line, a quoted-printable body, CRLF line ends throughout.
const signedContent = "Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Gr=C3=BC=C3=9Fe aus K=C3=B6ln.\r\n" +
	"From the gateway, with trailing space encoded:=20\r\n"

// wrapSigned builds an RFC 3156 §5 multipart/signed entity of content and
// the armored signature sig.
func wrapSigned(micalg, content string, sig []byte) []byte {
	return []byte("Content-Type: multipart/signed; micalg=" + micalg + ";\r\n" +
		" protocol=\"application/pgp-signature\"; boundary=\"sig_b\"\r\n" +
		"\r\n" +
		"This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n" +
		"--sig_b\r\n" +
		content +
		"\r\n--sig_b\r\n" +
		"Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n" +
		"Content-Description: OpenPGP digital signature\r\n" +
		"\r\n" +
		string(sig) +
		"\r\n--sig_b--\r\n")
}

// goSign makes an armored detached signature of content with go-crypto.
func goSign(t testing.TB, e *pgp.Entity, content string, text bool, cfg *packet.Config) []byte {
	t.Helper()
	var b bytes.Buffer
	sign := pgp.ArmoredDetachSign
	if text {
		sign = pgp.ArmoredDetachSignText
	}
	if err := sign(&b, e, strings.NewReader(content), cfg); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// rawSign signs content with e's primary key at time at without asking
// whether the key may sign then (go-crypto's DetachSign refuses expired
// and revoked keys), as a forger or a careless implementation would.
func rawSign(t testing.TB, e *pgp.Entity, content string, at time.Time) []byte {
	t.Helper()
	return rawSignWith(t, e.PrivateKey, content, at)
}

// gpgSigner is a GnuPG key made in a fresh home, its public key read by
// go-crypto.
type gpgSigner struct {
	g       *gpgEnv
	uid     string
	fpr     string
	keyring pgp.EntityList
}

func newGPGSigner(t *testing.T, algo string) *gpgSigner {
	t.Helper()
	g := newGPG(t)
	uid := "Signer <signer-" + algo + "@example.org>"
	fpr := g.genKey(t, uid, algo, "sign")
	kr, err := pgp.ReadKeyRing(bytes.NewReader(g.run(t, nil, "--export", fpr)))
	if err != nil {
		t.Fatal(err)
	}
	return &gpgSigner{g: g, uid: uid, fpr: fpr, keyring: kr}
}

// sign runs gpg --detach-sign --armor over content with digest.
func (s *gpgSigner) sign(t *testing.T, content, digest string) []byte {
	t.Helper()
	return s.g.run(t, []byte(content), "--detach-sign", "--armor", "--digest-algo", digest, "--local-user", s.fpr)
}

// wantErr fails unless v's error is target (nil: valid).
func wantErr(t *testing.T, v *Verification, target error) {
	t.Helper()
	if target == nil {
		if !v.Valid() {
			t.Fatalf("not valid: %v", v.Err)
		}
		return
	}
	if v.Valid() {
		t.Fatalf("valid, want %v", target)
	}
	if !errors.Is(v.Err, target) {
		t.Fatalf("error %v, want %v", v.Err, target)
	}
}

// tamperings return copies of a signed entity that must not verify, and
// the error each must give (nil: any failure).
func tamperings(entity []byte) map[string]struct {
	msg  []byte
	want error
} {
	s := string(entity)
	out := map[string]struct {
		msg  []byte
		want error
	}{
		"body byte":          {[]byte(strings.Replace(s, "aus K=C3", "aus L=C3", 1)), ErrBadSignature},
		"header in part":     {[]byte(strings.Replace(s, "charset=utf-8", "charset=UTF-8", 1)), ErrBadSignature},
		"added header":       {[]byte(strings.Replace(s, "--sig_b\r\nContent-Type: text/plain", "--sig_b\r\nContent-Type: text/html", 1)), ErrBadSignature},
		"trailing space":     {[]byte(strings.Replace(s, "encoded:=20\r\n", "encoded:=20 \r\n", 1)), ErrBadSignature},
		"line dropped":       {[]byte(strings.Replace(s, "From the gateway, with trailing space encoded:=20\r\n", "", 1)), ErrBadSignature},
		"armor char swapped": {swapArmorChar(entity), nil},
	}
	if sig := flipSignatureBit(entity); sig != nil {
		out["signature bit"] = struct {
			msg  []byte
			want error
		}{sig, ErrBadSignature}
	}
	return out
}

// swapArmorChar changes one base64 character in the middle of the first
// armor line after the blank line.
func swapArmorChar(entity []byte) []byte {
	m := append([]byte(nil), entity...)
	i := bytes.Index(m, []byte("-----BEGIN PGP SIGNATURE-----"))
	j := bytes.Index(m[i:], []byte("\n\n"))
	if k := bytes.Index(m[i:], []byte("\r\n\r\n")); k >= 0 && (j < 0 || k < j) {
		j = k + 2
	}
	p := i + j + 2 + 20
	if m[p] == 'A' {
		m[p] = 'B'
	} else {
		m[p] = 'A'
	}
	return m
}

// flipSignatureBit decodes the signature, flips the last byte of the
// signature value and re-armors it (with a correct checksum), so the
// packet still parses.
func flipSignatureBit(entity []byte) []byte {
	s := string(entity)
	i := strings.Index(s, "-----BEGIN PGP SIGNATURE-----")
	j := strings.Index(s, "-----END PGP SIGNATURE-----") + len("-----END PGP SIGNATURE-----")
	block, err := armor.Decode(strings.NewReader(s[i:j]))
	if err != nil {
		return nil
	}
	raw, err := readAllBytes(block.Body)
	if err != nil || len(raw) < 10 {
		return nil
	}
	raw[len(raw)-3] ^= 0x01
	var b bytes.Buffer
	w, err := armor.Encode(&b, "PGP SIGNATURE", nil)
	if err != nil {
		return nil
	}
	w.Write(raw)
	w.Close()
	return []byte(s[:i] + b.String() + s[j:])
}

func readAllBytes(r interface{ Read([]byte) (int, error) }) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r)
	return b.Bytes(), err
}

func TestVerifyMIMEGnuPG(t *testing.T) {
	for _, tc := range []struct{ algo, digest, micalg string }{
		{"rsa3072", "SHA256", "pgp-sha256"},
		{"ed25519", "SHA512", "pgp-sha512"},
	} {
		t.Run(tc.algo, func(t *testing.T) {
			s := newGPGSigner(t, tc.algo)
			now := time.Now()
			msg := wrapSigned(tc.micalg, signedContent, s.sign(t, signedContent, tc.digest))
			v := VerifyMIME(msg, s.keyring, now)
			wantErr(t, v, nil)
			if v.Fingerprint != s.fpr || v.SigningKeyFingerprint != s.fpr {
				t.Errorf("fingerprint %s / %s, want %s", v.Fingerprint, v.SigningKeyFingerprint, s.fpr)
			}
			if got := strings.ToUpper(s.fpr[len(s.fpr)-16:]); v.KeyID != s.keyring[0].PrimaryKey.KeyId || !strings.HasSuffix(v.IssuerFingerprint, got) {
				t.Errorf("key ID %016X issuer %s, want ...%s", v.KeyID, v.IssuerFingerprint, got)
			}
			if string(v.Signed) != signedContent {
				t.Errorf("signed part %q, want %q", v.Signed, signedContent)
			}
			if d := now.Sub(v.Created); d < -time.Minute || d > 5*time.Minute {
				t.Errorf("created %v, now %v", v.Created, now)
			}
			if hashName(v.Hash) != tc.digest || v.MICAlg != tc.micalg {
				t.Errorf("hash %v micalg %s", v.Hash, v.MICAlg)
			}
			// An MTA that stores LF line ends does not break it (RFC 3156 §5).
			lf := bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
			wantErr(t, VerifyMIME(lf, s.keyring, now), nil)

			for name, tm := range tamperings(msg) {
				t.Run(name, func(t *testing.T) {
					v := VerifyMIME(tm.msg, s.keyring, now)
					if v.Valid() {
						t.Fatal("tampered copy verifies")
					}
					if tm.want != nil && !errors.Is(v.Err, tm.want) {
						t.Fatalf("error %v, want %v", v.Err, tm.want)
					}
					t.Logf("%v", v.Err)
				})
			}

			// micalg must name the signature's hash.
			wrong := wrapSigned("pgp-sha384", signedContent, s.sign(t, signedContent, tc.digest))
			wantErr(t, VerifyMIME(wrong, s.keyring, now), ErrMICAlg)

			// SHA-1 is reported, never a pass.
			sha1 := VerifyMIME(wrapSigned("pgp-sha1", signedContent, s.sign(t, signedContent, "SHA1")), s.keyring, now)
			wantErr(t, sha1, ErrWeakHash)
			if sha1.Hash != crypto.SHA1 || sha1.Fingerprint != s.fpr {
				t.Errorf("SHA-1 result: hash %v signer %q", sha1.Hash, sha1.Fingerprint)
			}

			// A key not in the keyring.
			other := newKey(t, kindCv25519, "other@example.org", nil)
			unk := VerifyMIME(msg, pgp.EntityList{other}, now)
			wantErr(t, unk, ErrUnknownSigner)
			if !strings.Contains(unk.Err.Error(), strings.ToUpper(s.fpr[len(s.fpr)-16:])) {
				t.Errorf("reason %q does not name the key ID", unk.Err)
			}
			wantErr(t, VerifyMIME(msg, nil, now), ErrUnknownSigner)
		})
	}
}

func TestVerifyMIMEGoCrypto(t *testing.T) {
	now := time.Now()
	for _, k := range []keyKind{kindRSA3072, kindCv25519, kindP256, kindP384, kindV6} {
		t.Run(string(k), func(t *testing.T) {
			e := newKey(t, k, "sender@example.org", nil)
			for _, text := range []bool{false, true} {
				cfg := &packet.Config{DefaultHash: crypto.SHA384}
				msg := wrapSigned("pgp-sha384", signedContent, goSign(t, e, signedContent, text, cfg))
				v := VerifyMIME(msg, pgp.EntityList{newKey(t, kindP256, "x@example.org", nil), e}, now)
				wantErr(t, v, nil)
				if v.Signer != e || v.Fingerprint != fingerprint(e) || v.Hash != crypto.SHA384 {
					t.Errorf("signer %s hash %v", v.Fingerprint, v.Hash)
				}
				for name, tm := range tamperings(msg) {
					if VerifyMIME(tm.msg, pgp.EntityList{e}, now).Valid() {
						t.Errorf("text=%v: %s: tampered copy verifies", text, name)
					}
				}
			}
		})
	}
}

func TestVerifyMIMEKeyValidity(t *testing.T) {
	now := time.Now()
	born := now.Add(-30 * 24 * time.Hour)
	at := func(t0 time.Time) *packet.Config { return &packet.Config{Time: func() time.Time { return t0 }} }

	// A key that expired ten days after it was made.
	exp := newKey(t, kindCv25519, "exp@example.org", &packet.Config{Time: func() time.Time { return born }, KeyLifetimeSecs: 10 * 24 * 3600})
	before := wrapSigned("pgp-sha256", signedContent, goSign(t, exp, signedContent, false, at(born.Add(24*time.Hour))))
	wantErr(t, VerifyMIME(before, pgp.EntityList{exp}, now), nil) // valid when it signed
	after := wrapSigned("pgp-sha256", signedContent, rawSign(t, exp, signedContent, born.Add(20*24*time.Hour)))
	wantErr(t, VerifyMIME(after, pgp.EntityList{exp}, now), ErrSignerKey)

	// A key superseded (soft revocation) 20 days after it was made: older
	// signatures stay valid.
	sup := newKey(t, kindCv25519, "sup@example.org", &packet.Config{Time: func() time.Time { return born }})
	old := wrapSigned("pgp-sha256", signedContent, goSign(t, sup, signedContent, false, at(born.Add(24*time.Hour))))
	if err := sup.RevokeKey(packet.KeySuperseded, "new key", at(born.Add(20*24*time.Hour))); err != nil {
		t.Fatal(err)
	}
	late := wrapSigned("pgp-sha256", signedContent, rawSign(t, sup, signedContent, born.Add(25*24*time.Hour)))
	wantErr(t, VerifyMIME(old, pgp.EntityList{sup}, now), nil)
	wantErr(t, VerifyMIME(late, pgp.EntityList{sup}, now), ErrSignerKey)

	// A compromised key: no signature of it counts, whenever made.
	cmp := newKey(t, kindCv25519, "cmp@example.org", &packet.Config{Time: func() time.Time { return born }})
	early := wrapSigned("pgp-sha256", signedContent, goSign(t, cmp, signedContent, false, at(born.Add(24*time.Hour))))
	if err := cmp.RevokeKey(packet.KeyCompromised, "stolen", at(born.Add(20*24*time.Hour))); err != nil {
		t.Fatal(err)
	}
	wantErr(t, VerifyMIME(early, pgp.EntityList{cmp}, now), ErrSignerKey)

	// No reason given is a hard revocation too (RFC 9580 §5.2.3.31).
	nr := newKey(t, kindCv25519, "nr@example.org", &packet.Config{Time: func() time.Time { return born }})
	nrEarly := wrapSigned("pgp-sha256", signedContent, goSign(t, nr, signedContent, false, at(born.Add(24*time.Hour))))
	if err := nr.RevokeKey(packet.NoReason, "", at(born.Add(20*24*time.Hour))); err != nil {
		t.Fatal(err)
	}
	wantErr(t, VerifyMIME(nrEarly, pgp.EntityList{nr}, now), ErrSignerKey)
	// Retired: soft, like superseded.
	rt := newKey(t, kindCv25519, "rt@example.org", &packet.Config{Time: func() time.Time { return born }})
	rtEarly := wrapSigned("pgp-sha256", signedContent, goSign(t, rt, signedContent, false, at(born.Add(24*time.Hour))))
	if err := rt.RevokeKey(packet.KeyRetired, "", at(born.Add(20*24*time.Hour))); err != nil {
		t.Fatal(err)
	}
	wantErr(t, VerifyMIME(rtEarly, pgp.EntityList{rt}, now), nil)

	// A signature from the future.
	e := newKey(t, kindCv25519, "sender@example.org", nil)
	future := wrapSigned("pgp-sha256", signedContent, rawSign(t, e, signedContent, now.Add(time.Hour)))
	wantErr(t, VerifyMIME(future, pgp.EntityList{e}, now), ErrSignerKey)
	// rawSign itself makes good signatures.
	wantErr(t, VerifyMIME(wrapSigned("pgp-sha256", signedContent, rawSign(t, e, signedContent, now)), pgp.EntityList{e}, now), nil)
	// A signature with a lifetime that has passed.
	k30 := newKey(t, kindCv25519, "k30@example.org", &packet.Config{Time: func() time.Time { return born }})
	life := &packet.Config{Time: func() time.Time { return born }, SigLifetimeSecs: 3600}
	wantErr(t, VerifyMIME(wrapSigned("pgp-sha256", signedContent, goSign(t, k30, signedContent, false, life)), pgp.EntityList{k30}, now), ErrSignerKey)
}

func TestVerifyMIMENotSigned(t *testing.T) {
	for name, m := range map[string]string{
		"plain":      "Content-Type: text/plain\r\n\r\nhello\r\n",
		"no type":    "Subject: x\r\n\r\nhello\r\n",
		"no header":  "hello",
		"inline":     "Content-Type: text/plain\r\n\r\n-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nhi\r\n-----BEGIN PGP SIGNATURE-----\r\n",
		"smime":      "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
		"encrypted":  "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
		"bad params": "Content-Type: ;;;\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			v := VerifyMIME([]byte(m), nil, time.Now())
			wantErr(t, v, ErrNotSigned)
			t.Log(v.Err)
		})
	}
}

func TestVerifyMIMEMalformed(t *testing.T) {
	e := newKey(t, kindCv25519, "sender@example.org", nil)
	good := string(wrapSigned("pgp-sha256", signedContent, goSign(t, e, signedContent, false, nil)))
	const head = "Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"sig_b\"\r\n\r\n"
	for name, m := range map[string]string{
		"no closing":       strings.TrimSuffix(good, "--sig_b--\r\n"),
		"no delimiter":     head + "nothing\r\n",
		"no boundary":      strings.Replace(good, "boundary=\"sig_b\"", "", 1),
		"one part":         head + "--sig_b\r\n" + signedContent + "\r\n--sig_b--\r\n",
		"three parts":      strings.Replace(good, "--sig_b--", "--sig_b\r\n\r\nx\r\n--sig_b--", 1),
		"wrong sig type":   strings.Replace(good, "application/pgp-signature; name", "text/plain; name", 1),
		"empty signature":  head + "--sig_b\r\n" + signedContent + "\r\n--sig_b\r\nContent-Type: application/pgp-signature\r\n\r\n\r\n--sig_b--\r\n",
		"garbage armor":    head + "--sig_b\r\n" + signedContent + "\r\n--sig_b\r\nContent-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\n\r\n!!!!\r\n-----END PGP SIGNATURE-----\r\n--sig_b--\r\n",
		"public key armor": head + "--sig_b\r\n" + signedContent + "\r\n--sig_b\r\nContent-Type: application/pgp-signature\r\n\r\n" + string(armoredKey(t, e)) + "\r\n--sig_b--\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			v := VerifyMIME([]byte(m), pgp.EntityList{e}, time.Now())
			wantErr(t, v, ErrMalformedSignature)
			t.Log(v.Err)
		})
	}
}

func armoredKey(t *testing.T, e *pgp.Entity) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, "PGP SIGNATURE", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.Bytes()
}

// TestVerifyMIMEStructure checks the RFC 2046 §5.1.1 details of what is
// signed: the CRLF before a delimiter belongs to it, transport padding on
// delimiter lines, a base64-encoded signature part, a preamble that looks
// like a delimiter but is not one.
func TestVerifyMIMEStructure(t *testing.T) {
	e := newKey(t, kindCv25519, "sender@example.org", nil)
	content := "Content-Type: text/plain\r\n\r\nno final line end"
	sig := goSign(t, e, content, false, nil)
	m := string(wrapSigned("pgp-sha256", content, sig))
	v := VerifyMIME([]byte(m), pgp.EntityList{e}, time.Now())
	wantErr(t, v, nil)
	if string(v.Signed) != content {
		t.Fatalf("signed %q", v.Signed)
	}
	padded := strings.ReplaceAll(m, "--sig_b\r\n", "--sig_b  \t\r\n")
	padded = strings.Replace(padded, "This is", "--sig_bx is not a delimiter\r\nThis is", 1)
	wantErr(t, VerifyMIME([]byte(padded), pgp.EntityList{e}, time.Now()), nil)

	var raw bytes.Buffer
	if err := pgp.DetachSign(&raw, e, strings.NewReader(content), nil); err != nil {
		t.Fatal(err)
	}
	b64 := strings.Replace(m, "Content-Description:", "Content-Transfer-Encoding: base64\r\nContent-Description:", 1)
	i, j := strings.Index(b64, "-----BEGIN"), strings.Index(b64, "-----END PGP SIGNATURE-----")+len("-----END PGP SIGNATURE-----")
	enc := encodeB64Lines(raw.Bytes())
	wantErr(t, VerifyMIME([]byte(b64[:i]+enc+b64[j:]), pgp.EntityList{e}, time.Now()), nil)
}

func encodeB64Lines(b []byte) string {
	var out strings.Builder
	s := base64.StdEncoding.EncodeToString(b)
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	out.WriteString(s)
	return out.String()
}

// TestVerifyMIMESubkey: a signature by a signing subkey names the subkey as
// the signing key and the primary key as the signer; once the subkey is
// revoked (superseded), later signatures by it fail, earlier ones stand.
func TestVerifyMIMESubkey(t *testing.T) {
	now := time.Now()
	born := now.Add(-10 * 24 * time.Hour)
	at := func(t0 time.Time) *packet.Config { return &packet.Config{Time: func() time.Time { return t0 }} }
	e := newKey(t, kindCv25519, "sub@example.org", at(born))
	if err := e.AddSigningSubkey(at(born)); err != nil {
		t.Fatal(err)
	}
	var sub *pgp.Subkey
	for i := range e.Subkeys {
		if e.Subkeys[i].Sig.FlagSign {
			sub = &e.Subkeys[i]
		}
	}
	if sub == nil {
		t.Fatal("no signing subkey")
	}
	early := wrapSigned("pgp-sha256", signedContent, goSign(t, e, signedContent, false, at(born.Add(24*time.Hour))))
	v := VerifyMIME(early, pgp.EntityList{e}, now)
	wantErr(t, v, nil)
	if v.KeyID != sub.PublicKey.KeyId || v.Fingerprint != fingerprint(e) || v.SigningKeyFingerprint == v.Fingerprint {
		t.Fatalf("key ID %016X fingerprint %s signing key %s", v.KeyID, v.Fingerprint, v.SigningKeyFingerprint)
	}
	if err := e.RevokeSubkey(sub, packet.KeySuperseded, "rotated", at(born.Add(5*24*time.Hour))); err != nil {
		t.Fatal(err)
	}
	wantErr(t, VerifyMIME(early, pgp.EntityList{e}, now), nil)
	late := wrapSigned("pgp-sha256", signedContent, rawSignWith(t, sub.PrivateKey, signedContent, born.Add(6*24*time.Hour)))
	wantErr(t, VerifyMIME(late, pgp.EntityList{e}, now), ErrSignerKey)
}

// TestVerifyMIMEWeakSubkey: an entity whose newest signing subkey is
// strong (so SigningKeys accepts it) but which still holds an older
// RSA-1024 signing subkey: a signature by the weak subkey verifies
// cryptographically, yet is never valid.
func TestVerifyMIMEWeakSubkey(t *testing.T) {
	now := time.Now()
	born := now.Add(-10 * 24 * time.Hour)
	at := func(t0 time.Time) *packet.Config { return &packet.Config{Time: func() time.Time { return t0 }} }
	const addr = "weaksub@example.org"
	e := newKey(t, kindCv25519, addr, at(born))
	weakCfg := &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 1024, Time: func() time.Time { return born }}
	if err := e.AddSigningSubkey(weakCfg); err != nil {
		t.Fatal(err)
	}
	weak := &e.Subkeys[len(e.Subkeys)-1]
	if bits, _ := weak.PublicKey.BitLength(); weak.PublicKey.PubKeyAlgo != packet.PubKeyAlgoRSA || bits != 1024 || !weak.Sig.FlagSign {
		t.Fatalf("weak subkey: algorithm %v, %d bits, sign %v", weak.PublicKey.PubKeyAlgo, bits, weak.Sig.FlagSign)
	}
	if err := e.AddSigningSubkey(at(born.Add(24 * time.Hour))); err != nil {
		t.Fatal(err)
	}
	// The precondition of the attack: the newest signing key is strong, so
	// the record's key is accepted.
	keys, rejected := SigningKeys(addr, []dns.RR{recordFor(t, addr, e)}, now)
	if len(keys) != 1 {
		t.Fatalf("SigningKeys: %d keys, rejected %s", len(keys), fmtReasons(rejected))
	}
	ring := Keyring(keys)

	byWeak := wrapSigned("pgp-sha256", signedContent, rawSignWith(t, weak.PrivateKey, signedContent, born.Add(2*24*time.Hour)))
	v := VerifyMIME(byWeak, ring, now)
	wantErr(t, v, ErrSignerKey)
	if v.Valid() || !strings.Contains(v.Err.Error(), "RSA signing key of 1024 bits too weak") {
		t.Errorf("signature by the RSA-1024 subkey: valid %v, %v", v.Valid(), v.Err)
	}
	// The strong subkey's signature still verifies.
	wantErr(t, VerifyMIME(wrapSigned("pgp-sha256", signedContent, goSign(t, e, signedContent, false, at(born.Add(2*24*time.Hour)))), ring, now), nil)
}

// rawSignWith is rawSign with a given (sub)key.
func rawSignWith(t testing.TB, priv *packet.PrivateKey, content string, at time.Time) []byte {
	t.Helper()
	pk := &priv.PublicKey
	sig := &packet.Signature{Version: pk.Version, SigType: packet.SigTypeBinary, PubKeyAlgo: pk.PubKeyAlgo,
		Hash: crypto.SHA256, CreationTime: at, IssuerKeyId: &pk.KeyId, IssuerKeyVersion: uint8(pk.Version),
		IssuerFingerprint: pk.Fingerprint}
	h, err := sig.PrepareSign(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Write([]byte(content))
	if err := sig.Sign(h, priv, nil); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := armor.Encode(&b, "PGP SIGNATURE", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.Bytes()
}
