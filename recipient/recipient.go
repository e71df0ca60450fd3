// Package recipient evaluates one outbound recipient: the address, its
// policy level (policy.Source), whether it is local or exempt, the SMIMEA
// (RFC 8162) and OPENPGPKEY (RFC 7929) lookups made at once, the key
// selection of each, the DNSSEC outcome and the policy decision. The result
// is one value, a Recipient, that the milter acts on and logs and that
// `danemilter lookup` prints: there is one copy of the rule.
//
// Only DNSSEC-secure keys are usable (RFC 8162 §6, RFC 7929 §7): keys in an
// insecure answer are selected only to show what is wrong with them.
//
// The milter evaluates in two steps, so that the lookups run while the SMTP
// dialogue goes on: [Config.Prepare] at RCPT TO (no DNS), then
// [Config.Lookup] in a goroutine, or [Recipient.Unfinished] when the
// message's deadline passes first. [Config.Evaluate] does both at once.
package recipient

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/address"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/policy"
)

// Config is what evaluating a recipient needs. Levels is required; a nil
// Exemptions exempts nothing, a nil IsLocal makes no domain local, a nil
// Selector selects from the records alone, a nil Now is time.Now. A Config
// must not be copied after first use: it remembers parsed OPENPGPKEY
// records.
type Config struct {
	Logger             *slog.Logger
	Resolver           dane.Resolver
	Selector           *dane.Selector
	Levels             policy.Source
	Exemptions         *policy.Exemptions
	IsLocal            func(domain string) bool
	LowercaseLocalPart bool
	// OpenPGP turns on the OPENPGPKEY lookup.
	OpenPGP bool
	// DryRun is the global dry run: the decisions stand (the milter
	// passes the message anyway), and a per-entry dry run adds nothing.
	DryRun bool
	Now    func() time.Time
	// Store holds certificates harvested from verified signed mail
	// (package harvest): candidates for the recipient's SMIMEA records
	// under the Selector's checks (dane.Selector.SelectWith: a stored
	// certificate that no DNSSEC-secure record matches is never used),
	// and the capabilities the cipher "auto" reads. It is asked only when
	// the SMIMEA answer has records. A failed or slow Get is "not known"
	// (a debug log line), never a failed recipient. nil: no store.
	Store harvest.Store
	// StoreTimeout bounds each Get; zero: DefaultStoreTimeout.
	StoreTimeout time.Duration

	// pgpKeys remembers what OPENPGPKEY records parsed to, so that a
	// record that comes again from the DNS cache costs no self-signature
	// verification (issue 10).
	pgpKeys openpgp.KeyCache
}

// Lookup is one record type's lookup of a recipient: the owner name, the
// answer, and the keys of type K selected from its records (with the
// records of type R that were not), made when the answer is secure or
// insecure; see Usable.
type Lookup[K, R any] struct {
	Name     string
	Result   dane.Result
	Keys     []K
	Rejected []R
}

// Usable returns the keys that may be encrypted to: none unless the answer
// is DNSSEC-secure (RFC 8162 §6, RFC 7929 §7).
func (l *Lookup[K, R]) Usable() []K {
	if l.Result.Status != dane.StatusSecure {
		return nil
	}
	return l.Keys
}

// SMIMEA is the SMIMEA lookup (RFC 8162).
type SMIMEA = Lookup[dane.Key, dane.Rejected]

// OPENPGPKEY is the OPENPGPKEY lookup (RFC 7929).
type OPENPGPKEY = Lookup[openpgp.Key, openpgp.Rejected]

// Recipient is everything danemilter knows and decides about one recipient.
// Its slices and lookups are shared, not copied: treat a Recipient as
// immutable.
type Recipient struct {
	Address string
	Domain  string // lowercased, "" for an address without "@"
	Local   bool   // delivered locally (local_domains): outbound encryption does not apply
	Match   policy.Match
	// Exempt is the exemption that applies ("sender p" or "recipient p"),
	// ExemptIgnored a recipient exemption that matched a level-encrypt
	// recipient, which an exemption never weakens (README "Exemptions").
	Exempt, ExemptIgnored string

	// Looked up: false until Lookup or Unfinished.
	Looked bool
	// Unfinished: the lookups did not finish in time (Indeterminate).
	Unfinished bool
	// Err: the address has no owner name (dane.SMIMEAName); no lookup made.
	Err        error
	SMIMEA     SMIMEA
	OPENPGPKEY *OPENPGPKEY // nil when OpenPGP is off or no lookup was made
	// Harvested are the store's entries for the address (Config.Store),
	// most recently seen first; StoreErr says why the store did not
	// answer. Both are empty when there is no store or it was not asked.
	Harvested []harvest.Entry
	StoreErr  error

	Outcome policy.Outcome
	// Decision is what happens to the recipient: policy.Decide's, or Plain
	// for a local, exempt or per-entry dry-run recipient.
	Decision policy.Decision
	// Would is, for a per-entry dry run, the decision the level gives
	// (Decision is then Plain, "dry run"); zero otherwise.
	Would policy.Decision
	// DryRun: a per-entry dry run applies (Would is set).
	DryRun bool
	// Label names the decision for the log: local, exempt, plain, dry-run
	// or the action.
	Label string
}

