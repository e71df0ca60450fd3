package smime

// A SignedData writer for tests only: what OpenSSL 3.0 cannot write
// (Ed25519 in CMS) and what no good signer writes (broken signed
// attributes), to check Verify's answers to both.

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// tlv encodes one DER element from its content parts.
func tlv(tag byte, parts ...[]byte) []byte {
	c := bytes.Join(parts, nil)
	return append(appendHeader(nil, tag, int64(len(c))), c...)
}

func mustDER(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// buildOpts say how buildSignedData deviates from a correct SignedData.
type buildOpts struct {
	detached     bool
	ski          bool                       // SignerIdentifier by SubjectKeyIdentifier
	noAttrs      bool                       // sign the content itself
	eContentType asn1.ObjectIdentifier      // default id-data
	attrs        func(a [][]byte) [][]byte  // edit the encoded attributes
	sigOID       asn1.ObjectIdentifier      // default by key type
	hash         crypto.Hash                // default SHA-256 (SHA-512 for Ed25519)
	sign         func(signed []byte) []byte // replaces the signature
}

// buildSignedData writes a ContentInfo with one SignerInfo for key.
func buildSignedData(tb testing.TB, content []byte, cert *x509.Certificate, key crypto.Signer, o buildOpts) []byte {
	tb.Helper()
	h := o.hash
	_, isEd := key.(ed25519.PrivateKey)
	if h == 0 {
		h = crypto.SHA256
		if isEd {
			h = crypto.SHA512 // RFC 8419 §3.1
		}
	}
	hashOID := map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA1: oidSHA1(), crypto.SHA256: oidSHA256(), crypto.SHA384: oidSHA384(), crypto.SHA512: oidSHA512()}[h]
	sigOID := o.sigOID
	if sigOID == nil {
		switch {
		case isEd:
			sigOID = oidEd25519()
		case cert.PublicKeyAlgorithm == x509.RSA:
			sigOID = oidRSAEncryption()
		default:
			sigOID = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2} // ecdsa-with-SHA256
		}
	}
	ect := o.eContentType
	if ect == nil {
		ect = oidData()
	}
	algID := func(oid asn1.ObjectIdentifier) []byte { return tlv(tagSequence, mustDER(tb, oid)) }

	signed := content
	var attrsField []byte
	if !o.noAttrs {
		attrs := [][]byte{
			tlv(tagSequence, mustDER(tb, oidAttrContentType()), tlv(tagSet, mustDER(tb, ect))),
			tlv(tagSequence, mustDER(tb, oidAttrMessageDigest()), tlv(tagSet, tlv(tagOctetString, digest(h, content)))),
			tlv(tagSequence, mustDER(tb, oidAttrSigningTime()), tlv(tagSet, mustDER(tb, time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)))),
		}
		if o.attrs != nil {
			attrs = o.attrs(attrs)
		}
		sort.Slice(attrs, func(i, j int) bool { return bytes.Compare(attrs[i], attrs[j]) < 0 }) // X.690 §11.6
		set := tlv(tagSet, attrs...)
		signed = set
		attrsField = append([]byte{tagExplicit0}, set[1:]...)
	}
	var sig []byte
	var err error
	switch {
	case o.sign != nil:
		sig = o.sign(signed)
	case isEd:
		sig, err = key.Sign(rand.Reader, signed, crypto.Hash(0))
	default:
		sig, err = key.Sign(rand.Reader, digest(h, signed), h)
	}
	if err != nil {
		tb.Fatal(err)
	}
	sid := tlv(tagSequence, cert.RawIssuer, mustDER(tb, cert.SerialNumber))
	version := 1
	if o.ski {
		sid, version = append(appendHeader(nil, tagImplicit0Raw, int64(len(cert.SubjectKeyId))), cert.SubjectKeyId...), 3
	}
	si := tlv(tagSequence, mustDER(tb, version), sid, algID(hashOID), attrsField, algID(sigOID), tlv(tagOctetString, sig))
	eci := tlv(tagSequence, mustDER(tb, ect))
	if !o.detached {
		eci = tlv(tagSequence, mustDER(tb, ect), tlv(tagExplicit0, tlv(tagOctetString, content)))
	}
	sd := tlv(tagSequence, mustDER(tb, version), tlv(tagSet, algID(hashOID)), eci, tlv(tagExplicit0, cert.Raw), tlv(tagSet, si))
	return tlv(tagSequence, mustDER(tb, oidSignedData()), tlv(tagExplicit0, sd))
}

func b64Lines(der []byte) string {
	s := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\r\n")
		s = s[64:]
	}
	return b.String() + s + "\r\n"
}

