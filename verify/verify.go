package verify

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	message "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/danemilter/danemilter/address"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/openpgp"
)

// Default limits of a Verifier.
const (
	DefaultMaxParts = 64
	DefaultMaxDepth = 8
)

// Verifier checks the signatures of inbound messages. Its fields are read,
// never changed, by Verify, which may be called from several goroutines at
// once.
type Verifier struct {
	// Resolver answers the SMIMEA and OPENPGPKEY lookups with their DNSSEC
	// status. Required.
	Resolver dane.Resolver
	// Selector holds the trust anchors of the PKIX usages and the
	// certificate directory for SMIMEA binding; nil: a zero Selector (the
	// system roots, no directory).
	Selector *dane.Selector
	// LowercaseLocalPart lowercases the local part before hashing it into
	// the owner name, as for outbound lookups (dane.SMIMEAName).
	LowercaseLocalPart bool
	// Now is the clock at which certificates and keys must be valid; nil:
	// time.Now.
	Now func() time.Time
	// MaxParts bounds how many MIME entities are looked at, and MaxDepth
	// how deeply multiparts nest; zero: DefaultMaxParts, DefaultMaxDepth.
	// Beyond them the Report says Truncated.
	MaxParts, MaxDepth int
	// Keys remembers what OPENPGPKEY records parsed to, so that a sender's
	// record that comes again from the DNS cache costs no self-signature
	// verification; nil: every message parses its records.
	Keys *openpgp.KeyCache
}

// Verify finds the signed entities of message (its header fields, an empty
// line and its body, as received) and checks each signature and its DANE
// binding to the From address. Every outcome, malformed input and failed
// DNS lookups included, is in the Report; Verify never panics. The error is
// non-nil only when ctx ended before verification finished (it is
// ctx.Err()); the Report then holds what was concluded, lookups that could
// not be made as ResultTempError.
func (v *Verifier) Verify(ctx context.Context, message []byte) (*Report, error) {
	w := &walker{v: v, ctx: ctx, rep: &Report{}, now: time.Now()}
	if v.Now != nil {
		w.now = v.Now()
	}
	w.maxParts, w.maxDepth = v.MaxParts, v.MaxDepth
	if w.maxParts <= 0 {
		w.maxParts = DefaultMaxParts
	}
	if w.maxDepth <= 0 {
		w.maxDepth = DefaultMaxDepth
	}
	w.sel = v.Selector
	if w.sel == nil {
		w.sel = &dane.Selector{}
	}
	head, _ := splitEntity(message)
	h, err := readHeader(head)
	if err != nil {
		w.rep.FromErr = "the header does not parse"
	} else {
		w.rep.From, w.rep.FromErr = fromAddress(h)
	}
	w.walk(message, "1", 0, true)
	return w.rep, ctx.Err()
}

// walker is the state of one Verify call.
type walker struct {
	v                  *Verifier
	ctx                context.Context
	rep                *Report
	sel                *dane.Selector
	now                time.Time
	parts              int
	maxParts, maxDepth int
}

// walk looks at one entity, at position part and nesting depth. whole
// says whether the entity covers the whole message content: it is the
// message itself, or the only part of every multipart above it (preamble
// and epilogue, which RFC 2046 §5.1.1 says to ignore, aside). Only a
// signature on such an entity can pass: one on a part with unsigned parts
// beside it vouches for that part, not for the message a reader sees.
func (w *walker) walk(entity []byte, part string, depth int, whole bool) {
	if w.ctx.Err() != nil {
		return
	}
	w.parts++
	if w.parts > w.maxParts || depth > w.maxDepth {
		w.rep.Truncated = true
		return
	}
	head, body := splitEntity(entity)
	h, err := readHeader(head)
	if err != nil {
		return // not a MIME entity we can read: nothing signed in it
	}
	mh := message.Header{Header: h}
	mt, params, err := mh.ContentType()
	if err != nil || mt == "" {
		return // RFC 2045 §5.2: text/plain
	}
	switch {
	case mt == "multipart/signed":
		switch p := strings.ToLower(params["protocol"]); p {
		case "application/pkcs7-signature", "application/x-pkcs7-signature": // RFC 8551 §3.5.3
			w.add(part, whole, MethodSMIME, func(s *Signature) bool { return w.smime(entity, s) })
			return
		case "application/pgp-signature": // RFC 3156 §5
			w.add(part, whole, MethodOpenPGP, func(s *Signature) bool { return w.openpgp(entity, s) })
			return
		}
		// Another protocol: its first part may still hold a signature.
	case mt == "application/pkcs7-mime" || mt == "application/x-pkcs7-mime": // RFC 8551 §3.2.2
		st := strings.ToLower(params["smime-type"])
		if st == "" || st == "signed-data" {
			w.add(part, whole, MethodSMIME, func(s *Signature) bool { return w.smime(entity, s) })
		}
		return
	case !strings.HasPrefix(mt, "multipart/"):
		return
	}
	parts, _, err := mimeentity.SplitMultipart(body, params["boundary"])
	if err != nil {
		return
	}
	for i, p := range parts {
		if w.rep.Truncated && w.parts >= w.maxParts {
			return
		}
		w.walk(p, part+"."+strconv.Itoa(i+1), depth+1, whole && len(parts) == 1)
	}
}

