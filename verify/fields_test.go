package verify

import (
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
)

func TestFields(t *testing.T) {
	signer := newSMIMESigner(t, alice)
	key := newPGPKey(t, alice)
	f := &dane.Fake{}
	f.Set(smimeaName(t, alice), dns.TypeSMIMEA, smimeaFor(signer.cert, 3, 1, 1))
	f.Set(openpgpkeyName(t, alice), dns.TypeOPENPGPKEY, openpgpkeyFor(t, key))
	detached := signer.sign(t, signedContent, "sha256", false)
	// Two signed parts beside a text part: valid and bound, but neither
	// covers the message, so policy, with policy.dane=bound and the record.
	r := mustVerify(t, newVerifier(f), withHeader(alice, mixed(detached, pgpSign(t, key, signedContent, 0))))
	fields := r.Fields("mx.example.net")
	if len(fields) != 2 || fields[0].Name != FieldAuthenticationResults || fields[1].Name != FieldOpenPGP {
		t.Fatalf("fields %+v", fields)
	}
	for _, fl := range fields {
		if strings.ContainsAny(fl.Value, "\r\n") || strings.Contains(fl.Value, "Hello") {
			t.Errorf("%s: %q", fl.Name, fl.Value)
		}
		if !IsOurs(fl.Value, "MX.example.net") {
			t.Errorf("IsOurs(%q) false", fl.Value)
		}
	}
	id, results, err := authres.Parse(fields[0].Value)
	if err != nil || id != "mx.example.net" || len(results) != 1 {
		t.Fatalf("Parse(%q) = %q %v %v", fields[0].Value, id, results, err)
	}
	g, ok := results[0].(*authres.GenericResult)
	if !ok || g.Method != "smime" || g.Value != authres.ResultPolicy || g.Params["policy.dane"] != "bound" ||
		!strings.Contains(fields[0].Value, `reason="valid signature bound by DNSSEC-secure SMIMEA 3 1 1, but the signed part covers only part of the message"`) ||
		g.Params["body.smime-identifier"] != alice || g.Params["body.smime-part"] != "1.2" ||
		g.Params["body.smime-serial"] != signer.cert.SerialNumber.Text(16) {
		t.Errorf("smime result %#v from %q", results[0], fields[0].Value)
	}
	// The issuer holds a ";" (O=Example; Inc), which may not end the resinfo.
	if !strings.Contains(fields[0].Value, `body.smime-issuer="CN=Test Signer,O=Example?? Inc"`) {
		t.Errorf("issuer not written safely: %q", fields[0].Value)
	}
	_, results, err = authres.Parse(fields[1].Value)
	if err != nil || len(results) != 1 {
		t.Fatalf("Parse(%q): %v", fields[1].Value, err)
	}
	g, ok = results[0].(*authres.GenericResult)
	if !ok || g.Method != "openpgp" || g.Value != authres.ResultPolicy || g.Params["policy.dane"] != "bound" ||
		g.Params["body.openpgp-fingerprint"] != r.Signatures[1].Fingerprint || g.Params["body.openpgp-part"] != "1.3" {
		t.Errorf("openpgp result %#v from %q", results[0], fields[1].Value)
	}

	// The signed part alone in a multipart: smime=pass.
	r = mustVerify(t, newVerifier(f), withHeader(alice, only(detached)))
	fields = r.Fields("mx.example.net")
	if v := fields[0].Value; len(fields) != 1 || !strings.Contains(v, "smime=pass") || !strings.Contains(v, "body.smime-part=1.1") || !strings.Contains(v, "policy.dane=bound") {
		t.Errorf("alone: %+v", fields)
	}

	// Not signed: smime=none, no OpenPGP field.
	r = mustVerify(t, newVerifier(f), withHeader(alice, []byte("Content-Type: text/plain\r\n\r\nHi.\r\n")))
	fields = r.Fields("mx.example.net")
	if len(fields) != 1 || fields[0].Value != "mx.example.net; smime=none" {
		t.Errorf("unsigned: %+v", fields)
	}
	if _, results, err := authres.Parse(fields[0].Value); err != nil || len(results) != 1 || results[0].(*authres.GenericResult).Value != authres.ResultNone {
		t.Errorf("unsigned parsed: %v %v", results, err)
	}

	// A valid but unbound signature: smime=policy, policy.dane=no-record.
	f2 := &dane.Fake{}
	r = mustVerify(t, newVerifier(f2), withHeader(alice, detached))
	v := r.Fields("mx.example.net")[0].Value
	if !strings.Contains(v, "smime=policy") || !strings.Contains(v, "policy.dane=no-record") || strings.Contains(v, "pass") {
		t.Errorf("unbound: %q", v)
	}
}