// Formats are the formats r has usable keys for, prefer first: the input
// of policy's grouping into copies (for one recipient, its first format is
// the one it gets).
func (r *Recipient) Formats(prefer policy.Format) []policy.Format {
	var out []policy.Format
	for _, f := range []policy.Format{prefer, 1 - prefer} {
		if r.Has(f) {
			out = append(out, f)
		}
	}
	return out
}

// Has reports whether r has usable keys of format f.
func (r *Recipient) Has(f policy.Format) bool {
	if f == policy.FormatOpenPGP {
		return r.OPENPGPKEY != nil && len(r.OPENPGPKEY.Usable()) > 0
	}
	return len(r.SMIMEA.Usable()) > 0
}

// NeedsLookup reports whether the decision depends on DNS: not for a
// local or exempt recipient, nor for level none.
func (r Recipient) NeedsLookup() bool {
	return !r.Local && r.Exempt == "" && r.Match.Level != policy.LevelNone
}

// Prepare evaluates what needs no DNS: the level, local, exemptions
// (senderExempt is the sender exemption pattern that applies, or ""). For a
// recipient that NeedsLookup, the decision follows from Lookup or
// Unfinished; for any other it is final.
func (c *Config) Prepare(addr, senderExempt string) Recipient {
	r := Recipient{Address: addr, Domain: address.Domain(addr), Match: c.Levels.Lookup(addr)}
	r.Local = c.IsLocal != nil && c.IsLocal(r.Domain)
	p := c.Exemptions.Recipient(addr)
	if r.Match.Level != policy.LevelEncrypt {
		if senderExempt != "" {
			r.Exempt = "sender " + senderExempt
		} else if p != "" {
			r.Exempt = "recipient " + p
		}
	} else if p != "" {
		r.ExemptIgnored = p
	}
	if !r.NeedsLookup() {
		r.Outcome = policy.Indeterminate
		c.decide(&r)
	}
	return r
}

// Evaluate is Prepare, then Lookup when needed.
func (c *Config) Evaluate(ctx context.Context, addr, senderExempt string) Recipient {
	r := c.Prepare(addr, senderExempt)
	if r.NeedsLookup() {
		r = c.Lookup(ctx, r)
	}
	return r
}

// Unfinished is r decided as if its lookups had failed temporarily
// (Indeterminate): what the milter does when the message's deadline passes
// first.
func (c *Config) Unfinished(r Recipient) Recipient {
	r.Looked, r.Unfinished, r.Outcome = true, true, policy.Indeterminate
	c.decide(&r)
	return r
}

