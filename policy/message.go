package policy

import (
	"slices"

	"github.com/danemilter/danemilter/reply"
)

// Format is an encryption format.
type Format int

// The formats.
const (
	FormatSMIME   Format = iota // S/MIME, RFC 8551
	FormatOpenPGP               // PGP/MIME, RFC 3156
)

func (f Format) String() string {
	if f == FormatOpenPGP {
		return "pgp-mime"
	}
	return "smime"
}

// Copy is one copy of a message: the recipients To that get it encrypted
// in Format, or in clear (Plain).
type Copy struct {
	Plain  bool
	Format Format
	To     []string
}

// Message is what Decide's per-recipient decisions leave out of a
// message's plan: the facts about the message as a whole.
type Message struct {
	Recipients []Recipient
	// CanSplit: copies can be re-injected (a Reinjector is configured).
	CanSplit bool
	// TooBig: the message was larger than the gateway keeps whole
	// (max_message_size), so it cannot be encrypted.
	TooBig bool
	// TooBigEncrypted reports whether the encrypted copy c could be larger
	// than the MTA stores (message_size_limit); nil: every copy fits.
	TooBigEncrypted func(c Copy) bool
	// Sealed: the body is already encrypted to every recipient's key
	// (those to encrypt to have been decided Plain for that reason).
	Sealed bool
}

// PlanMessage is the plan for a message: Combine's, then the rules of the
// message as a whole, in this order:
//   - a message to encrypt that was too big to keep whole is refused (552);
//   - the encrypted recipients are grouped into one copy per format (one
//     format for all when every one of them has a key of it, the first
//     recipient's preference first; otherwise each its own preference,
//     largest copy first), then the plaintext copy;
//   - copies in two formats without splitting: deferred when a recipient
//     requires encryption, sent in clear otherwise;
//   - an encrypted copy too big for the MTA is refused (552), before any
//     copy leaves.
//
// Plan.Copies holds the copies of an Encrypt or Split plan, and for the log
// those that two formats without splitting could not send.
func PlanMessage(m Message) Plan {
	p := Combine(m.Recipients, m.CanSplit)
	if m.Sealed && p.Action == Plain {
		p.Reason = "already encrypted to every recipient's key"
	}
	if p.Action != Encrypt && p.Action != Split {
		return p
	}
	if m.TooBig {
		return Refusal(reply.TooBig())
	}
	copies := copiesOf(m.Recipients, p.EncryptTo)
	if len(copies) > 1 && !m.CanSplit {
		// Two formats and no way to send two copies.
		for _, r := range m.Recipients {
			if r.Decision.Required {
				p := Refusal(reply.FormatsDiffer())
				p.Copies = copies
				return p
			}
		}
		return Plan{Action: Plain, Reason: "recipients need different encryption formats and splitting is off; sent in clear", Copies: copies}
	}
	if m.TooBigEncrypted != nil {
		for _, c := range copies {
			if !c.Plain && m.TooBigEncrypted(c) {
				return Refusal(reply.TooBigEncrypted())
			}
		}
	}
	p.Copies = copies
	return p
}

// copiesOf groups the recipients into copies: the encrypted ones (encTo)
// by format, then the others in clear. One format for everyone beats the
// per-recipient preference, so the message is not split without need.
func copiesOf(rcpts []Recipient, encTo []string) []Copy {
	want := make(map[string]bool, len(encTo))
	for _, a := range encTo {
		want[a] = true
	}
	var enc []*Recipient
	plain := Copy{Plain: true}
	for i := range rcpts {
		if want[rcpts[i].Address] {
			enc = append(enc, &rcpts[i])
		} else {
			plain.To = append(plain.To, rcpts[i].Address)
		}
	}
	var out []Copy
	if len(enc) > 0 {
		first := FormatSMIME
		if len(enc[0].Formats) > 0 {
			first = enc[0].Formats[0]
		}
		for _, f := range []Format{first, 1 - first} {
			all := true
			for _, r := range enc {
				all = all && slices.Contains(r.Formats, f)
			}
			if all {
				c := Copy{Format: f}
				for _, r := range enc {
					c.To = append(c.To, r.Address)
				}
				out = append(out, c)
				break
			}
		}
		if out == nil {
			byFormat := map[Format]*Copy{}
			for _, r := range enc {
				f := FormatSMIME
				if len(r.Formats) > 0 {
					f = r.Formats[0]
				}
				if byFormat[f] == nil {
					byFormat[f] = &Copy{Format: f}
				}
				byFormat[f].To = append(byFormat[f].To, r.Address)
			}
			for _, f := range []Format{FormatSMIME, FormatOpenPGP} {
				if c := byFormat[f]; c != nil {
					out = append(out, *c)
				}
			}
			slices.SortStableFunc(out, func(a, b Copy) int { return len(b.To) - len(a.To) })
		}
	}
	if len(plain.To) > 0 {
		out = append(out, plain)
	}
	return out
}
