// Package policy decides, per recipient and per message, what danemilter does
// with the outcome of a DNS key lookup.
//
// The levels mirror Postfix's TLS security levels (postconf(5)
// smtp_tls_security_level), so operators know them at once:
//
//	none     never encrypt.
//	may      encrypt when a DNSSEC-secure, usable key exists; otherwise send
//	         in clear, whatever the reason (opportunistic).
//	dane     like may, but a lookup that failed validation (bogus) or could not
//	         be completed (SERVFAIL, timeout) defers the message: an attacker
//	         who breaks DNS must not cause a downgrade to plaintext. This is
//	         the default.
//	encrypt  mandatory: without a secure, usable key the recipient is refused.
//
// RFC 8162 §6 and RFC 7929 §7 require that only DNSSEC-secure records are
// used; "insecure" (an unsigned zone) is therefore never a key, and
// "bogus" is never "no record".
//
// The functions here are pure: no DNS, no crypto, no milter. Decide maps one
// (level, outcome) pair to an Action; Combine folds the decisions of all
// recipients of a message into one plan, and PlanMessage (message.go) adds
// the rules of the message as a whole (too big, formats that differ without
// splitting, too big once encrypted) and the copies to make. Replies are
// values of package reply.
//
// Outbound decisions live in policy.go (levels, Decide, Combine),
// message.go (PlanMessage, formats and copies), table.go
// and mapfile.go (where a recipient's level comes from) and exempt.go. The
// inbound direction (what to do with mail that arrives signed or encrypted
// for local recipients: verification, decryption, key harvesting) will get
// its own file, inbound.go, with its own table, rather than new cases here.
package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/danemilter/danemilter/reply"
)

// Level is a recipient's encryption policy level.
type Level int

// The levels, weakest first.
const (
	LevelNone Level = iota
	LevelMay
	LevelDane
	LevelEncrypt
)

// ErrBadLevel is returned by ParseLevel for an unknown name.
var ErrBadLevel = errors.New("policy: unknown level")

var levelNames = [...]string{"none", "may", "dane", "encrypt"}

func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("level(%d)", int(l))
	}
	return levelNames[l]
}

// ParseLevel parses none, may, dane or encrypt.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if strings.EqualFold(s, n) {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q (want none, may, dane or encrypt)", ErrBadLevel, s)
}

// Outcome is what a key lookup established about a recipient.
type Outcome int

// The outcomes of a lookup, as far as policy cares.
const (
	// Indeterminate: SERVFAIL without a DNSSEC error, timeout, resolver
	// unreachable. Retrying may help.
	Indeterminate Outcome = iota
	// Usable: a DNSSEC-secure record yielded at least one usable key.
	Usable
	// NoKey: DNSSEC proves there is no record (secure denial), or the secure
	// records hold no usable key (expired, wrong address, unsupported).
	NoKey
	// Insecure: the zone is not signed; nothing can be trusted.
	Insecure
	// Bogus: DNSSEC validation failed — an attack or a broken zone.
	Bogus
)

var outcomeNames = [...]string{"indeterminate", "usable", "no-key", "insecure", "bogus"}

func (o Outcome) String() string {
	if o < 0 || int(o) >= len(outcomeNames) {
		return fmt.Sprintf("outcome(%d)", int(o))
	}
	return outcomeNames[o]
}

// Action is what happens to one recipient, or to a whole message.
type Action int

// The actions.
const (
	Plain    Action = iota // deliver unchanged
	Encrypt                // deliver encrypted
	Reject                 // refuse permanently (5.7.x)
	TempFail               // refuse temporarily (4.x.x), the MTA retries
	Split                  // (plans only) encrypted copy to some, plaintext copy to the others
)

var actionNames = [...]string{"plain", "encrypt", "reject", "tempfail", "split"}

func (a Action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return fmt.Sprintf("action(%d)", int(a))
	}
	return actionNames[a]
}

// Decision is the verdict for one recipient.
type Decision struct {
	Action Action
	// Required is true when plaintext is forbidden for this recipient (level
	// encrypt): a message that cannot be encrypted for it must not reach it.
	Required bool
	// Reply is the SMTP reply for Reject and TempFail (zero otherwise).
	Reply reply.Reply
	// Reason is a short, generic explanation for the log; for a refusal it
	// is Reply's text.
	Reason string
}

// refuse is the decision that refuses with r: TempFail for a temporary
// reply, Reject for a permanent one, so the action always matches the
// reply's class.
func refuse(r reply.Reply, required bool) Decision {
	if r.Temporary() {
		return Decision{Action: TempFail, Required: required, Reply: r, Reason: r.Text}
	}
	return Decision{Action: Reject, Required: required, Reply: r, Reason: r.Text}
}

