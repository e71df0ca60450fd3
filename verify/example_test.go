package verify_test

import (
	"context"
	"fmt"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/verify"
)

// A message without a signature: the report says so, and the
// Authentication-Results field still shows that it was checked.
func ExampleVerifier_Verify() {
	v := &verify.Verifier{Resolver: &dane.Fake{}}
	msg := []byte("From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n")
	r, err := v.Verify(context.Background(), msg)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Signed(), r.Pass())
	fmt.Println(r.Summary())
	for _, f := range r.Fields("mx.example.net") {
		fmt.Printf("%s: %s\n", f.Name, f.Value)
	}
	// Output:
	// false false
	// from=alice@example.com; no signature
	// Authentication-Results: mx.example.net; smime=none
}

// Results rendered as header fields: smime=pass only for a DANE-bound
// signature, and policy.dane for filters.
func ExampleReport_Fields() {
	r := &verify.Report{From: "alice@example.com", Signatures: []verify.Signature{
		{Method: verify.MethodSMIME, Part: "1", Result: verify.ResultPass, Valid: true, Binding: verify.BindingBound,
			Signer: "alice@example.com", Serial: "1a2b", Issuer: "CN=Alice", Record: "SMIMEA 3 0 0"},
		{Method: verify.MethodOpenPGP, Part: "1.2", Result: verify.ResultNeutral, Binding: verify.BindingNoRecord,
			Fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567"},
	}}
	for _, f := range r.Fields("mx.example.net") {
		fmt.Printf("%s: %s\n", f.Name, f.Value)
	}
	// Output:
	// Authentication-Results: mx.example.net; smime=pass reason="valid signature, signer bound by DNSSEC-secure SMIMEA 3 0 0" body.smime-identifier=alice@example.com body.smime-issuer="CN=Alice" body.smime-part=1 body.smime-serial=1a2b policy.dane=bound
	// DANE-OpenPGP-Result: mx.example.net; openpgp=neutral reason="no DNSSEC-secure key record to check the signature with" body.openpgp-fingerprint=0123456789ABCDEF0123456789ABCDEF01234567 body.openpgp-part=1.2 policy.dane=no-record
}

// IsOurs recognizes our authserv-id in a forged field, even a malformed one.
func ExampleIsOurs() {
	fmt.Println(isOurs("mx.example.net; smime=pass"))
	fmt.Println(isOurs("(forged) MX.EXAMPLE.NET ;;; ((("))
	fmt.Println(isOurs("mx.example.net.attacker.example; smime=pass"))
	// Output:
	// true
	// true
	// false
}

func isOurs(v string) bool { return verify.IsOurs(v, "mx.example.net") }