// Lookup makes both lookups of a prepared recipient at once, selects the
// keys and decides. A panic in a lookup becomes an indeterminate result.
func (c *Config) Lookup(ctx context.Context, r Recipient) Recipient {
	r.Looked = true
	name, err := dane.SMIMEAName(r.Address, c.LowercaseLocalPart)
	if err != nil {
		r.Err, r.Outcome = err, policy.NoKey
		c.decide(&r)
		return r
	}
	r.SMIMEA.Name = name
	var wg sync.WaitGroup
	if c.OpenPGP {
		pgpName, _ := dane.OPENPGPKEYName(r.Address, c.LowercaseLocalPart)
		r.OPENPGPKEY = &OPENPGPKEY{Name: pgpName}
		l := r.OPENPGPKEY
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					l.Result, l.Keys = c.panicked(r.Address, "panic in OPENPGPKEY lookup", p), nil
				}
			}()
			l.Result = c.Resolver.Lookup(ctx, l.Name, dns.TypeOPENPGPKEY)
			if st := l.Result.Status; st == dane.StatusSecure || st == dane.StatusInsecure {
				l.Keys, l.Rejected = c.pgpKeys.Select(r.Address, l.Result.Records, c.now())
			}
		}()
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.SMIMEA.Result, r.SMIMEA.Keys = c.panicked(r.Address, "panic in lookup", p), nil
			}
		}()
		r.SMIMEA.Result = c.Resolver.Lookup(ctx, name, dns.TypeSMIMEA)
		if st := r.SMIMEA.Result.Status; st == dane.StatusSecure || st == dane.StatusInsecure {
			sel := c.Selector
			if sel == nil {
				sel = &dane.Selector{}
			}
			var more []*x509.Certificate
			if c.Store != nil && len(r.SMIMEA.Result.Records) > 0 {
				more = c.harvested(ctx, &r, sel)
			}
			r.SMIMEA.Keys, r.SMIMEA.Rejected = sel.SelectWith(r.Address, r.SMIMEA.Result.Records, c.now(), more)
		}
	}()
	wg.Wait()
	var pgp *dane.Result
	pgpUsable := 0
	if r.OPENPGPKEY != nil {
		pgp, pgpUsable = &r.OPENPGPKEY.Result, len(r.OPENPGPKEY.Usable())
	}
	r.Outcome = Outcome(r.SMIMEA.Result, len(r.SMIMEA.Usable()), pgp, pgpUsable)
	c.decide(&r)
	return r
}

// DefaultStoreTimeout bounds a Get of Config.Store when StoreTimeout is 0.
const DefaultStoreTimeout = time.Second

// harvested asks the store for r's certificates, within StoreTimeout, and
// sets r.Harvested or r.StoreErr. An error is "not known": the recipient
// is decided on the directory and the records alone. It returns the
// certificates that parse (not nil when the store was asked, so that a
// rejection can say "nor harvested").
func (c *Config) harvested(ctx context.Context, r *Recipient, sel *dane.Selector) []*x509.Certificate {
	timeout := c.StoreTimeout
	if timeout <= 0 {
		timeout = DefaultStoreTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r.Harvested, r.StoreErr = c.Store.Get(sctx, r.Address)
	certs := []*x509.Certificate{}
	if r.StoreErr != nil {
		r.Harvested = nil
		if c.Logger != nil {
			c.Logger.Debug("certificate store lookup failed; treated as not known", "rcpt", r.Address, "err", r.StoreErr)
		}
		return certs
	}
	for _, e := range r.Harvested {
		// Through the Selector's cache: a stored certificate comes again
		// for every message to the address (issue 10's rule for records).
		if cert, err := sel.ParseCertificate(e.Certificate); err == nil {
			certs = append(certs, cert)
		}
	}
	return certs
}

// HarvestedCapabilities returns the SMIMECapabilities DER (RFC 8551
// §2.5.2) stored with cert for r, nil when the store holds none for that
// certificate: capabilities are read only from a signature made with the
// very certificate the copy is encrypted to.
func (r *Recipient) HarvestedCapabilities(cert *x509.Certificate) []byte {
	for _, e := range r.Harvested {
		if bytes.Equal(e.Certificate, cert.Raw) {
			return e.Capabilities
		}
	}
	return nil
}

// panicked logs a panic in a lookup and returns the result it becomes.
func (c *Config) panicked(addr, msg string, p any) dane.Result {
	if c.Logger != nil {
		c.Logger.Error(msg, "rcpt", addr, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	}
	return dane.Result{Status: dane.StatusIndeterminate, Err: fmt.Errorf("internal error: %v", p)}
}

func (c *Config) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// decide sets Decision, Would, DryRun and Label from what r holds.
func (c *Config) decide(r *Recipient) {
	switch {
	case r.Local:
		r.Decision, r.Label = policy.Decision{Action: policy.Plain, Reason: "local recipient"}, "local"
	case r.Exempt != "":
		r.Decision, r.Label = policy.Decision{Action: policy.Plain, Reason: "exempt"}, "exempt"
	case r.Match.Level == policy.LevelNone:
		r.Decision, r.Label = policy.Decide(policy.LevelNone, r.Outcome), "plain"
	default:
		r.Decision = policy.Decide(r.Match.Level, r.Outcome)
		r.Label = r.Decision.Action.String()
		if r.Match.DryRun && !c.DryRun {
			// Per-entry dry run: say what would happen, then treat the
			// recipient as plaintext and never refuse it.
			r.Would, r.DryRun = r.Decision, true
			r.Decision, r.Label = policy.Decision{Action: policy.Plain, Reason: "dry run"}, "dry-run"
		}
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
