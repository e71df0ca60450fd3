package milter

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/policy"
)

// rcpt is one recipient and its lookup, started at RCPT TO.
type rcpt struct {
	addr   string
	local  bool
	exempt string // the exemption pattern that applies, or ""
	match  policy.Match

	done chan struct{}
	err  error // address could not be turned into an owner name

	// S/MIME: the SMIMEA lookup.
	name     string
	result   dane.Result
	usable   []dane.Key
	rejected []dane.Rejected

	// OpenPGP: the OPENPGPKEY lookup, when enabled.
	pgpOn       bool
	pgpName     string
	pgpResult   dane.Result
	pgpUsable   []openpgp.Key
	pgpRejected []openpgp.Rejected
}

func (h *handler) lookup(ctx context.Context, r *rcpt) {
	defer close(r.done)
	defer func() {
		if p := recover(); p != nil {
			h.opts.Logger.Error("panic in lookup", "rcpt", r.addr, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			r.result = dane.Result{Status: dane.StatusIndeterminate, Err: fmt.Errorf("internal error: %v", p)}
			r.usable = nil
		}
	}()
	r.name, r.err = dane.SMIMEAName(r.addr, h.opts.LowercaseLocalPart)
	if r.err != nil {
		return
	}
	// Both record types are looked up at once.
	var wg sync.WaitGroup
	if h.opts.OpenPGP {
		r.pgpOn = true
		r.pgpName, _ = dane.OPENPGPKEYName(r.addr, h.opts.LowercaseLocalPart)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					h.opts.Logger.Error("panic in OPENPGPKEY lookup", "rcpt", r.addr, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
					r.pgpResult = dane.Result{Status: dane.StatusIndeterminate, Err: fmt.Errorf("internal error: %v", p)}
					r.pgpUsable = nil
				}
			}()
			r.pgpResult = h.opts.Resolver.Lookup(ctx, r.pgpName, dns.TypeOPENPGPKEY)
			if r.pgpResult.Status == dane.StatusSecure {
				r.pgpUsable, r.pgpRejected = openpgp.SelectKeys(r.addr, r.pgpResult.Records, h.opts.Now())
			}
		}()
	}
	defer wg.Wait()
	r.result = h.opts.Resolver.Lookup(ctx, r.name, dns.TypeSMIMEA)
	if r.result.Status == dane.StatusSecure {
		r.usable, r.rejected = h.opts.Selector.Select(r.addr, r.result.Records, h.opts.Now())
	}
}

// statusOutcome maps one lookup onto the policy's outcomes.
func statusOutcome(res dane.Result, usable int) policy.Outcome {
	switch res.Status {
	case dane.StatusSecure:
		if usable > 0 {
			return policy.Usable
		}
		return policy.NoKey
	case dane.StatusSecureDenial:
		return policy.NoKey
	case dane.StatusInsecure:
		return policy.Insecure
	case dane.StatusBogus:
		return policy.Bogus
	}
	return policy.Indeterminate
}

// severity orders the outcomes without a key: a forged answer for either
// record type must not be hidden by a clean "no record" for the other.
var severity = map[policy.Outcome]int{policy.NoKey: 0, policy.Insecure: 1, policy.Indeterminate: 2, policy.Bogus: 3}

// outcome maps a finished lookup (both record types) onto the policy's
// outcomes; see Outcome.
func (r *rcpt) outcome() policy.Outcome {
	if r.err != nil {
		return policy.NoKey
	}
	if !r.pgpOn {
		return Outcome(r.result, len(r.usable), nil, 0)
	}
	return Outcome(r.result, len(r.usable), &r.pgpResult, len(r.pgpUsable))
}

// Outcome is what the policy sees of a recipient's lookups: Usable when
// either the SMIMEA or the OPENPGPKEY lookup (pgp, nil when not made) yields
// a usable key; otherwise the gravest of the two outcomes (bogus before
// indeterminate before insecure before no key), so that a forged answer for
// one record type is never hidden by a clean denial for the other.
func Outcome(smimea dane.Result, smimeaUsable int, pgp *dane.Result, pgpUsable int) policy.Outcome {
	o := statusOutcome(smimea, smimeaUsable)
	if pgp == nil {
		return o
	}
	p := statusOutcome(*pgp, pgpUsable)
	if o == policy.Usable || p == policy.Usable {
		return policy.Usable
	}
	if severity[p] > severity[o] {
		return p
	}
	return o
}

// formats are the formats r has usable keys for, the one Options.Prefer
// names first.
func (h *handler) formats(r *rcpt) []policy.Format {
	var out []policy.Format
	p := h.opts.Prefer(r.addr)
	for _, f := range []Format{p, 1 - p} {
		if r.has(f) {
			out = append(out, f)
		}
	}
	return out
}

// has reports which formats a recipient has usable keys for.
func (r *rcpt) has(f Format) bool {
	if f == FormatOpenPGP {
		return r.pgpOn && len(r.pgpUsable) > 0
	}
	return len(r.usable) > 0
}

// verdict is one recipient's decision at end of message.
type verdict struct {
	r       *rcpt
	outcome policy.Outcome
	d       policy.Decision // what happens to the recipient
	label   string          // for the log: the action, or local, exempt, already-encrypted
	would   string          // per-entry dry run: the action that would have been taken
}

// evaluate decides for one recipient whose lookups have finished or been
// given up on.
func (h *handler) evaluate(r *rcpt) verdict {
	v := verdict{r: r, outcome: policy.Indeterminate}
	select {
	case <-r.done:
		v.outcome = r.outcome()
	default:
	}
	switch {
	case r.local:
		v.d, v.label = policy.Decision{Action: policy.Plain, Reason: "local recipient"}, "local"
	case r.exempt != "":
		v.d, v.label = policy.Decision{Action: policy.Plain, Reason: "exempt"}, "exempt"
	case r.match.Level == policy.LevelNone:
		v.d, v.label = policy.Decide(policy.LevelNone, v.outcome), "plain"
	default:
		v.d = policy.Decide(r.match.Level, v.outcome)
		v.label = v.d.Action.String()
		if r.match.DryRun && !h.opts.DryRun {
			// Per-entry dry run: say what would happen, then treat the
			// recipient as plaintext and never refuse it.
			v.would = v.d.Action.String()
			v.d, v.label = policy.Decision{Action: policy.Plain, Reason: "dry run"}, "dry-run"
		}
	}
	return v
}
