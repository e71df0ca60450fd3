package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/danemilter/danemilter/reply"
)

// Inbound policy: what danemilter does with a message whose direction is
// inbound (milter.Direction), keyed by the sender address of its
// RFC5322.From field, the address the signature is bound to (RFC 8162 §1:
// SMIMEA, RFC 7929: OPENPGPKEY; RFC 7281 §3: the smime result is about the
// signer of the message).
//
//	none     do nothing (forged Authentication-Results fields that carry
//	         our authserv-id are still removed: RFC 8601 §5).
//	report   verify the signatures and add Authentication-Results (the
//	         default).
//	require  like report, and a message from that sender without a valid
//	         signature bound to the sender's DNSSEC-secure record is
//	         refused with 550 5.7.1, or held (require_action = hold). A
//	         lookup that could not be completed (451 4.4.3) or failed
//	         validation (451 4.7.5) defers the message instead, so a DNS
//	         outage or an attack on DNS never loses mail.
//
// Entries are looked up like the outbound Table (which InboundTable wraps):
// address, domain, then the nearest ".parent" domain, then the default; an
// address entry matches without regard to case or a "+tag", and the
// strictest candidate applies. An entry may add "dry-run": the decision is
// logged and announced in the trace header, never carried out.

// InboundLevel is a sender's inbound policy level.
type InboundLevel int

// The inbound levels, weakest first.
const (
	InboundNone InboundLevel = iota
	InboundReport
	InboundRequire
)

var inboundLevelNames = [...]string{"none", "report", "require"}

func (l InboundLevel) String() string {
	if l < 0 || int(l) >= len(inboundLevelNames) {
		return fmt.Sprintf("inbound-level(%d)", int(l))
	}
	return inboundLevelNames[l]
}

// ParseInboundLevel parses none, report or require. The error wraps
// ErrBadLevel.
func ParseInboundLevel(s string) (InboundLevel, error) {
	for i, n := range inboundLevelNames {
		if strings.EqualFold(s, n) {
			return InboundLevel(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q (want none, report or require)", ErrBadLevel, s)
}

// InboundEntry is one inbound table entry: a level and whether it is in
// dry-run mode.
type InboundEntry struct {
	Level  InboundLevel
	DryRun bool
}

func (e InboundEntry) String() string {
	if e.DryRun {
		return e.Level.String() + " dry-run"
	}
	return e.Level.String()
}

// ParseInboundEntry parses an inbound level optionally followed by
// "dry-run": "require", "require dry-run". The error wraps ErrBadLevel.
func ParseInboundEntry(s string) (InboundEntry, error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		return InboundEntry{}, fmt.Errorf("%w %q (want none, report or require, optionally followed by dry-run)", ErrBadLevel, s)
	}
	l, err := ParseInboundLevel(f[0])
	if err != nil {
		return InboundEntry{}, err
	}
	e := InboundEntry{Level: l}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "dry-run") {
			return InboundEntry{}, fmt.Errorf("%w %q (only \"dry-run\" may follow the level)", ErrBadLevel, s)
		}
		e.DryRun = true
	}
	return e, nil
}

// InboundTable maps senders (RFC5322.From addresses) to inbound levels. It
// is built with SetEntry and then only read; reading is safe from many
// goroutines.
type InboundTable struct {
	// t holds the inbound levels as Levels of the same order (none <
	// report < require), so that key normalization, matching and
	// "strictest wins" are the outbound table's own.
	t *Table
}

// NewInboundTable returns a table with only a default.
func NewInboundTable(def InboundLevel) *InboundTable {
	return &InboundTable{t: NewTable(Level(def))}
}

// SetEntry adds an entry for a domain ("example.com"), a parent domain
// covering its subdomains (".example.com") or an address. It returns an
// error for a key that is none of these (see NormalizeKey).
func (t *InboundTable) SetEntry(key string, e InboundEntry) error {
	return t.t.SetEntry(key, Entry{Level: Level(e.Level), DryRun: e.DryRun})
}

// Default returns the default level.
func (t *InboundTable) Default() InboundLevel { return InboundLevel(t.t.Default()) }

// Len returns the number of entries.
func (t *InboundTable) Len() int { return t.t.Len() }

// InboundMatch is the result of Lookup: the level and the entry that gave
// it ("" for the default).
type InboundMatch struct {
	Level  InboundLevel
	DryRun bool
	Entry  string
}

// Lookup returns the level for a sender address. An empty or unparsable
// address (a message without a usable From) gets the default.
func (t *InboundTable) Lookup(from string) InboundMatch {
	m := t.t.Lookup(from)
	return InboundMatch{Level: InboundLevel(m.Level), DryRun: m.DryRun, Entry: m.Entry}
}

