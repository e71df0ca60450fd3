package milter

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/keydir"
	"github.com/danemilter/danemilter/milter/miltertest"
	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/smime"
)

// fuzzKeys are the gateway keys of FuzzDecrypt, from testdata/decrypt:
// made once by "danemilter keys generate" (RSA-3072 and cv25519 for
// user@local.example, P-256 for ec@local.example, valid 80 years), test
// keys that protect nothing. They are fixed so that an input the fuzzer
// saves under testdata/fuzz still decrypts when it is replayed.
func fuzzKeys(tb testing.TB) (rsaK, ecK keydir.SMIMEKey, pgpK *pgp.Entity) {
	tb.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "decrypt", name))
		must(tb, err)
		return b
	}
	var err error
	rsaK, err = keydir.ParseSMIME(read("rsa.pem"))
	must(tb, err)
	ecK, err = keydir.ParseSMIME(read("ec.pem"))
	must(tb, err)
	pgpK, err = keydir.ParseOpenPGP(read("pgp.asc"))
	must(tb, err)
	return rsaK, ecK, pgpK
}

// sealedParts are the Content-Type, the Content-Transfer-Encoding and the
// body of an encrypted message made by the test helpers.
func sealedParts(tb testing.TB, msg string) (ctype, cte string, body []byte) {
	tb.Helper()
	hdrs, body, err := miltertest.SplitMessage([]byte(msg))
	must(tb, err)
	for _, h := range hdrs {
		switch strings.ToLower(h.Name) {
		case "content-type":
			ctype = mimeentity.UnfoldValue(strings.TrimSpace(h.Value))
		case "content-transfer-encoding":
			cte = strings.TrimSpace(h.Value)
		}
	}
	return ctype, cte, body
}

