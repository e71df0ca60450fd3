package verify

import (
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
)

// FuzzVerify: any message gives a Report, never a panic; a pass needs a
// valid, bound signature; the fields always parse back to our authserv-id.
func FuzzVerify(f *testing.F) {
	signer := newSMIMESigner(f, alice)
	key := newPGPKey(f, alice)
	detached := signer.sign(f, signedContent, "sha256", false)
	f.Add(withHeader(alice, detached))
	f.Add(withHeader(alice, signer.sign(f, signedContent, "sha256", true)))
	f.Add(withHeader(alice, mixed(detached, pgpSign(f, key, signedContent, 0))))
	f.Add([]byte("From: a@b.c\r\nContent-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=x\r\n\r\n--x\r\n\r\n--x--\r\n"))
	f.Add([]byte("Content-Type: application/pkcs7-mime\r\n\r\nMIIB"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n"))
	f.Add([]byte(""))
	res := &dane.Fake{}
	res.Set(smimeaName(f, alice), dns.TypeSMIMEA, smimeaFor(signer.cert, 3, 0, 0))
	res.Set(openpgpkeyName(f, alice), dns.TypeOPENPGPKEY, openpgpkeyFor(f, key))
	v := newVerifier(res)
	v.MaxParts, v.MaxDepth = 16, 4
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := v.Verify(context.Background(), msg)
		if err != nil || r == nil {
			t.Fatalf("Verify: %v", err)
		}
		for _, s := range r.Signatures {
			if s.Result == ResultPass && (!s.Valid || s.Binding != BindingBound || r.From == "") {
				t.Fatalf("pass without a bound valid signature: %+v", s)
			}
		}
		for _, fl := range r.Fields("mx.example.net") {
			if strings.ContainsAny(fl.Value, "\r\n") {
				t.Fatalf("line break in %q", fl.Value)
			}
			if !IsOurs(fl.Value, "mx.example.net") {
				t.Fatalf("our field not ours: %q", fl.Value)
			}
			if id, _, err := authres.Parse(fl.Value); err == nil && id != "mx.example.net" {
				t.Fatalf("authserv-id %q in %q", id, fl.Value)
			}
		}
		_ = r.Summary()
	})
}

// FuzzIsOurs: never a panic; a value that starts with our id followed by a
// delimiter is ours; a value whose first token is longer is not.
func FuzzIsOurs(f *testing.F) {
	for _, s := range []string{"mx.example.net; smime=pass", "(c) mx.example.net", `"mx.example.net"`, "(((", `"\`, "mx.example.net.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ours := IsOurs(v, "mx.example.net")
		if IsOurs("mx.example.net; "+v, "mx.example.net") != true {
			t.Fatal("prefixed value not ours")
		}
		// A quoted or bare trailing dot ("mx.example.net." written as
		// mx.example.net"." too) is the same name: ours, the safe side.
		if len(v) > 0 && !strings.ContainsAny(v[:1], " \t\r\n;()") && !trailingDot(v) && IsOurs("mx.example.net"+v, "mx.example.net") {
			t.Fatalf("mx.example.net%q taken for ours", v)
		}
		if ours && !strings.Contains(strings.ToLower(v), "mx.example.net") {
			t.Fatalf("%q ours without the id", v)
		}
	})
}

// trailingDot reports whether v, quotes removed, is only a trailing dot of
// the id: ".", or "." before a delimiter.
func trailingDot(v string) bool {
	u := strings.ReplaceAll(v, `"`, "")
	return u == "." || (len(u) > 1 && u[0] == '.' && strings.ContainsAny(u[1:2], " \t\r\n;()"))
}