// add runs check for a signed entity and keeps its Signature when check says
// the entity is signed; a panic becomes ResultPermError. A pass on an
// entity that is not whole (see walk) becomes ResultPolicy: the signature
// stays valid and bound, but teaches nothing (no Certificate, no
// Capabilities) and satisfies no require entry.
func (w *walker) add(part string, whole bool, m Method, check func(*Signature) bool) {
	s := Signature{Method: m, Part: part, Binding: BindingNotChecked}
	keep := func() (keep bool) {
		defer func() {
			if r := recover(); r != nil {
				s.Result, s.Valid, s.Binding = ResultPermError, false, BindingNotChecked
				s.Reason = fmt.Sprintf("internal error verifying the signature (%T)", r)
				keep = true
			}
		}()
		return check(&s)
	}()
	if keep && s.Result == ResultPass && !whole {
		s.Result = ResultPolicy
		s.Reason = fmt.Sprintf("signed part %s covers only part of the message: unsigned parts beside it (%s)", part, s.Reason)
		s.Certificate, s.Capabilities = nil, nil
	}
	if keep {
		w.rep.Signatures = append(w.rep.Signatures, s)
	}
}

// lookup asks the Resolver for the records of the From address; name is
// dane.SMIMEAName or dane.OPENPGPKEYName.
func (w *walker) lookup(name func(string, bool) (string, error), qtype uint16) (dane.Result, error) {
	owner, err := name(w.rep.From, w.v.LowercaseLocalPart)
	if err != nil {
		return dane.Result{}, err
	}
	return w.v.Resolver.Lookup(w.ctx, owner, qtype), nil
}

// dnsOutcome sets s for a lookup that gave no secure records, and reports
// whether it did; what names the record type for the reason.
func (w *walker) dnsOutcome(s *Signature, res dane.Result, what string, noRecord Result) bool {
	switch res.Status {
	case dane.StatusSecure:
		return false
	case dane.StatusSecureDenial, dane.StatusInsecure:
		s.Result, s.Binding = noRecord, BindingNoRecord
		s.Reason = fmt.Sprintf("no DNSSEC-secure %s record for %s (%s)", what, w.rep.From, res.Status)
	case dane.StatusBogus: // RFC 8162 §6, RFC 7929 §7: nothing of it may be used
		s.Result, s.Binding = ResultPermError, BindingBogus
		s.Reason = fmt.Sprintf("the %s lookup for %s failed DNSSEC validation (bogus)", what, w.rep.From)
	default:
		s.Result, s.Binding = ResultTempError, BindingIndeterminate
		s.Reason = fmt.Sprintf("the %s lookup for %s could not be completed", what, w.rep.From)
		if res.Err != nil {
			s.Reason += ": " + res.Err.Error()
		}
	}
	return true
}

// splitEntity cuts an entity at the empty line that ends its header. head
// keeps the line break of its last line; an entity without an empty line is
// all header.
func splitEntity(entity []byte) (head, body []byte) {
	switch {
	case bytes.HasPrefix(entity, []byte("\r\n")):
		return nil, entity[2:]
	case bytes.HasPrefix(entity, []byte("\n")):
		return nil, entity[1:]
	}
	i := bytes.Index(entity, []byte("\n\r\n"))
	j := bytes.Index(entity, []byte("\n\n"))
	switch {
	case i >= 0 && (j < 0 || i < j):
		return entity[:i+1], entity[i+3:]
	case j >= 0:
		return entity[:j+1], entity[j+2:]
	}
	return entity, nil
}

// readHeader parses header fields with go-message's reader.
func readHeader(head []byte) (textproto.Header, error) {
	r := bufio.NewReader(bytes.NewReader(append(append([]byte(nil), head...), "\r\n"...)))
	return textproto.ReadHeader(r)
}

// fromAddress returns the one From address of h (RFC 5322 §3.6.2), local
// part as written and domain in lower-case A-label form, or why there is
// none to bind a signer to.
func fromAddress(h textproto.Header) (string, string) {
	n := len(h.Values("From"))
	switch {
	case n == 0:
		return "", "no From field"
	case n > 1:
		return "", fmt.Sprintf("%d From fields", n) // RFC 5322 §3.6: exactly one
	}
	list, err := (&mail.Header{Header: message.Header{Header: h}}).AddressList("From")
	if err != nil {
		return "", "the From field does not parse"
	}
	if len(list) != 1 {
		return "", fmt.Sprintf("the From field has %d addresses", len(list))
	}
	local, domain, err := address.Split(list[0].Address)
	if err != nil {
		return "", "the From address is not usable"
	}
	return local + "@" + domain, ""
}
