package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/address"
	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/milter"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/policy"
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
	return printLookup(ctx, cfg, resolver, sel, addr, time.Now(), stdout, stderr)
}

func printLookup(ctx context.Context, cfg *config.Config, resolver dane.Resolver, sel *dane.Selector, addr string, now time.Time, w, stderr io.Writer) int {
	name, err := dane.SMIMEAName(addr, cfg.DNS.LowercaseLocalPart)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter lookup:", err)
		return 2
	}
	if sel == nil {
		sel = &dane.Selector{}
	}
	levels, err := policy.NewLive(cfg.Levels, cfg.Policy.MapFile, nil)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter lookup:", err)
		return 2
	}
	match := levels.Lookup(addr)
	entry := "default"
	if match.Entry != "" {
		entry = "entry " + match.Entry
	}
	if match.DryRun {
		entry += ", dry-run: decisions are only logged and announced in a header"
	}
	domain := address.Domain(addr)
	fmt.Fprintf(w, "recipient:   %s\n", addr)
	if cfg.IsLocal(domain) {
		fmt.Fprintf(w, "local:       yes (local_domains); outbound encryption does not apply\n")
	}
	fmt.Fprintf(w, "policy:      %s (%s)\n", match.Level, entry)
	exempt := ""
	if p := cfg.Exemptions.Recipient(addr); p != "" {
		if match.Level == policy.LevelEncrypt {
			fmt.Fprintf(w, "exempt:      matches %q, but level encrypt is never weakened by an exemption\n", p)
		} else {
			exempt = p
			fmt.Fprintf(w, "exempt:      yes (exempt.recipients %q): mail to it is neither encrypted nor refused\n", p)
		}
	}

	// S/MIME.
	fmt.Fprintf(w, "owner name:  %s SMIMEA\n", name)
	res := resolver.Lookup(ctx, name, dns.TypeSMIMEA)
	printResult(w, res)
	var usable []dane.Key
	var rejected []dane.Rejected
	if res.Status == dane.StatusSecure || res.Status == dane.StatusInsecure {
		usable, rejected = sel.Select(addr, res.Records, now)
	}
	for i, rr := range res.Records {
		s, ok := rr.(*dns.SMIMEA)
		if !ok {
			continue
		}
		fmt.Fprintf(w, "  [%d] SMIMEA %d %d %d ttl=%d\n", i+1, s.Usage, s.Selector, s.MatchingType, s.Hdr.Ttl)
		for _, k := range usable {
			if k.Record == s {
				fmt.Fprintf(w, "      certificate: %s\n", describeCert(k.Cert))
				fmt.Fprintf(w, "      usable: %s\n", secureOr(res.Status, "yes"))
			}
		}
		for _, r := range rejected {
			if r.Record == s {
				fmt.Fprintf(w, "      usable: no: %s\n", r.Reason)
			}
		}
	}
	if res.Status != dane.StatusSecure {
		usable = nil
	}

	// OpenPGP.
	var pgpRes *dane.Result
	var pgpUsable []openpgp.Key
	if *cfg.OpenPGP.Enabled {
		pname, _ := dane.OPENPGPKEYName(addr, cfg.DNS.LowercaseLocalPart)
		fmt.Fprintf(w, "owner name:  %s OPENPGPKEY\n", pname)
		pr := resolver.Lookup(ctx, pname, dns.TypeOPENPGPKEY)
		pgpRes = &pr
		printResult(w, pr)
		var prej []openpgp.Rejected
		if pr.Status == dane.StatusSecure || pr.Status == dane.StatusInsecure {
			pgpUsable, prej = openpgp.SelectKeys(addr, pr.Records, now)
		}
		for i, rr := range pr.Records {
			p, ok := rr.(*dns.OPENPGPKEY)
			if !ok {
				continue
			}
			fmt.Fprintf(w, "  [%d] OPENPGPKEY ttl=%d\n", i+1, p.Hdr.Ttl)
			for _, k := range pgpUsable {
				if k.Record == p {
					fmt.Fprintf(w, "      key: %s %s\n", k.Fingerprint, k.Algorithm)
					fmt.Fprintf(w, "      usable: %s\n", secureOr(pr.Status, "yes"))
				}
			}
			for _, r := range prej {
				if r.Record == p {
					fmt.Fprintf(w, "      usable: no: %s\n", r.Reason)
				}
			}
		}
		if pr.Status != dane.StatusSecure {
			pgpUsable = nil
		}
	}

	outcome := milter.Outcome(res, len(usable), pgpRes, len(pgpUsable))
	d := policy.Decide(match.Level, outcome)
	if exempt != "" {
		d = policy.Decision{Action: policy.Plain, Reason: "exempt"}
	}
	if cfg.IsLocal(domain) {
		d = policy.Decision{Action: policy.Plain, Reason: "local recipient"}
	}
	fmt.Fprintf(w, "outcome:     %s\n", outcome)
	switch d.Action {
	case policy.Reject, policy.TempFail:
		fmt.Fprintf(w, "decision:    %s at RCPT TO: %s\n", d.Action, d.Reply)
	case policy.Encrypt:
		format := "S/MIME"
		if len(usable) == 0 || (len(pgpUsable) > 0 && cfg.PreferOpenPGP(domain)) {
			format = "PGP/MIME"
		}
		cipher := cfg.Cipher
		if c, ok := cfg.CipherFor(domain); ok {
			cipher = c
		}
		if format == "S/MIME" {
			fmt.Fprintf(w, "decision:    encrypt as S/MIME (%s) to %d certificate(s); %s\n", cipher, len(usable), d.Reason)
		} else {
			fmt.Fprintf(w, "decision:    encrypt as PGP/MIME to %d key(s); %s\n", len(pgpUsable), d.Reason)
		}
	default:
		fmt.Fprintf(w, "decision:    send in clear (%s)\n", d.Reason)
	}
	if match.DryRun || cfg.DryRun {
		fmt.Fprintf(w, "dry run:     yes: the message would pass unchanged, with an %s: dry-run header\n", milter.TraceHeader)
	}
	if len(usable) > 0 || len(pgpUsable) > 0 {
		return 0
	}
	return 1
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
