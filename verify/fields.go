package verify

import (
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// The header fields Report.Fields writes. The milter removes incoming
// fields of both names whose authserv-id is ours (IsOurs) before adding
// them (RFC 8601 §5).
const (
	FieldAuthenticationResults = "Authentication-Results"
	FieldOpenPGP               = "DANE-OpenPGP-Result"
)

// maxValueLen bounds a property value taken from a certificate.
const maxValueLen = 200

// Signed reports whether at least one signed entity was found.
func (r *Report) Signed() bool { return len(r.Signatures) > 0 }

// Pass reports whether at least one signature is valid, DANE-bound to
// the From address and covers the whole message content (ResultPass: a
// signed part beside unsigned parts is ResultPolicy, see Verify).
func (r *Report) Pass() bool {
	for _, s := range r.Signatures {
		if s.Result == ResultPass {
			return true
		}
	}
	return false
}

// Summary returns one line for the log: the From address (or why there is
// none), and per signature its method, part, result, binding, record and
// reason. It holds no message content.
func (r *Report) Summary() string {
	var b strings.Builder
	if r.From != "" {
		fmt.Fprintf(&b, "from=%s", r.From)
	} else {
		fmt.Fprintf(&b, "from=none (%s)", r.FromErr)
	}
	if len(r.Signatures) == 0 {
		b.WriteString("; no signature")
	}
	for _, s := range r.Signatures {
		fmt.Fprintf(&b, "; %s part %s: %s dane=%s", s.Method, s.Part, s.Result, s.Binding)
		if s.Record != "" {
			fmt.Fprintf(&b, " record=%q", s.Record)
		}
		if s.Signer != "" {
			fmt.Fprintf(&b, " signer=%s", clean(s.Signer))
		}
		fmt.Fprintf(&b, " reason=%q", s.Reason)
	}
	if r.Truncated {
		b.WriteString("; truncated: more parts than the limits allow were not checked")
	}
	return b.String()
}

// Fields returns the header fields to add for r, Authentication-Results
// first, with authservID as the authserv-id (RFC 8601 §2.5), as given.
// Authentication-Results has one "smime" resinfo per S/MIME signature, or
// "smime=none" when there is none; DANE-OpenPGP-Result follows when there
// are PGP/MIME signatures (see the package documentation). Values are not
// folded: the caller folds them (mimeentity.FoldField) as it writes them.
func (r *Report) Fields(authservID string) []Field {
	var sm, pg []authres.Result
	for _, s := range r.Signatures {
		params := map[string]string{
			"reason":      arReason(s),
			"policy.dane": string(s.Binding), // RFC 8601 §2.3: ptype policy
		}
		switch s.Method {
		case MethodSMIME:
			// RFC 7281 §3: the smime properties.
			params["body.smime-part"] = s.Part
			params["body.smime-identifier"] = clean(s.Signer)
			params["body.smime-serial"] = clean(s.Serial)
			params["body.smime-issuer"] = clean(s.Issuer)
			sm = append(sm, &authres.GenericResult{Method: "smime", Value: authres.ResultValue(s.Result), Params: params})
		case MethodOpenPGP:
			params["body.openpgp-part"] = s.Part
			params["body.openpgp-identifier"] = clean(s.Signer)
			params["body.openpgp-fingerprint"] = clean(s.Fingerprint)
			pg = append(pg, &authres.GenericResult{Method: "openpgp", Value: authres.ResultValue(s.Result), Params: params})
		}
	}
	if len(sm) == 0 {
		sm = append(sm, &authres.GenericResult{Method: "smime", Value: authres.ResultNone})
	}
	out := []Field{{Name: FieldAuthenticationResults, Value: format(authservID, sm)}}
	if len(pg) > 0 {
		out = append(out, Field{Name: FieldOpenPGP, Value: format(authservID, pg)})
	}
	return out
}

func format(id string, rs []authres.Result) string {
	v := authres.Format(id, rs)
	// authres ends a resinfo without properties with a space.
	return strings.TrimSpace(strings.ReplaceAll(v, " ;", ";"))
}

// arReason is the reason written into the field: a fixed phrase per
// outcome, never the detailed Reason (which may quote parser errors).
func arReason(s Signature) string {
	switch s.Result {
	case ResultPass:
		return "valid signature, signer bound by DNSSEC-secure " + s.Record
	case ResultFail:
		return "signature does not verify"
	case ResultNeutral:
		if s.Binding == BindingNoRecord {
			return "no DNSSEC-secure key record to check the signature with"
		}
		return "signature cannot be checked"
	case ResultTempError:
		return "key record lookup failed, try again later"
	case ResultPermError:
		if s.Binding == BindingBogus {
			return "key record failed DNSSEC validation"
		}
		return "malformed signature"
	case ResultPolicy:
		switch {
		case !s.Valid && s.Binding == BindingMismatch:
			// PGP/MIME: the keyring comes from the records, so a signer
			// they do not hold cannot be checked at all.
			return "signed by a key the From address's secure records do not hold"
		case !s.Valid:
			return "signature verifies only with a weak or unacceptable algorithm or key"
		case s.Binding == BindingNoRecord:
			return "valid signature, no DNSSEC-secure record for the From address"
		case s.Binding == BindingMismatch:
			return "valid signature, the From address's secure records do not match the signer"
		case s.Binding == BindingBound:
			// Valid and bound, but on a part beside unsigned ones (walk).
			return "valid signature bound by DNSSEC-secure " + s.Record + ", but the signed part covers only part of the message"
		}
		return "valid signature, signer not bound to the From address"
	}
	return ""
}

// clean makes a value taken from a certificate or key safe for a header
// field: printable ASCII only, without the quote and backslash that
// authres does not escape and the semicolon its parser splits on; long
// values are cut.
func clean(v string) string {
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v) && len(b) < maxValueLen; i++ {
		c := v[i]
		switch {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == ';':
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// IsOurs reports whether value, the value of an Authentication-Results (or
// DANE-OpenPGP-Result) field, carries authservID as its authserv-id (RFC
// 8601 §2.5), compared without regard to case: such a field found in an
// incoming message is a forgery or a leftover and is removed (RFC 8601 §5).
// It reads only the first token, after any comments and folding white
// space, as a quoted string or up to white space, ";" or "(", so that a
// field too malformed for a full parse is still recognized. One trailing
// dot is ignored on either side: "mx.example." and "mx.example" name the
// same host (RFC 1034 §3.1), and a consumer that strips the dot would
// trust a forged field we had left in place. An empty authservID (or "."
// alone) matches nothing.
func IsOurs(value, authservID string) bool {
	id := strings.TrimSuffix(strings.TrimSpace(authservID), ".")
	if id == "" {
		return false
	}
	first, ok := firstToken(value)
	return ok && strings.EqualFold(strings.TrimSuffix(first, "."), id)
}

// firstToken returns the authserv-id of an Authentication-Results value:
// RFC 8601 §2.2 "authserv-id = value" with [CFWS] before it.
func firstToken(v string) (string, bool) {
	i := skipCFWS(v, 0)
	if i >= len(v) {
		return "", false
	}
	if v[i] == '"' { // quoted-string (RFC 5322 §3.2.4)
		var b strings.Builder
		for i++; i < len(v); i++ {
			switch c := v[i]; c {
			case '\\':
				if i+1 < len(v) {
					i++
					b.WriteByte(v[i])
				}
			case '"':
				return b.String(), b.Len() > 0
			default:
				b.WriteByte(c)
			}
		}
		return "", false
	}
	j := i
	for j < len(v) && !strings.ContainsRune(" \t\r\n;()", rune(v[j])) {
		j++
	}
	return v[i:j], j > i
}

// skipCFWS skips white space, line breaks and comments (nested, with
// quoted pairs) from i on.
func skipCFWS(v string, i int) int {
	depth := 0
	for ; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0, c == ' ', c == '\t', c == '\r', c == '\n':
		default:
			return i
		}
	}
	return i
}
