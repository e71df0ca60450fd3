package openpgp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
)

// FuzzVerifyMIME: no input makes VerifyMIME panic (its own recover is for
// go-crypto, so a recovered panic fails here too); every outcome is valid or
// carries exactly one of the documented errors; a valid outcome names its
// signer, and its signed bytes are CRLF-only and were in the input (up to
// line ends).
func FuzzVerifyMIME(f *testing.F) {
	e := newKey(f, kindCv25519, "sender@example.org", nil)
	now := time.Now()
	good := wrapSigned("pgp-sha256", signedContent, goSign(f, e, signedContent, false, nil))
	for _, seed := range [][]byte{
		good,
		bytes.ReplaceAll(good, []byte("\r\n"), []byte("\n")),
		wrapSigned("pgp-sha256", signedContent, goSign(f, e, signedContent, true, nil)),
		wrapSigned("pgp-sha256", "", goSign(f, e, "", false, nil)),
		good[:len(good)/2],
		[]byte("Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=b\r\n\r\n--b\r\n\r\n--b\r\n\r\n--b--\r\n"),
		[]byte("Content-Type: text/plain\r\n\r\n-----BEGIN PGP SIGNED MESSAGE-----\r\n"),
	} {
		f.Add(seed)
	}
	if files, _ := filepath.Glob(filepath.Join(corpusDir, "eml", "*.eml")); len(files) > 0 {
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	kr := pgp.EntityList{e}
	errs := []error{ErrNotSigned, ErrMalformedSignature, ErrUnknownSigner, ErrBadSignature, ErrSignerKey, ErrWeakHash, ErrMICAlg}
	f.Fuzz(func(t *testing.T, data []byte) {
		v := VerifyMIME(data, kr, now)
		if v.Valid() {
			if v.Signer != e || v.Fingerprint != fingerprint(e) {
				t.Fatalf("valid without the signer: %+v", v)
			}
			if bytes.Contains(bytes.ReplaceAll(v.Signed, []byte("\r\n"), nil), []byte("\n")) {
				t.Fatalf("signed part has a bare LF: %q", v.Signed)
			}
			lf := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }
			if !bytes.Contains(lf(data), lf(v.Signed)) {
				t.Fatalf("signed part %q not in the input", v.Signed)
			}
			return
		}
		if strings.Contains(v.Err.Error(), "parser panic") {
			t.Fatalf("panic: %v", v.Err)
		}
		n := 0
		for _, target := range errs {
			if errors.Is(v.Err, target) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("error %v matches %d of the documented errors", v.Err, n)
		}
	})
}
