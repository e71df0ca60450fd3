package policy

import (
	"fmt"
	"strings"

	"github.com/danemilter/danemilter/address"
)

// Exemptions name senders and recipients whose mail danemilter leaves alone:
// it is neither encrypted nor refused for them. An exemption never weakens
// level encrypt: a recipient whose level is encrypt is protected even when
// exempt (README "Exemptions").
//
// Patterns:
//
//	<>              the empty envelope sender (bounces, DSNs, MDNs; RFC 5321 §4.5.5)
//	postmaster@     this local part at any domain
//	@example.com    any address at this domain
//	a@example.com   this address
type Exemptions struct {
	senders, recipients []string
}

// DefaultExemptSenders and DefaultExemptRecipients are the defaults of the
// configuration: bounces, and the role addresses RFC 5321 §4.5.1 and RFC 2142
// require to be readable by whoever runs the receiving system.
var (
	DefaultExemptSenders    = []string{"<>"}
	DefaultExemptRecipients = []string{"postmaster@", "abuse@"}
)

// NewExemptions checks and normalizes the patterns.
func NewExemptions(senders, recipients []string) (*Exemptions, error) {
	e := &Exemptions{}
	for _, p := range senders {
		n, err := normalizePattern(p, true)
		if err != nil {
			return nil, fmt.Errorf("sender %w", err)
		}
		e.senders = append(e.senders, n)
	}
	for _, p := range recipients {
		n, err := normalizePattern(p, false)
		if err != nil {
			return nil, fmt.Errorf("recipient %w", err)
		}
		e.recipients = append(e.recipients, n)
	}
	return e, nil
}

func normalizePattern(p string, sender bool) (string, error) {
	p = strings.TrimSpace(p)
	if p == "<>" {
		if !sender {
			return "", fmt.Errorf("pattern %q: only senders can be empty", p)
		}
		return p, nil
	}
	local, domain, ok := address.Cut(p)
	if !ok || (local == "" && domain == "") || strings.ContainsAny(p, " <>") {
		return "", fmt.Errorf("pattern %q: want <>, local@, @domain or local@domain", p)
	}
	return strings.ToLower(local) + "@" + domain, nil
}

func matchPattern(patterns []string, addr string) string {
	if addr == "" || addr == "<>" {
		for _, p := range patterns {
			if p == "<>" {
				return p
			}
		}
		return ""
	}
	local, domain, ok := address.Cut(strings.ToLower(addr))
	if !ok {
		return ""
	}
	for _, p := range patterns {
		pl, pd, _ := address.Cut(p)
		if (pl == "" || pl == local) && (pd == "" || pd == domain) {
			return p
		}
	}
	return ""
}

// Sender returns the pattern that exempts the envelope sender from ("" or
// "<>" for the null sender), or "".
func (e *Exemptions) Sender(from string) string {
	if e == nil {
		return ""
	}
	return matchPattern(e.senders, from)
}

// Recipient returns the pattern that exempts rcpt, or "". Local parts are
// compared without regard to case here, unlike policy entries: role
// addresses are case-insensitive (RFC 5321 §4.5.1 for postmaster).
func (e *Exemptions) Recipient(rcpt string) string {
	if e == nil {
		return ""
	}
	return matchPattern(e.recipients, rcpt)
}

// Patterns returns the sender and recipient patterns, for display.
func (e *Exemptions) Patterns() (senders, recipients []string) {
	if e == nil {
		return nil, nil
	}
	return append([]string(nil), e.senders...), append([]string(nil), e.recipients...)
}
