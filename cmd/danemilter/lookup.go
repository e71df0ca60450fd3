package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/milter"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/recipient"
	"github.com/danemilter/danemilter/smime"
)

// runLookup prints what the daemon would see and decide for one recipient.
// Exit status: 0 a usable key exists, 1 none, 2 the lookup could not be made.
func runLookup(cfg *config.Config, addr string, stdout, stderr io.Writer) int {
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter:", err)
		return 2
	}
	resolver, err := newResolver(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.DNS.Timeout)*time.Duration(len(cfg.DNS.Resolvers)+1))
	defer cancel()
	sel, err := newSelector(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter:", err)
		return 2
	}
	// The store, briefly: a bolt file the running daemon holds is locked,
	// and lookup then says so rather than wait.
	sc := *cfg
	sc.Store.Timeout = config.Duration(lookupStoreWait)
	var store harvest.Store
	if _, err := os.Stat(cfg.Store.Path); cfg.Store.Backend == "bolt" && errors.Is(err, iofs.ErrNotExist) {
		fmt.Fprintf(stdout, "store:       %s does not exist yet: nothing harvested\n", cfg.Store.Path)
	} else if store, err = openStore(ctx, &sc, logger); err != nil {
		fmt.Fprintf(stdout, "store:       unavailable (%v); stored certificates not shown\n", err)
		store = nil
	}
	if store != nil {
		defer store.Close()
	}
	return printLookupStore(ctx, cfg, resolver, sel, store, addr, time.Now(), stdout, stderr)
}

// lookupStoreWait bounds the wait for the store file's lock.
const lookupStoreWait = 500 * time.Millisecond

// printLookup is printLookupStore without a store.
func printLookup(ctx context.Context, cfg *config.Config, resolver dane.Resolver, sel *dane.Selector, addr string, now time.Time, w, stderr io.Writer) int {
	return printLookupStore(ctx, cfg, resolver, sel, nil, addr, now, w, stderr)
}

// printLookupStore renders what recipient.Config.Lookup, the evaluation
// the daemon runs, gives for addr, with the certificates store (nil: none)
// holds for it. Unlike the daemon it looks the keys up even for a local or
// exempt recipient or level none, to show them.
func printLookupStore(ctx context.Context, cfg *config.Config, resolver dane.Resolver, sel *dane.Selector, store harvest.Store, addr string, now time.Time, w, stderr io.Writer) int {
	levels, err := policy.NewLive(cfg.Levels, cfg.Policy.MapFile, nil)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter lookup:", err)
		return 2
	}
	rc := recipient.Config{Resolver: resolver, Selector: sel, Levels: levels, Exemptions: cfg.Exemptions, IsLocal: cfg.IsLocal,
		LowercaseLocalPart: cfg.DNS.LowercaseLocalPart, OpenPGP: *cfg.OpenPGP.Enabled, DryRun: cfg.DryRun,
		Now: func() time.Time { return now }, Store: store}
	r := rc.Lookup(ctx, rc.Prepare(addr, ""))
	if r.Err != nil {
		fmt.Fprintln(stderr, "danemilter lookup:", r.Err)
		return 2
	}
	entry := "default"
	if r.Match.Entry != "" {
		entry = "entry " + r.Match.Entry
	}
	if r.Match.DryRun {
		entry += ", dry-run: decisions are only logged and announced in a header"
	}
	fmt.Fprintf(w, "recipient:   %s\n", addr)
	if r.Local {
		fmt.Fprintf(w, "local:       yes (local_domains); outbound encryption does not apply\n")
	}
	fmt.Fprintf(w, "policy:      %s (%s)\n", r.Match.Level, entry)
	if r.ExemptIgnored != "" {
		fmt.Fprintf(w, "exempt:      matches %q, but level encrypt is never weakened by an exemption\n", r.ExemptIgnored)
	} else if p, ok := strings.CutPrefix(r.Exempt, "recipient "); ok {
		fmt.Fprintf(w, "exempt:      yes (exempt.recipients %q): mail to it is neither encrypted nor refused\n", p)
	}

	// S/MIME.
	fmt.Fprintf(w, "owner name:  %s SMIMEA\n", r.SMIMEA.Name)
	res := r.SMIMEA.Result
	printResult(w, res)
	for i, rr := range res.Records {
		s, ok := rr.(*dns.SMIMEA)
		if !ok {
			continue
		}
		fmt.Fprintf(w, "  [%d] SMIMEA %d %d %d ttl=%d\n", i+1, s.Usage, s.Selector, s.MatchingType, s.Hdr.Ttl)
		for _, k := range r.SMIMEA.Keys {
			if k.Record == s {
				fmt.Fprintf(w, "      certificate: %s\n", describeCert(k.Cert))
				fmt.Fprintf(w, "      usable: %s\n", secureOr(res.Status, "yes"))
			}
		}
		for _, rj := range r.SMIMEA.Rejected {
			if rj.Record == s {
				fmt.Fprintf(w, "      usable: no: %s\n", rj.Reason)
			}
		}
	}

	// What the store knows (asked by the lookup only when there are
	// records; asked here in any case, to show it).
	if store != nil {
		printHarvested(ctx, w, store, &r)
	}

	// OpenPGP.
	if l := r.OPENPGPKEY; l != nil {
		fmt.Fprintf(w, "owner name:  %s OPENPGPKEY\n", l.Name)
		printResult(w, l.Result)
		for i, rr := range l.Result.Records {
			p, ok := rr.(*dns.OPENPGPKEY)
			if !ok {
				continue
			}
			fmt.Fprintf(w, "  [%d] OPENPGPKEY ttl=%d\n", i+1, p.Hdr.Ttl)
			for _, k := range l.Keys {
				if k.Record == p {
					fmt.Fprintf(w, "      key: %s %s\n", k.Fingerprint, k.Algorithm)
					fmt.Fprintf(w, "      usable: %s\n", secureOr(l.Result.Status, "yes"))
				}
			}
			for _, rj := range l.Rejected {
				if rj.Record == p {
					fmt.Fprintf(w, "      usable: no: %s\n", rj.Reason)
				}
			}
		}
	}

	// The decision the level gives; a per-entry dry run only logs it.
	d := r.Decision
	if r.DryRun {
		d = r.Would
	}
	fmt.Fprintf(w, "outcome:     %s\n", r.Outcome)
	switch d.Action {
	case policy.Reject, policy.TempFail:
		fmt.Fprintf(w, "decision:    %s at RCPT TO: %s\n", d.Action, d.Reply)
	case policy.Encrypt:
		if r.Formats(preferFunc(cfg)(addr))[0] == policy.FormatSMIME {
			// The daemon's choice for a copy to this recipient alone.
			cipher, oaepFor := milter.ChooseCipher(cfg.Cipher, cfg.SMIME.RSAOAEP, cfg.CipherFor, []*recipient.Recipient{&r})
			how := cipher.String()
			if setting, ok := cfg.CipherFor(r.Domain); (ok && setting == smime.CipherAuto) || (!ok && cfg.Cipher == smime.CipherAuto) {
				how += ", chosen by auto from the stored capabilities"
			}
			oaep := cfg.SMIME.RSAOAEP
			if oaepFor != nil && len(r.SMIMEA.Usable()) > 0 {
				oaep = oaepFor(r.SMIMEA.Usable()[0].Cert)
			}
			if oaep {
				how += ", RSA-OAEP for RSA keys"
			}
			fmt.Fprintf(w, "decision:    encrypt as S/MIME (%s) to %d certificate(s); %s\n", how, len(r.SMIMEA.Usable()), d.Reason)
		} else {
			fmt.Fprintf(w, "decision:    encrypt as PGP/MIME to %d key(s); %s\n", len(r.OPENPGPKEY.Usable()), d.Reason)
		}
	default:
		fmt.Fprintf(w, "decision:    send in clear (%s)\n", d.Reason)
	}
	if r.Match.DryRun || cfg.DryRun {
		fmt.Fprintf(w, "dry run:     yes: the message would pass unchanged, with an %s: dry-run header\n", milter.TraceHeader)
	}
	if r.Has(policy.FormatSMIME) || r.Has(policy.FormatOpenPGP) {
		return 0
	}
	return 1
}

