package verify

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/openpgp"
)

const alice = "alice@example.com"

// flipSignature changes one character of the base64 body of the last
// base64 block before the closing delimiter: the end of the CMS, which is
// the signature value.
func flipSignature(t *testing.T, msg []byte) []byte {
	t.Helper()
	lines := bytes.Split(msg, []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		l := bytes.TrimRight(lines[i], "\r")
		if len(l) >= 40 && !bytes.ContainsAny(l, " :-") {
			out := bytes.Clone(l)
			if out[20] == 'A' {
				out[20] = 'B'
			} else {
				out[20] = 'A'
			}
			lines[i] = append(out, lines[i][len(l):]...)
			return bytes.Join(lines, []byte("\n"))
		}
	}
	t.Fatal("no base64 line found")
	return nil
}

func replaceOnce(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if bytes.Count(b, []byte(old)) < 1 {
		t.Fatalf("%q not in the message", old)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

func TestVerifySMIME(t *testing.T) {
	signer := newSMIMESigner(t, alice)
	other := newSMIMESigner(t, alice)
	detached := signer.sign(t, signedContent, "sha256", false)
	opaque := signer.sign(t, signedContent, "sha384", true)
	sha1 := signer.sign(t, signedContent, "sha1", false)
	secure := smimeaFor(signer.cert, 3, 0, 0)
	tests := []struct {
		name    string
		msg     []byte
		answer  *dane.Result // the SMIMEA answer; nil: secure 3 0 0 of signer
		part    string       // default "1"
		result  Result
		binding Binding
		valid   bool
		reason  string // substring of Reason
	}{
		{name: "detached", msg: withHeader(alice, detached), result: ResultPass, binding: BindingBound, valid: true, reason: "SMIMEA 3 0 0"},
		{name: "opaque", msg: withHeader(alice, opaque), result: ResultPass, binding: BindingBound, valid: true},
		{name: "nested alone in multipart/mixed", msg: withHeader(alice, only(detached)), part: "1.1", result: ResultPass, binding: BindingBound, valid: true},
		{name: "opaque nested alone", msg: withHeader(alice, only(opaque)), part: "1.1", result: ResultPass, binding: BindingBound, valid: true},
		{name: "nested alone two levels down", msg: withHeader(alice, only(only(detached))), part: "1.1.1", result: ResultPass, binding: BindingBound, valid: true},
		// A signed part beside unsigned text (a replayed part under another
		// message's text): valid and bound, but never a pass.
		{name: "nested beside unsigned text", msg: withHeader(alice, mixed(detached)), part: "1.2", result: ResultPolicy, binding: BindingBound, valid: true, reason: "signed part 1.2 covers only part of the message: unsigned parts beside it"},
		{name: "opaque nested beside unsigned text", msg: withHeader(alice, mixed(opaque)), part: "1.2", result: ResultPolicy, binding: BindingBound, valid: true, reason: "covers only part of the message"},
		{name: "alone, but inside a multipart with unsigned text", msg: withHeader(alice, mixed(only(detached))), part: "1.2.1", result: ResultPolicy, binding: BindingBound, valid: true, reason: "signed part 1.2.1 covers only part"},
		{name: "From with display name and case", msg: withHeader(`"Alice A." <alice@EXAMPLE.com>`, detached), result: ResultPass, binding: BindingBound, valid: true},
		{name: "3 1 1 record", msg: withHeader(alice, detached), answer: ptr(smimeaFor(signer.cert, 3, 1, 1)), result: ResultPass, binding: BindingBound, valid: true, reason: "SMIMEA 3 1 1"},
		{name: "3 0 2 record", msg: withHeader(alice, detached), answer: ptr(smimeaFor(signer.cert, 3, 0, 2)), result: ResultPass, binding: BindingBound, valid: true},
		{name: "2 0 0 self-signed anchor", msg: withHeader(alice, detached), answer: ptr(smimeaFor(signer.cert, 2, 0, 0)), result: ResultPass, binding: BindingBound, valid: true},
		{name: "tampered body", msg: withHeader(alice, replaceOnce(t, detached, "Hello, Bob.", "Hello, Bub.")), result: ResultFail, binding: BindingNotChecked, reason: "does not verify"},
		{name: "tampered header inside the signed part", msg: withHeader(alice, replaceOnce(t, detached, "Content-Transfer-Encoding: 7bit", "Content-Transfer-Encoding: 8bit")), result: ResultFail, binding: BindingNotChecked},
		{name: "tampered signature", msg: withHeader(alice, flipSignature(t, detached)), result: ResultFail, binding: BindingNotChecked},
		{name: "From mismatch", msg: withHeader("mallory@example.com", detached), result: ResultPolicy, binding: BindingNotChecked, valid: true, reason: "signer is alice@example.com and From is mallory@example.com"},
		{name: "no From", msg: withHeader("", detached), result: ResultPolicy, binding: BindingNotChecked, valid: true, reason: "no From field"},
		{name: "two From addresses", msg: withHeader(alice+", bob@example.com", detached), result: ResultPolicy, binding: BindingNotChecked, valid: true, reason: "2 addresses"},
		{name: "no record", msg: withHeader(alice, detached), answer: &dane.Result{Status: dane.StatusSecureDenial}, result: ResultPolicy, binding: BindingNoRecord, valid: true, reason: "no DNSSEC-secure SMIMEA record"},
		{name: "insecure zone", msg: withHeader(alice, detached), answer: &dane.Result{Status: dane.StatusInsecure, Records: secure.Records}, result: ResultPolicy, binding: BindingNoRecord, valid: true, reason: "insecure"},
		{name: "record of another certificate", msg: withHeader(alice, detached), answer: ptr(smimeaFor(other.cert, 3, 1, 1)), result: ResultPolicy, binding: BindingMismatch, valid: true, reason: "does not match the signer"},
		{name: "bogus", msg: withHeader(alice, detached), answer: &dane.Result{Status: dane.StatusBogus}, result: ResultPermError, binding: BindingBogus, valid: true},
		{name: "indeterminate", msg: withHeader(alice, detached), answer: &dane.Result{Status: dane.StatusIndeterminate, Err: errors.New("SERVFAIL")}, result: ResultTempError, binding: BindingIndeterminate, valid: true, reason: "SERVFAIL"},
		{name: "SHA-1 is never a pass", msg: withHeader(alice, sha1), result: ResultPolicy, binding: BindingNotChecked, reason: "weak"},
		{name: "malformed signature part", msg: withHeader(alice, replaceOnce(t, detached, "Content-Transfer-Encoding: base64", "Content-Transfer-Encoding: quoted-printable")), result: ResultPermError, binding: BindingNotChecked, reason: "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &dane.Fake{}
			ans := secure
			if tc.answer != nil {
				ans = *tc.answer
			}
			f.Set(smimeaName(t, alice), dns.TypeSMIMEA, ans)
			r := mustVerify(t, newVerifier(f), tc.msg)
			if len(r.Signatures) != 1 {
				t.Fatalf("%d signatures: %s", len(r.Signatures), r.Summary())
			}
			s := r.Signatures[0]
			part := tc.part
			if part == "" {
				part = "1"
			}
			if s.Method != MethodSMIME || s.Part != part || s.Result != tc.result || s.Binding != tc.binding || s.Valid != tc.valid {
				t.Errorf("got %s %s %s %s valid=%v, want part %s %s %s valid=%v; reason %q", s.Method, s.Part, s.Result, s.Binding, s.Valid, part, tc.result, tc.binding, tc.valid, s.Reason)
			}
			if !strings.Contains(s.Reason, tc.reason) {
				t.Errorf("reason %q, want %q", s.Reason, tc.reason)
			}
			if r.Pass() != (tc.result == ResultPass) || !r.Signed() {
				t.Errorf("Pass %v Signed %v", r.Pass(), r.Signed())
			}
			if (s.Record != "") != (s.Binding == BindingBound) {
				t.Errorf("record %q with binding %s", s.Record, s.Binding)
			}
			if s.Valid && (s.Serial != signer.cert.SerialNumber.Text(16) || s.Signer != alice || s.Algorithm == "" || s.SigningTime.IsZero()) {
				t.Errorf("details: serial %s signer %s alg %s time %v", s.Serial, s.Signer, s.Algorithm, s.SigningTime)
			}
			// Harvesting material only for a pass (issue 14): a valid
			// signature that no secure record binds teaches nothing.
			if s.Result == ResultPass {
				if !bytes.Equal(s.Certificate, signer.cert.Raw) || len(s.Capabilities) == 0 {
					t.Errorf("pass without the certificate (%d octets) or capabilities (%d)", len(s.Certificate), len(s.Capabilities))
				}
			} else if s.Certificate != nil || s.Capabilities != nil {
				t.Errorf("%s carries harvesting material", s.Result)
			}
			for _, f := range r.Fields("mx.example.net") {
				if strings.Contains(f.Value, base64.StdEncoding.EncodeToString(signer.cert.Raw)[:16]) {
					t.Errorf("certificate in %s", f.Name)
				}
			}
			for _, bad := range []string{"Hello", "signed;", "BEGIN"} {
				if strings.Contains(s.Reason, bad) || strings.Contains(r.Summary(), bad) {
					t.Errorf("message content %q in the reason or summary: %s", bad, r.Summary())
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestVerifyOpenPGP(t *testing.T) {
	key := newPGPKey(t, alice)
	otherKey := newPGPKey(t, alice)
	signed := pgpSign(t, key, signedContent, 0)
	tests := []struct {
		name    string
		msg     []byte
		answer  *dane.Result
		result  Result
		binding Binding
		valid   bool
		reason  string
	}{
		{name: "valid and bound", msg: withHeader(alice, signed), result: ResultPass, binding: BindingBound, valid: true},
		{name: "nested alone", msg: withHeader(alice, only(signed)), result: ResultPass, binding: BindingBound, valid: true},
		{name: "nested beside unsigned text", msg: withHeader(alice, mixed(signed)), result: ResultPolicy, binding: BindingBound, valid: true, reason: "signed part 1.2 covers only part of the message: unsigned parts beside it"},
		{name: "tampered body", msg: withHeader(alice, replaceOnce(t, signed, "Hello, Bob.", "Hello, Bub.")), result: ResultFail, binding: BindingNotChecked},
		{name: "tampered header inside the signed part", msg: withHeader(alice, replaceOnce(t, signed, "charset=us-ascii", "charset=utf-8")), result: ResultFail, binding: BindingNotChecked},
		{name: "no record", msg: withHeader(alice, signed), answer: &dane.Result{Status: dane.StatusSecureDenial}, result: ResultNeutral, binding: BindingNoRecord, reason: "cannot be checked without the signer's key"},
		{name: "another key in the record", msg: withHeader(alice, signed), answer: ptr(openpgpkeyFor(t, otherKey)), result: ResultPolicy, binding: BindingMismatch, reason: "not among the 1 key"},
		{name: "record with no key for From", msg: withHeader(alice, signed), answer: ptr(openpgpkeyFor(t, newPGPKey(t, "carol@example.com"))), result: ResultPolicy, binding: BindingMismatch, reason: "no usable signing key"},
		{name: "From of another address", msg: withHeader("bob@example.com", signed), result: ResultNeutral, binding: BindingNoRecord},
		{name: "bogus", msg: withHeader(alice, signed), answer: &dane.Result{Status: dane.StatusBogus}, result: ResultPermError, binding: BindingBogus},
		{name: "indeterminate", msg: withHeader(alice, signed), answer: &dane.Result{Status: dane.StatusIndeterminate}, result: ResultTempError, binding: BindingIndeterminate},
		{name: "no From", msg: withHeader("", signed), result: ResultPolicy, binding: BindingNotChecked, reason: "no From field"},
	}
	// Every case runs without a key cache and with one shared by all cases
	// (as the daemon's): remembered parses must not change an outcome.
	cache := &openpgp.KeyCache{}
	for _, cached := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/cached=%v", tc.name, cached), func(t *testing.T) {
				f := &dane.Fake{}
				ans := openpgpkeyFor(t, key)
				if tc.answer != nil {
					ans = *tc.answer
				}
				f.Set(openpgpkeyName(t, alice), dns.TypeOPENPGPKEY, ans)
				v := newVerifier(f)
				if cached {
					v.Keys = cache
				}
				r := mustVerify(t, v, tc.msg)
				if len(r.Signatures) != 1 {
					t.Fatalf("%d signatures: %s", len(r.Signatures), r.Summary())
				}
				s := r.Signatures[0]
				if s.Method != MethodOpenPGP || s.Result != tc.result || s.Binding != tc.binding || s.Valid != tc.valid {
					t.Errorf("got %s %s %s valid=%v, want %s %s valid=%v; reason %q", s.Method, s.Result, s.Binding, s.Valid, tc.result, tc.binding, tc.valid, s.Reason)
				}
				if !strings.Contains(s.Reason, tc.reason) {
					t.Errorf("reason %q, want %q", s.Reason, tc.reason)
				}
				if s.Result == ResultPass && (s.Fingerprint != strings.ToUpper(key.PrimaryKey.KeyIdString()) && !strings.HasSuffix(s.Fingerprint, strings.ToUpper(key.PrimaryKey.KeyIdString())) || s.Record != "OPENPGPKEY" || s.Signer != alice) {
					t.Errorf("pass details: fingerprint %s record %s signer %s", s.Fingerprint, s.Record, s.Signer)
				}
			})
		}
	}
	if cache.Len() != 3 {
		t.Errorf("the key cache holds %d records, want the 3 distinct ones", cache.Len())
	}
}

func TestVerifyStructure(t *testing.T) {
	signer := newSMIMESigner(t, alice)
	key := newPGPKey(t, alice)
	detached := signer.sign(t, signedContent, "sha256", false)
	f := &dane.Fake{}
	f.Set(smimeaName(t, alice), dns.TypeSMIMEA, smimeaFor(signer.cert, 3, 0, 0))
	f.Set(openpgpkeyName(t, alice), dns.TypeOPENPGPKEY, openpgpkeyFor(t, key))

	// Two signed parts, one of each kind, beside a text part: both valid
	// and bound, neither covers the message, so no pass.
	r := mustVerify(t, newVerifier(f), withHeader(alice, mixed(detached, pgpSign(t, key, signedContent, 0))))
	if len(r.Signatures) != 2 || r.Signatures[0].Part != "1.2" || r.Signatures[1].Part != "1.3" || r.Pass() ||
		r.Signatures[0].Method != MethodSMIME || r.Signatures[1].Method != MethodOpenPGP ||
		r.Signatures[0].Result != ResultPolicy || r.Signatures[1].Result != ResultPolicy ||
		r.Signatures[0].Binding != BindingBound || r.Signatures[1].Binding != BindingBound {
		t.Errorf("two signed parts: %s", r.Summary())
	}
	// Two signed parts and nothing else: each covers only half.
	two := []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + string(detached) + "\r\n--b\r\n" + string(detached) + "\r\n--b--\r\n")
	if r := mustVerify(t, newVerifier(f), withHeader(alice, two)); r.Pass() || len(r.Signatures) != 2 || r.Signatures[1].Result != ResultPolicy {
		t.Errorf("two signed parts alone: %s", r.Summary())
	}

	// Unsigned.
	r = mustVerify(t, newVerifier(f), withHeader(alice, []byte("Content-Type: text/plain\r\n\r\nHi.\r\n")))
	if r.Signed() || r.Pass() || r.From != alice || r.Truncated {
		t.Errorf("unsigned: %s", r.Summary())
	}

	// Depth: the signed part nested deeper than MaxDepth is not reached.
	deep := detached
	for range 4 {
		deep = only(deep)
	}
	v := newVerifier(f)
	v.MaxDepth = 3
	if r := mustVerify(t, v, withHeader(alice, deep)); r.Signed() || !r.Truncated {
		t.Errorf("depth limit: %s truncated=%v", r.Summary(), r.Truncated)
	}
	v.MaxDepth = 0
	if r := mustVerify(t, v, withHeader(alice, deep)); !r.Pass() || r.Truncated || r.Signatures[0].Part != "1.1.1.1.1" {
		t.Errorf("default depth: %s", r.Summary())
	}

	// Parts: 10 plain parts before the signed one.
	var many [][]byte
	for range 10 {
		many = append(many, []byte("Content-Type: text/plain\r\n\r\nx"))
	}
	many = append(many, detached)
	v = newVerifier(f)
	v.MaxParts = 5
	if r := mustVerify(t, v, withHeader(alice, mixed(many...))); r.Signed() || !r.Truncated {
		t.Errorf("parts limit: %s", r.Summary())
	}
	v.MaxParts = 0
	if r := mustVerify(t, v, withHeader(alice, mixed(many...))); !r.Signed() || r.Pass() || r.Truncated || r.Signatures[0].Binding != BindingBound {
		t.Errorf("default parts: %s", r.Summary())
	}

	// A forwarded message's signature is not this message's.
	fwd := append([]byte("Content-Type: message/rfc822\r\n\r\n"), withHeader(alice, detached)...)
	if r := mustVerify(t, newVerifier(f), withHeader(alice, mixed(fwd))); r.Signed() {
		t.Errorf("forwarded: %s", r.Summary())
	}

	// Enveloped pkcs7-mime is not a signature.
	env := []byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggE=\r\n")
	if r := mustVerify(t, newVerifier(f), withHeader(alice, env)); r.Signed() {
		t.Errorf("enveloped: %s", r.Summary())
	}
}

func TestVerifyContext(t *testing.T) {
	signer := newSMIMESigner(t, alice)
	f := &dane.Fake{}
	f.Set(smimeaName(t, alice), dns.TypeSMIMEA, smimeaFor(signer.cert, 3, 0, 0))
	msg := withHeader(alice, signer.sign(t, signedContent, "sha256", false))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := newVerifier(f).Verify(ctx, msg)
	if !errors.Is(err, context.Canceled) || r == nil || r.Pass() {
		t.Fatalf("cancelled: %v %v", err, r)
	}
	// A lookup that ends with the context is a temporary error.
	ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if r := mustVerify(t, newVerifier(f), msg); !r.Pass() {
		t.Fatalf("not cancelled: %s", r.Summary())
	}
}

func TestVerifyLowercaseLocalPart(t *testing.T) {
	signer := newSMIMESigner(t, "Alice@example.com")
	f := &dane.Fake{}
	n, _ := dane.SMIMEAName("alice@example.com", false)
	f.Set(n, dns.TypeSMIMEA, smimeaFor(signer.cert, 3, 0, 0))
	msg := withHeader("Alice@example.com", signer.sign(t, signedContent, "sha256", false))
	v := newVerifier(f)
	if r := mustVerify(t, v, msg); r.Pass() || r.Signatures[0].Binding != BindingNoRecord {
		t.Errorf("without lowercasing: %s", r.Summary())
	}
	v.LowercaseLocalPart = true
	if r := mustVerify(t, v, msg); !r.Pass() {
		t.Errorf("with lowercasing: %s", r.Summary())
	}
}