// Strictest returns the strictest match among the sender addresses a
// message shows (verify.FromAddresses) and the address that gave it: the
// highest level, and at equal levels an entry that is carried out before
// one in dry run; the first address on a tie. Without addresses it is the
// default and "".
func (t *InboundTable) Strictest(addrs []string) (InboundMatch, string) {
	m, from := t.Lookup(""), ""
	for _, a := range addrs {
		if mt := t.Lookup(a); from == "" || mt.Level > m.Level || (mt.Level == m.Level && m.DryRun && !mt.DryRun) {
			m, from = mt, a
		}
	}
	return m, from
}

// Entries returns the entries sorted by key, for display.
func (t *InboundTable) Entries() []string {
	var out []string
	for k, e := range t.t.entries {
		out = append(out, k+" "+InboundEntry{InboundLevel(e.Level), e.DryRun}.String())
	}
	sort.Strings(out)
	return out
}

// InboundOutcome is what verification established about a message and its
// From address, as far as inbound policy cares.
type InboundOutcome int

// The inbound outcomes.
const (
	// InboundPass: a valid signature bound to a DNSSEC-secure SMIMEA or
	// OPENPGPKEY record of the From address.
	InboundPass InboundOutcome = iota
	// InboundNoPass: no such signature, for good: unsigned, a signature
	// that fails, one not bound (no secure record, a record that does not
	// match), a weak algorithm, no usable From.
	InboundNoPass
	// InboundIndeterminate: a valid signature whose binding could not be
	// checked because the sender's key lookup could not be completed
	// (SERVFAIL, timeout). Retrying may help.
	InboundIndeterminate
	// InboundBogus: the sender's key lookup failed DNSSEC validation.
	InboundBogus
	// InboundTooBig: not verified, the message is larger than
	// max_verify_size.
	InboundTooBig
	// InboundError: verification failed inside the daemon.
	InboundError
)

var inboundOutcomeNames = [...]string{"pass", "no-pass", "indeterminate", "bogus", "too-big", "error"}

func (o InboundOutcome) String() string {
	if o < 0 || int(o) >= len(inboundOutcomeNames) {
		return fmt.Sprintf("inbound-outcome(%d)", int(o))
	}
	return inboundOutcomeNames[o]
}

// InboundDecision is the verdict on one inbound message.
type InboundDecision struct {
	// Action is Plain (deliver), Reject or TempFail; it matches Reply's
	// class.
	Action Action
	// Hold: deliver into the MTA's hold queue (Postfix) or quarantine
	// (Sendmail) instead of refusing; Action is then Plain and Reply the
	// refusal that holding replaces (for the log).
	Hold bool
	// Reply is the SMTP reply of a refusal (zero when delivered).
	Reply reply.Reply
	// Reason is a short, generic explanation for the log.
	Reason string
}

// Effect names what the decision does in place of delivery: "hold",
// "reject" or "tempfail"; "" when the message is delivered. In a dry run
// it is what would have happened.
func (d InboundDecision) Effect() string {
	switch {
	case d.Hold:
		return "hold"
	case d.Action != Plain:
		return d.Action.String()
	}
	return ""
}

// DecideInbound applies the inbound policy to one message: the sender's
// level (none and report never refuse), the outcome of verification, and
// whether a permanent refusal becomes a hold (require_action = hold).
// Temporary refusals are never held: the sender retries, and the retry can
// pass. Dry runs are the caller's: it carries out Plain instead and says
// what would have happened.
func DecideInbound(level InboundLevel, o InboundOutcome, hold bool) InboundDecision {
	if level != InboundRequire {
		return InboundDecision{Action: Plain, Reason: "policy " + level.String()}
	}
	var r reply.Reply
	switch o {
	case InboundPass:
		return InboundDecision{Action: Plain, Reason: "signed by the sender's DNS-published key"}
	case InboundIndeterminate:
		r = reply.SenderKeyLookupFailed()
	case InboundBogus:
		r = reply.SenderKeyBogus()
	case InboundTooBig:
		r = reply.TooBigToVerify()
	case InboundError:
		r = reply.TempFailure()
	default:
		r = reply.NotSignedBySender()
	}
	if r.Temporary() {
		return InboundDecision{Action: TempFail, Reply: r, Reason: r.Text}
	}
	if hold {
		return InboundDecision{Action: Plain, Hold: true, Reply: r, Reason: r.Text + "; held"}
	}
	return InboundDecision{Action: Reject, Reply: r, Reason: r.Text}
}