func TestReasonsPerOutcome(t *testing.T) {
	for _, s := range []Signature{
		{Result: ResultPass, Binding: BindingBound, Record: "SMIMEA 3 0 0", Valid: true},
		{Result: ResultFail}, {Result: ResultNeutral}, {Result: ResultNeutral, Binding: BindingNoRecord},
		{Result: ResultTempError}, {Result: ResultPermError}, {Result: ResultPermError, Binding: BindingBogus},
		{Result: ResultPolicy}, {Result: ResultPolicy, Valid: true}, {Result: ResultPolicy, Valid: true, Binding: BindingNoRecord},
		{Result: ResultPolicy, Valid: true, Binding: BindingMismatch},
		{Result: ResultPolicy, Valid: true, Binding: BindingBound, Record: "SMIMEA 3 0 0"},
	} {
		r := arReason(s)
		if r == "" || strings.ContainsAny(r, ";=\"\\") {
			t.Errorf("%+v: reason %q", s, r)
		}
	}
}

// TestReasonUnknownPGPSigner: a PGP/MIME signer whose key the From
// address's secure records do not hold is not blamed on a weak algorithm
// (found through Postfix, integration/inbound_test.go).
func TestReasonUnknownPGPSigner(t *testing.T) {
	r := arReason(Signature{Method: MethodOpenPGP, Result: ResultPolicy, Binding: BindingMismatch})
	if strings.Contains(r, "weak") || !strings.Contains(r, "do not hold") {
		t.Errorf("reason %q", r)
	}
}

func TestIsOurs(t *testing.T) {
	tests := []struct {
		value, id string
		want      bool
	}{
		{"mx.example.net; smime=pass", "mx.example.net", true},
		{"MX.Example.NET; none", "mx.example.net", true},
		{"mx.example.net 1; spf=pass smtp.mailfrom=x@y", "mx.example.net", true},
		{" (comment) mx.example.net;dkim=pass", "mx.example.net", true},
		{"(nested (comment) \\) here)\r\n\tmx.example.net", "mx.example.net", true},
		{`"mx.example.net"; smime=pass`, "mx.example.net", true},
		{"mx.example.net", "mx.example.net", true},
		{"mx.example.net(c); smime=pass", "mx.example.net", true},
		{"mx.example.net; smime=pass (unbalanced", "mx.example.net", true},
		{"mx.example.net;;;; garbage === ((", "mx.example.net", true},
		{"mx.example.net.evil; smime=pass", "mx.example.net", false},
		{"evil.mx.example.net; smime=pass", "mx.example.net", false},
		{"other.example; smime=pass", "mx.example.net", false},
		{"; mx.example.net", "mx.example.net", false},
		{"(mx.example.net) other; smime=pass", "mx.example.net", false},
		{"", "mx.example.net", false},
		{"(unterminated mx.example.net", "mx.example.net", false},
		{`"mx.example.net`, "mx.example.net", false},
		{"mx.example.net; smime=pass", "", false},
		{"\x00\xff; smime=pass", "mx.example.net", false},
		// One trailing dot on either side names the same host.
		{"mx.example.net.; smime=pass", "mx.example.net", true},
		{"MX.example.net.; smime=pass", "mx.example.net.", true},
		{"mx.example.net; smime=pass", "mx.example.net.", true},
		{`"mx.example.net."; smime=pass`, "mx.example.net", true},
		{"(c) mx.example.net.(c); smime=pass", "mx.example.net", true},
		{"mx.example.net..; smime=pass", "mx.example.net", false},
		{"mx.example.net.evil.; smime=pass", "mx.example.net", false},
		{".; smime=pass", ".", false},
		{"; smime=pass", ".", false},
	}
	for _, tc := range tests {
		if got := IsOurs(tc.value, tc.id); got != tc.want {
			t.Errorf("IsOurs(%q, %q) = %v", tc.value, tc.id, got)
		}
	}
}

func TestSummary(t *testing.T) {
	r := &Report{FromErr: "no From field", Truncated: true}
	if s := r.Summary(); !strings.Contains(s, "from=none (no From field)") || !strings.Contains(s, "no signature") || !strings.Contains(s, "truncated") {
		t.Errorf("summary %q", s)
	}
	r = &Report{From: alice, Signatures: []Signature{{Method: MethodSMIME, Part: "1", Result: ResultPass, Binding: BindingBound, Record: "SMIMEA 3 0 0", Signer: alice, Reason: "ok"}}}
	if s := r.Summary(); s != `from=alice@example.com; smime part 1: pass dane=bound record="SMIMEA 3 0 0" signer=alice@example.com reason="ok"` {
		t.Errorf("summary %q", s)
	}
}

func TestClean(t *testing.T) {
	if got := clean("a\"b\\c;d\r\ne\u00e9"); got != "a?b?c?d??e??" {
		t.Errorf("clean = %q", got)
	}
	if got := clean(strings.Repeat("x", 500)); len(got) != maxValueLen {
		t.Errorf("clean length %d", len(got))
	}
}