// Decide applies the policy table (README "Policy") to one recipient.
func Decide(level Level, outcome Outcome) Decision {
	if level == LevelNone {
		return Decision{Action: Plain, Reason: "policy none"}
	}
	if outcome == Usable {
		return Decision{Action: Encrypt, Required: level == LevelEncrypt, Reason: "secure key"}
	}
	switch level {
	case LevelMay:
		return Decision{Action: Plain, Reason: "no secure key (" + outcome.String() + "), policy may"}
	case LevelDane:
		switch outcome {
		case Bogus:
			return refuse(reply.KeyBogus(), false)
		case Indeterminate:
			return refuse(reply.KeyLookupFailed(), false)
		}
		return Decision{Action: Plain, Reason: "no secure key (" + outcome.String() + "), policy dane"}
	}
	// LevelEncrypt (and any unknown level: fail closed).
	switch outcome {
	case Bogus:
		return refuse(reply.KeyBogus(), true)
	case Indeterminate:
		return refuse(reply.KeyLookupFailed(), true)
	case Insecure:
		return refuse(reply.UnsignedDomain(), true)
	}
	return refuse(reply.NoUsableKey(), true)
}

// Recipient is one recipient's decision as input to Combine.
type Recipient struct {
	Address  string
	Local    bool // local recipients never get an encrypted copy
	Decision Decision
	// Formats are the formats the recipient has usable keys for, the
	// preferred one first (PlanMessage's grouping into copies).
	Formats []Format
}

// Plan is the verdict for a whole message.
type Plan struct {
	// Action is Plain, Encrypt, Split, Reject or TempFail.
	Action Action
	// Reply is the SMTP reply for Reject and TempFail (zero otherwise).
	Reply reply.Reply
	// Reason is a short, generic explanation for the log; for a refusal it
	// is Reply's text.
	Reason string
	// EncryptTo and PlainTo list the recipients (Address) that get the
	// encrypted and the plaintext copy, for Encrypt, Plain and Split.
	EncryptTo []string
	PlainTo   []string
	// Copies are the copies of an Encrypt or Split plan (PlanMessage):
	// encrypted ones by format, largest first, then the plaintext one;
	// also, for the log, those of a plan that two formats without
	// splitting turned into Plain or TempFail.
	Copies []Copy
}

// Combine folds per-recipient decisions into one plan for the message.
// canSplit says whether the message may be split: the encrypted copy goes to
// the recipients with keys, and a plaintext copy is re-injected for the
// others (README "Mixed recipients").
//
// Rules that no configuration can break (README "Policy"):
//   - a message is never passed in clear to a recipient whose decision
//     requires encryption;
//   - a message is never encrypted for a recipient who cannot read it;
//   - a temporary failure for any recipient defers the whole message, so
//     nothing is lost.
//
// A recipient refused permanently at this stage defers the whole message when
// others could be served (the MTA retries, and the retry refuses that
// recipient at RCPT TO from the cache, while the others go through); only
// when every recipient is refused is the message refused.
//
// Without splitting, a message whose recipients differ is sent in clear when
// every recipient's policy allows it, and deferred otherwise.
func Combine(rcpts []Recipient, canSplit bool) Plan {
	if len(rcpts) == 0 {
		return Plan{Action: Plain, Reason: "no recipients"}
	}
	var encTo, plainTo []string
	var required, reject int
	var firstReject *Decision
	for i := range rcpts {
		r, d := &rcpts[i], &rcpts[i].Decision
		switch {
		case d.Action == TempFail:
			return Refusal(d.Reply)
		case d.Action == Reject:
			reject++
			if firstReject == nil {
				firstReject = d
			}
		case d.Action == Encrypt && !r.Local:
			encTo = append(encTo, r.Address)
			if d.Required {
				required++
			}
		case d.Required:
			// Required but neither encrypt nor refuse: fail closed.
			return Refusal(reply.EncryptionNotPossible())
		default:
			plainTo = append(plainTo, r.Address)
		}
	}
	if reject > 0 {
		if reject == len(rcpts) {
			return Refusal(firstReject.Reply)
		}
		return Refusal(reply.SomeRefused())
	}
	switch {
	case len(plainTo) == 0:
		return Plan{Action: Encrypt, EncryptTo: encTo, Reason: fmt.Sprintf("all %d recipients have secure keys", len(encTo))}
	case len(encTo) == 0:
		return Plan{Action: Plain, PlainTo: plainTo, Reason: "no recipient has a secure key"}
	case canSplit:
		return Plan{Action: Split, EncryptTo: encTo, PlainTo: plainTo,
			Reason: fmt.Sprintf("%d recipients encrypted, %d in clear (split)", len(encTo), len(plainTo))}
	case required > 0:
		return Refusal(reply.SendSeparately())
	}
	return Plan{Action: Plain, PlainTo: append(plainTo, encTo...),
		Reason: fmt.Sprintf("%d of %d recipients lack a secure key and splitting is off; sent in clear", len(plainTo), len(rcpts))}
}

// refusePlan is the plan that refuses the message with r (see refuse).
func Refusal(r reply.Reply) Plan {
	d := refuse(r, false)
	return Plan{Action: d.Action, Reply: r, Reason: r.Text}
}