// printHarvested lists the store's entries for r and whether each serves
// as a key (only when a DNSSEC-secure record matches it).
func printHarvested(ctx context.Context, w io.Writer, store harvest.Store, r *recipient.Recipient) {
	entries, err := r.Harvested, r.StoreErr
	if entries == nil && err == nil {
		sctx, cancel := context.WithTimeout(ctx, recipient.DefaultStoreTimeout)
		entries, err = store.Get(sctx, r.Address)
		cancel()
	}
	if err != nil {
		fmt.Fprintf(w, "store:       not known: %v\n", err)
		return
	}
	fmt.Fprintf(w, "store:       %d certificate(s) harvested from verified signed mail\n", len(entries))
	for i, e := range entries {
		used := "no: no DNSSEC-secure SMIMEA record matches it (a harvested certificate grants no trust)"
		for _, k := range r.SMIMEA.Usable() {
			if bytes.Equal(k.Cert.Raw, e.Certificate) {
				used = fmt.Sprintf("yes (SMIMEA %d %d %d)", k.Record.Usage, k.Record.Selector, k.Record.MatchingType)
			}
		}
		caps := capabilityNames(e)
		if len(caps) == 0 {
			caps = []string{"(none announced)"}
		}
		fmt.Fprintf(w, "  [%d] sha256 %s, last seen %s\n", i+1, e.Fingerprint, e.LastSeen.UTC().Format(time.RFC3339))
		if c, err := x509.ParseCertificate(e.Certificate); err == nil {
			fmt.Fprintf(w, "      certificate: %s\n", describeCert(c))
		}
		fmt.Fprintf(w, "      capabilities: %s\n", strings.Join(caps, ", "))
		fmt.Fprintf(w, "      used: %s\n", used)
	}
}

func secureOr(st dane.Status, yes string) string {
	if st == dane.StatusSecure {
		return yes
	}
	return "no: the answer is not DNSSEC-secure (RFC 8162 §6, RFC 7929 §7)"
}

func printResult(w io.Writer, res dane.Result) {
	fmt.Fprintf(w, "resolver:    %s\n", res.Resolver)
	fmt.Fprintf(w, "dnssec:      %s\n", res.Status)
	for _, e := range res.EDE {
		fmt.Fprintf(w, "ede:         %s\n", e)
	}
	if res.Err != nil {
		fmt.Fprintf(w, "error:       %v\n", res.Err)
	}
	fmt.Fprintf(w, "records:     %d\n", len(res.Records))
}

func describeCert(c *x509.Certificate) string {
	key := "unknown key"
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		key = fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		key = "ECDSA " + k.Curve.Params().Name
	}
	return fmt.Sprintf("subject %q, email %s, %s, valid %s to %s", c.Subject.String(), strings.Join(c.EmailAddresses, ","), key,
		c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly))
}