// FuzzDecrypt feeds the inbound decryption (handler.decrypt, the step
// after the message is known to be one to decrypt) with malformed CMS
// and OpenPGP input: any Content-Type, transfer encoding and body, for a
// recipient whose keys the gateway holds. Seeds are real messages
// encrypted to those keys (S/MIME AES-CBC and AES-GCM, RSA and ECDH;
// PGP/MIME), truncated, with a flipped GCM tag and a flipped OpenPGP
// byte. The property: no panic, and either the message is left exactly as
// it came (not for us, or a failure), or it is decrypted whole: with an
// authenticated cipher (AES-GCM, OpenPGP's MDC) to exactly the entity that
// was encrypted, with AES-CBC (no integrity, RFC 8551 §2.7) to exactly
// what smime.DecryptMIME reads from the same input — never a part of it,
// and the outer fields kept.
func FuzzDecrypt(f *testing.F) {
	rsaK, ecK, pgpK := fuzzKeys(f)
	seeds := []string{
		smimeMessageOf(f, innerEntity, smime.AES256CBC, rsaK.Cert),
		smimeMessageOf(f, innerEntity, smime.AES256GCM, ecK.Cert),
		smimeMessageOf(f, innerEntity, smime.AES128GCM, ecK.Cert, rsaK.Cert),
		smimeMessageOf(f, innerEntity, smime.AES128CBC, ecK.Cert),
		pgpMessageOf(f, innerEntity, pgpK),
	}
	type input struct {
		ctype, cte string
		body       []byte
		wrap       uint8
	}
	var intact []input
	for _, msg := range seeds {
		ctype, cte, body := sealedParts(f, msg)
		intact = append(intact, input{ctype, cte, body, wrapNone})
		f.Add(ctype, cte, body, wrapNone)
		f.Add(ctype, cte, body[:len(body)/2], wrapNone)
		f.Add(ctype, cte, []byte(msgBody([]byte(tamper(msg)))), wrapNone)
		if i := bytes.Index(body, []byte("-----BEGIN PGP MESSAGE-----")); i >= 0 {
			flipped := bytes.Clone(body)
			flipped[i+len("-----BEGIN PGP MESSAGE-----")+40] ^= 0x01
			f.Add(ctype, cte, flipped, wrapNone)
		}
		// The same as binary, for the harness to encode: the fuzzer then
		// mutates DER and OpenPGP packets, not their base64.
		if bin := unwrapSealed(f, ctype, body); bin != nil {
			kind := wrapDER
			if strings.HasPrefix(ctype, "multipart/") {
				kind = wrapPGP
			}
			f.Add(ctype, cte, bin, kind)
			intact = append(intact, input{ctype, cte, bin, kind})
			f.Add(ctype, cte, bin[:len(bin)*3/4], kind)
			flipped := bytes.Clone(bin)
			flipped[len(bin)-3] ^= 0x80 // the GCM tag; OpenPGP's MDC packet
			f.Add(ctype, cte, flipped, kind)
		}
	}
	keys := &keySource{
		smime: map[string][]keydir.SMIMEKey{"user@local.example": {rsaK, ecK}},
		pgp:   map[string]pgp.EntityList{"user@local.example": {pgpK}},
	}
	opts := Options{Resolver: &dane.Fake{}, Levels: policy.NewTable(policy.LevelDane), Keys: keys,
		Logger: slog.New(slog.DiscardHandler), MaxMessageSize: 1 << 20, SpoolDir: f.TempDir()}
	opts.defaults()
	opts.budget = newMemBudget(opts.MemoryBudget)
	_, innerBody, _ := strings.Cut(innerEntity, "\r\n\r\n")

	// check runs one input and reports whether it was decrypted.
	check := func(t testing.TB, ctype, cte string, body []byte, wrap uint8) bool {
		ctype, body = wrapSealed(ctype, body, wrap)
		if strings.ContainsAny(ctype+cte, "\r\n") || !mimeentity.IsEncrypted(ctype) {
			return false // one header line each; decryptStep's first test
		}
		h := &handler{opts: &opts}
		h.begin()
		defer h.end()
		h.direction = Inbound
		h.headers = []field{{"From", " Bank <ceo@bank.example>"}, {"Content-Type", " " + ctype}, {"Subject", " statement"}}
		if cte != "" {
			h.headers = append(h.headers, field{"Content-Transfer-Encoding", " " + cte})
		}
		for _, fl := range h.headers {
			h.headerBytes += int64(len(fl.name) + len(fl.value) + 4)
		}
		if _, err := h.body.Write(body); err != nil {
			return false // over MaxMessageSize: the spool says so
		}
		before := slicesClone(h.headers)
		entity, _, err := h.entity(true)
		must(t, err)
		origEntity, err := io.ReadAll(entity)
		must(t, err)

		d, fail := h.decrypt(opts.Logger, true, h.headerValue("Content-Type"), []string{"user@local.example"})
		gotBody := spoolBytes(t, h.body)
		if d == nil {
			// Not for us, or failed: exactly as it came.
			if !reflect.DeepEqual(h.headers, before) || !bytes.Equal(gotBody, body) {
				t.Fatalf("message changed although not decrypted (failure %+v)", fail)
			}
			return false
		}
		if fail != nil {
			t.Fatalf("decrypted and failed at once: %+v", fail)
		}
		// Decrypted: the outer fields but Content-* kept, the inner
		// Content-* fields added.
		var inner bytes.Buffer
		for _, fl := range h.headers {
			if mimeentity.IsEntityField(fl.name) {
				inner.WriteString(fl.name + ":" + fl.value + "\r\n")
			}
		}
		for _, name := range []string{"From", "Subject"} {
			if h.headerValue(name) == "" {
				t.Fatalf("outer %s lost", name)
			}
		}
		if d.format == "pgp-mime" || strings.Contains(d.cipher, "gcm") {
			// Authenticated: only the entity that was encrypted.
			if inner.String()+"\r\n" != innerEntity[:len(innerEntity)-len(innerBody)] || string(gotBody) != innerBody {
				t.Fatalf("%s decrypted to another entity than was encrypted: fields %q body %q", d.trace(), inner.String(), gotBody)
			}
			return true
		}
		// AES-CBC: what the reference reading of the same input gives,
		// whole.
		var ref []byte
		for _, k := range []keydir.SMIMEKey{rsaK, ecK} {
			if p, err := smime.DecryptMIME(bytes.NewReader(origEntity), k.Key, k.Cert); err == nil {
				ref = p
				break
			}
		}
		if ref == nil {
			t.Fatalf("%s decrypted what smime.DecryptMIME cannot", d.trace())
		}
		end := entityHeaderEnd(ref)
		if end < 0 || !bytes.Equal(gotBody, ref[end:]) {
			t.Fatalf("%s: the body is not the whole plaintext: got %d bytes, plaintext %d (header end %d)", d.trace(), len(gotBody), len(ref), end)
		}
		return true
	}
	// The property holds for something: every intact seed decrypts.
	for i, in := range intact {
		if !check(f, in.ctype, in.cte, in.body, in.wrap) {
			f.Fatalf("seed %d (%s) not decrypted", i, in.ctype)
		}
	}
	f.Fuzz(func(t *testing.T, ctype, cte string, body []byte, wrap uint8) { check(t, ctype, cte, body, wrap) })
}

