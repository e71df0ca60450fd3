package verify

import "time"

// Method is the kind of signature.
type Method string

// The methods. MethodSMIME is the registered Authentication-Results method
// of RFC 7281; MethodOpenPGP has no registered method (see Report.Fields).
const (
	MethodSMIME   Method = "smime"
	MethodOpenPGP Method = "openpgp"
)

// Result is the verdict on one signature, in the result words of RFC 7281
// §3 (which RFC 8601 §2.7 shares) so that it can be written as is.
type Result string

// The results. Only ResultPass means "valid, strong, and bound by a
// DNSSEC-secure record of the From address to the signer"; a signature that
// verifies without that binding is never ResultPass.
const (
	ResultNone      Result = "none"      // no signature of this method
	ResultPass      Result = "pass"      // valid, DANE-bound to the From address, and covering the whole message
	ResultFail      Result = "fail"      // the signature does not verify (content changed, bad signature)
	ResultPolicy    Result = "policy"    // verifies, but unacceptable: not DANE-bound, From mismatch, weak algorithm, unsigned parts beside it
	ResultNeutral   Result = "neutral"   // could not be judged (unknown algorithm, signer key not known)
	ResultTempError Result = "temperror" // DNS could not be asked (indeterminate); try again later
	ResultPermError Result = "permerror" // malformed signature or message; bogus DNS answer
)

// Binding is how a signer is tied to the From address through DNS.
type Binding string

// The bindings.
const (
	// BindingBound: a DNSSEC-secure SMIMEA (OPENPGPKEY) record of the From
	// address matches the signer certificate (key) under its usage.
	BindingBound Binding = "bound"
	// BindingNoRecord: the From address has no secure record (secure
	// denial, or an insecure zone).
	BindingNoRecord Binding = "no-record"
	// BindingMismatch: secure records exist but none matches the signer.
	BindingMismatch Binding = "mismatch"
	// BindingBogus: the answer failed DNSSEC validation.
	BindingBogus Binding = "bogus"
	// BindingIndeterminate: the lookup could not be completed.
	BindingIndeterminate Binding = "indeterminate"
	// BindingNotChecked: the binding was not looked up (no valid
	// signature, or no usable From address).
	BindingNotChecked Binding = "not-checked"
)

// Signature is the outcome for one signed entity of the message.
type Signature struct {
	Method Method
	// Part is the signed entity's position in the MIME tree, as RFC 7281
	// body.smime-part writes it: "1" for the top-level entity, "1.2" for
	// the second part of a top-level multipart, and so on.
	Part   string
	Result Result
	// Valid: the signature verifies with an accepted (strong) algorithm.
	Valid   bool
	Binding Binding
	// Signer is the signer's address: the certificate's rfc822Name (or
	// emailAddress) or the key's user ID address that matches From, or
	// the first one when none matches. Empty when unknown.
	Signer string
	// S/MIME: the signer certificate's serial (hex) and issuer (RFC 4514).
	Serial, Issuer string
	// OpenPGP: the signer key's primary fingerprint (upper-case hex).
	Fingerprint string
	// Record names the record that binds the signer, as "SMIMEA 3 0 0" or
	// "OPENPGPKEY", empty unless Binding is BindingBound.
	Record string
	// Algorithm is the signature and digest, e.g. "rsa-pss/sha256".
	Algorithm string
	// SigningTime is what the signature says of its time (zero: absent).
	SigningTime time.Time
	// Reason says, for a log or `danemilter verify`, why Result is what
	// it is. It never holds message content or key material.
	Reason string
	// Certificate is the S/MIME signer certificate's DER, and
	// Capabilities the DER of its signed SMIMECapabilities attribute
	// (RFC 8551 §2.5.2; nil when absent), set only when Result is
	// ResultPass: they are what harvesting stores (package harvest), and
	// only a signature that is valid and bound to From by a DNSSEC-secure
	// record may teach anything. They are material, not a verdict: Fields,
	// Summary and the log never write them.
	Certificate, Capabilities []byte
}

// Report is what verification concluded about one message.
type Report struct {
	// From is the RFC 5322 From address, lower-cased domain; empty when the
	// message has none, several, or one that does not parse (FromErr).
	From    string
	FromErr string
	// Signatures are the signed entities found, outermost first.
	Signatures []Signature
	// Truncated is set when the message had more signed entities or a
	// deeper MIME tree than the limits allow; the rest was not checked.
	Truncated bool
}

// The methods below are the contract the milter and `danemilter verify`
// code against; verify.go implements them.
//
//	func (r *Report) Signed() bool  // at least one signed entity was found
//	func (r *Report) Pass() bool    // at least one signature is ResultPass (valid, DANE-bound to From, covering the whole message)
//	func (r *Report) Summary() string   // one line for the log: results, binding, reasons; no content
//	func (r *Report) Fields(authservID string) []Field // header fields to add, Authentication-Results first
//	func IsOurs(value, authservID string) bool          // an Authentication-Results value carries our authserv-id
//	func (v *Verifier) Verify(ctx context.Context, message []byte) (*Report, error)

// Field is a header field to add to the message.
type Field struct{ Name, Value string }