// opaqueMessage and detachedMessage wrap a SignedData as S/MIME.
func opaqueMessage(der []byte) []byte {
	return []byte("From: a@example.test\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64Lines(der))
}

func detachedMessage(content, der []byte) []byte {
	return []byte("From: a@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-512; boundary=\"xyz\"\r\n\r\n" +
		"This is an S/MIME signed message\r\n--xyz\r\n" + string(content) + "\r\n--xyz\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		b64Lines(der) + "--xyz--\r\n")
}

// TestVerifyEd25519 covers RFC 8419 (which OpenSSL 3.0 cannot sign in
// CMS): PureEdDSA over the signed attributes, SHA-512 message digest,
// detached and opaque, and a changed signature or content fails. Where
// this OpenSSL verifies Ed25519 CMS, it must agree.
func TestVerifyEd25519(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := kindCert("ed@example.test", big.NewInt(5), key, true)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte(signContent)
	for _, detached := range []bool{false, true} {
		der := buildSignedData(t, content, cert, key, buildOpts{detached: detached})
		msg := opaqueMessage(der)
		if detached {
			msg = detachedMessage(content, der)
		}
		cases := tampered(t, msg, !detached)
		cases["original"] = msg
		for what, m := range cases {
			v, err := VerifyEntity(m)
			if err != nil {
				t.Fatalf("detached %v %s: %v", detached, what, err)
			}
			r := v.Signers[0]
			if what == "original" {
				if !v.Valid() || r.Signature != SigEd25519 || r.Digest != crypto.SHA512 || !r.SigningTime.Equal(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)) {
					t.Errorf("detached %v: %+v", detached, r)
				}
			} else if v.Verified() {
				t.Errorf("detached %v %s: tampered message verifies", detached, what)
			}
			if openssl := opensslIfAny(); openssl != "" {
				p := filepath.Join(t.TempDir(), "m.eml")
				if err := os.WriteFile(p, m, 0o600); err != nil {
					t.Fatal(err)
				}
				if theirs := opensslVerifies(t, openssl, p); theirs != v.Verified() {
					t.Logf("detached %v %s: openssl %v, Verify %v (OpenSSL 3.0 does not verify Ed25519 CMS)", detached, what, theirs, v.Verified())
				}
			}
		}
	}
}

func opensslIfAny() string {
	p, _ := execLookPath("openssl")
	return p
}

// TestVerifySignerInfoRules: the rules of RFC 5652 §5.3, §5.6, §11 and
// RFC 8551 on SignerInfos nobody good writes.
func TestVerifySignerInfoRules(t *testing.T) {
	k := testKeys(t, "p256", 1)[0]
	content := []byte(signContent)
	dropAttr := func(oid asn1.ObjectIdentifier) func([][]byte) [][]byte {
		return func(a [][]byte) [][]byte {
			enc := mustDER(t, oid)
			var out [][]byte
			for _, x := range a {
				if !bytes.Contains(x, enc) {
					out = append(out, x)
				}
			}
			return out
		}
	}
	other := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4} // id-ct-TSTInfo
	for _, c := range []struct {
		name   string
		o      buildOpts
		status Status
		err    error
	}{
		{"good", buildOpts{}, StatusValid, nil},
		{"ski", buildOpts{ski: true}, StatusValid, nil},
		{"no signed attributes", buildOpts{noAttrs: true}, StatusValid, nil},
		{"detached", buildOpts{detached: true}, StatusValid, nil},
		{"sha1", buildOpts{hash: crypto.SHA1, sigOID: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}}, StatusWeak, ErrWeakAlgorithm},
		{"sigOID hash differs from digest", buildOpts{hash: crypto.SHA384}, StatusUnsupported, ErrUnsupportedAlgorithm},
		{"no content-type", buildOpts{attrs: dropAttr(oidAttrContentType())}, StatusInvalid, ErrBadAttributes},
		{"no message-digest", buildOpts{attrs: dropAttr(oidAttrMessageDigest())}, StatusInvalid, ErrBadAttributes},
		{"attribute twice", buildOpts{attrs: func(a [][]byte) [][]byte { return append(a, a[0]) }}, StatusInvalid, ErrBadAttributes},
		{"not id-data", buildOpts{eContentType: other}, StatusInvalid, ErrContentType},
		{"not id-data without attributes", buildOpts{eContentType: other, noAttrs: true}, StatusInvalid, ErrContentType},
		{"bad signature", buildOpts{sign: func([]byte) []byte { return []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01} }}, StatusInvalid, ErrBadSignature},
		{"unknown signature algorithm", buildOpts{sigOID: asn1.ObjectIdentifier{1, 2, 3}}, StatusUnsupported, ErrUnsupportedAlgorithm},
	} {
		der := buildSignedData(t, content, k.Cert, k.Key, c.o)
		var detached []byte
		if c.o.detached {
			detached = content
		}
		v, err := VerifySignedData(der, detached)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		r := v.Signers[0]
		if r.Status != c.status || (c.err == nil) != (r.Err == nil) || (c.err != nil && !errors.Is(r.Err, c.err)) {
			t.Errorf("%s: %v %v, want %v %v", c.name, r.Status, r.Err, c.status, c.err)
		}
		if c.status == StatusValid && (r.Certificate == nil || !bytes.Equal(r.CertificateDER, k.Cert.Raw)) {
			t.Errorf("%s: signer certificate not found", c.name)
		}
	}
	// A certificate the SignerIdentifier does not name.
	der := buildSignedData(t, content, k.Cert, k.Key, buildOpts{ski: true})
	der[bytes.LastIndex(der, k.Cert.SubjectKeyId)] ^= 1 // the sid, after the certificate
	if v, err := VerifySignedData(der, nil); err != nil || !errors.Is(v.Signers[0].Err, ErrNoSignerCertificate) {
		t.Errorf("unnamed signer: %v %+v", err, v)
	}
	// Detached and encapsulated at once, neither, and not SignedData.
	enc := buildSignedData(t, content, k.Cert, k.Key, buildOpts{})
	if _, err := VerifySignedData(enc, content); !errors.Is(err, ErrMalformed) {
		t.Errorf("both: %v", err)
	}
	if _, err := VerifySignedData(buildSignedData(t, content, k.Cert, k.Key, buildOpts{detached: true}), nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("neither: %v", err)
	}
	if _, err := VerifySignedData(encryptFor(t, content, []kindKey{k}, Options{}), nil); !errors.Is(err, ErrNotSigned) {
		t.Errorf("enveloped: %v", err)
	}
}