// How FuzzDecrypt's body is made into the message body.
const (
	wrapNone uint8 = iota // as it is
	wrapDER               // DER, base64-encoded in lines of 76
	wrapPGP               // OpenPGP packets, armored in a PGP/MIME body
)

const fuzzBoundary = "fz"

// wrapSealed makes the message body (and for wrapPGP the Content-Type)
// of a fuzz input.
func wrapSealed(ctype string, body []byte, wrap uint8) (string, []byte) {
	switch wrap % 3 {
	case wrapDER:
		enc := base64.StdEncoding.EncodeToString(body)
		var b bytes.Buffer
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
		return ctype, b.Bytes()
	case wrapPGP:
		var b bytes.Buffer
		b.WriteString("--" + fuzzBoundary + "\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--" + fuzzBoundary +
			"\r\nContent-Type: application/octet-stream\r\n\r\n")
		var a bytes.Buffer
		w, err := armor.Encode(&a, "PGP MESSAGE", nil)
		if err == nil {
			_, _ = w.Write(body)
			_ = w.Close()
		}
		b.Write(bytes.ReplaceAll(a.Bytes(), []byte("\n"), []byte("\r\n")))
		b.WriteString("\r\n--" + fuzzBoundary + "--\r\n")
		return `multipart/encrypted; protocol="application/pgp-encrypted"; boundary="` + fuzzBoundary + `"`, b.Bytes()
	}
	return ctype, body
}

// unwrapSealed is the binary inside a seed's body: the DER of an S/MIME
// body, the OpenPGP packets of a PGP/MIME one; nil if none.
func unwrapSealed(tb testing.TB, ctype string, body []byte) []byte {
	tb.Helper()
	if i := bytes.Index(body, []byte("-----BEGIN PGP MESSAGE-----")); i >= 0 {
		j := bytes.Index(body, []byte("-----END PGP MESSAGE-----"))
		blk, err := armor.Decode(bytes.NewReader(body[i : j+len("-----END PGP MESSAGE-----")]))
		must(tb, err)
		b, err := io.ReadAll(blk.Body)
		must(tb, err)
		return b
	}
	if strings.HasPrefix(ctype, "application/pkcs7-mime") {
		b, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(body), nil)))
		must(tb, err)
		return b
	}
	return nil
}

func slicesClone(fs []field) []field { return append([]field(nil), fs...) }

// spoolBytes reads a spool whole.
func spoolBytes(t testing.TB, s *spool) []byte {
	t.Helper()
	r, err := s.Reader()
	must(t, err)
	b, err := io.ReadAll(r)
	must(t, err)
	return b
}
