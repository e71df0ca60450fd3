package verify

import (
	"slices"
	"strings"

	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/policy"
)

// What inbound policy needs from verification, shared by the milter and
// `danemilter verify` so that the tool says what the daemon does: the From
// addresses a message shows (whose strictest inbound entry applies,
// policy.InboundTable.Strictest), the outcome of its Report, and the Report
// of a message that was not verified.

// ReasonTooBig is the reason of the Report of a message larger than
// max_verify_size, which is not verified (policy.InboundTooBig).
const ReasonTooBig = "message larger than max_verify_size"

// Outcome maps the report to what inbound policy needs
// (policy.DecideInbound): a pass; a valid signature whose binding could
// not be checked (DNS indeterminate, or a lookup that could not be made:
// a retry can pass); one whose lookup failed DNSSEC validation (RFC 4033
// §5: bogus); or no pass for good.
func (r *Report) Outcome() policy.InboundOutcome {
	if r.Pass() {
		return policy.InboundPass
	}
	o := policy.InboundNoPass
	for _, s := range r.Signatures {
		switch {
		case s.Binding == BindingIndeterminate || s.Result == ResultTempError:
			return policy.InboundIndeterminate
		case s.Binding == BindingBogus:
			o = policy.InboundBogus
		}
	}
	return o
}

// NotVerified is the Report of a message that was not verified (too big,
// no memory, an internal error): one S/MIME signature entry with result r,
// binding not checked, and reason, so that Authentication-Results says why.
func NotVerified(r Result, reason string) *Report {
	return &Report{Signatures: []Signature{{Method: MethodSMIME, Result: r, Binding: BindingNotChecked, Reason: reason}}}
}

// FromAddresses returns every address-like word (local@domain) of the From
// field values, folded or not, in order and without repeats. It is
// deliberately not an RFC 5322 §3.6.2 parse: a message with several From
// fields, several addresses or one that does not parse still meets the
// strictest inbound entry among the addresses it shows, display names and
// comments included, so that a require entry cannot be dodged by writing
// From oddly.
func FromAddresses(values []string) []string {
	var out []string
	for _, v := range values {
		for _, w := range strings.FieldsFunc(mimeentity.UnfoldValue(v), func(r rune) bool {
			return strings.ContainsRune(" \t,;<>()\"[]:", r)
		}) {
			if i := strings.LastIndexByte(w, '@'); i > 0 && i < len(w)-1 && !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out
}

// FromValues returns the values of the From fields of message (header
// fields, an empty line, the body), folded as written, in the way an MTA
// hands them to a milter: a field is a line that does not start with white
// space and the lines that continue it (RFC 5322 §2.2), its name what comes
// before the colon. Lines without a colon are skipped.
func FromValues(message []byte) []string {
	head, _ := splitEntity(message)
	var out []string
	from := false // the current field is a From field
	for _, line := range strings.SplitAfter(string(head), "\n") {
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if from {
				out[len(out)-1] += line
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		from = ok && strings.EqualFold(strings.TrimRight(name, " \t"), "From")
		if from {
			out = append(out, value)
		}
	}
	return out
}
