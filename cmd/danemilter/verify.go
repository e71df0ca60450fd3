package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/verify"
)

// runVerify prints what the daemon would conclude about the signatures of
// the message in path (an .eml: header fields, empty line, body, as
// received). Exit status: 0 the message passes (a signature valid and
// DANE-bound to From), 1 it does not, 2 it could not be checked (file
// unreadable, DNS indeterminate, larger than max_verify_size).
func runVerify(cfg *config.Config, path string, stdout, stderr io.Writer) int {
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter:", err)
		return 2
	}
	msg, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter verify:", err)
		return 2
	}
	resolver, err := newResolver(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter:", err)
		return 2
	}
	// Two lookups at most per signature; the timeout is lookup's.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Duration(cfg.DNS.Timeout)*time.Duration(len(cfg.DNS.Resolvers)+1))
	defer cancel()
	sel, err := newSelector(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter:", err)
		return 2
	}
	return printVerify(ctx, cfg, resolver, sel, path, msg, time.Now(), stdout)
}

// printVerify runs the inbound step the daemon runs on msg and renders it:
// the inbound entry that applies (the strictest among the From addresses),
// the Verifier's Report, its outcome, the decision with its SMTP reply, and
// the header fields the daemon would add. The exit status follows the
// outcome: 0 pass, 1 no pass (bogus included: the answer was had, and
// failed validation), 2 not checked (DNS indeterminate, too big).
func printVerify(ctx context.Context, cfg *config.Config, resolver dane.Resolver, sel *dane.Selector, name string, msg []byte, now time.Time, w io.Writer) int {
	fmt.Fprintf(w, "message:     %s (%d octets)\n", name, len(msg))
	levels := cfg.InboundLevels
	if levels == nil {
		levels = policy.NewInboundTable(policy.InboundReport) // the daemon's default (milter.Options)
	}
	froms := verify.FromAddresses(verify.FromValues(msg))
	match, headerFrom := levels.Strictest(froms)
	dryRun := cfg.DryRun || match.DryRun

	var rep *verify.Report
	var outcome policy.InboundOutcome
	maxSize := int64(cfg.Inbound.MaxVerifySize)
	if maxSize <= 0 {
		maxSize = int64(cfg.MaxMessageSize) // the daemon's default (milter.Options)
	}
	if maxSize > 0 && int64(len(msg)) > maxSize {
		fmt.Fprintf(w, "note:        larger than max_verify_size (%d): the daemon does not verify it\n", maxSize)
		rep, outcome = verify.NotVerified(verify.ResultNeutral, verify.ReasonTooBig), policy.InboundTooBig
	} else {
		v := &verify.Verifier{Resolver: resolver, Selector: sel, LowercaseLocalPart: cfg.DNS.LowercaseLocalPart,
			Now: func() time.Time { return now }}
		r, err := v.Verify(ctx, msg)
		if r == nil {
			fmt.Fprintln(w, "error:      ", err)
			return 2
		}
		// The daemon's conclusion: a report ctx cut short is "try later",
		// and a pass counts only for the address whose entry applies.
		rep, outcome = verify.Conclude(r, err, headerFrom)
		if rep.From != "" {
			fmt.Fprintf(w, "from:        %s\n", rep.From)
		} else {
			fmt.Fprintf(w, "from:        none usable: %s (no signature can pass)\n", rep.FromErr)
		}
	}
	entry := "default"
	if match.Entry != "" {
		entry = "entry " + match.Entry
	}
	if match.DryRun {
		entry += ", dry-run"
	}
	fmt.Fprintf(w, "policy:      %s (%s)", match.Level, entry)
	if headerFrom != "" {
		fmt.Fprintf(w, " for %s", headerFrom)
	}
	if len(froms) > 1 {
		fmt.Fprintf(w, ", the strictest of the %d From addresses", len(froms))
	}
	fmt.Fprintln(w)
	if outcome != policy.InboundTooBig {
		printSignatures(w, rep)
	}
	switch outcome {
	case policy.InboundPass:
		fmt.Fprintln(w, "outcome:     pass: a valid signature bound to the From address by DNSSEC")
	case policy.InboundIndeterminate:
		fmt.Fprintln(w, "outcome:     could not be checked: a key lookup did not complete; the daemon would try again later")
	case policy.InboundBogus:
		fmt.Fprintln(w, "outcome:     no pass: the sender's key lookup failed DNSSEC validation (bogus)")
	case policy.InboundTooBig:
		fmt.Fprintln(w, "outcome:     not verified: too big")
	default:
		fmt.Fprintln(w, "outcome:     no pass")
	}
	d := policy.DecideInbound(match.Level, outcome, cfg.RequireHold)
	switch e := d.Effect(); {
	case e == "":
		fmt.Fprintf(w, "decision:    accept (%s)\n", d.Reason)
	case dryRun:
		fmt.Fprintf(w, "decision:    accept (dry run; would %s: %s)\n", e, d.Reply)
	case d.Hold:
		fmt.Fprintf(w, "decision:    hold (require_action = hold, in place of %s)\n", d.Reply)
	default:
		fmt.Fprintf(w, "decision:    %s: %s\n", e, d.Reply)
	}
	if match.Level == policy.InboundNone {
		fmt.Fprintln(w, "header fields the daemon would add: none (policy none: the daemon does not verify)")
	} else {
		fmt.Fprintf(w, "header fields the daemon would add (authserv-id %s):\n", cfg.Inbound.AuthservID)
		for _, f := range rep.Fields(cfg.Inbound.AuthservID) {
			fmt.Fprint(w, strings.ReplaceAll(mimeentity.FoldField(f.Name, f.Value), "\r\n", "\n"))
		}
	}
	switch outcome {
	case policy.InboundPass:
		return 0
	case policy.InboundIndeterminate, policy.InboundTooBig, policy.InboundError:
		return 2
	}
	return 1
}

// printSignatures renders the signatures of a Report.
func printSignatures(w io.Writer, rep *verify.Report) {
	if !rep.Signed() {
		fmt.Fprintln(w, "signatures:  none found (S/MIME multipart/signed or signed-data, PGP/MIME multipart/signed)")
	}
	for i, s := range rep.Signatures {
		fmt.Fprintf(w, "[%d] %s signature, part %s: %s\n", i+1, methodName(s.Method), s.Part, s.Result)
		if s.Signer != "" || s.Serial != "" {
			fmt.Fprintf(w, "    signer:    %s", orNone(s.Signer))
			if s.Serial != "" {
				fmt.Fprintf(w, " (certificate serial %s, issuer %q)", s.Serial, s.Issuer)
			}
			fmt.Fprintln(w)
		}
		if s.Fingerprint != "" {
			fmt.Fprintf(w, "    key:       %s\n", s.Fingerprint)
		}
		if s.Algorithm != "" {
			fmt.Fprintf(w, "    algorithm: %s\n", s.Algorithm)
		}
		if !s.SigningTime.IsZero() {
			fmt.Fprintf(w, "    signed at: %s (the signer's claim)\n", s.SigningTime.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(w, "    valid:     %s\n", yesNo(s.Valid))
		binding := string(s.Binding)
		if s.Record != "" {
			binding += " by " + s.Record
		}
		fmt.Fprintf(w, "    binding:   %s\n", binding)
		fmt.Fprintf(w, "    why:       %s\n", s.Reason)
	}
	if rep.Truncated {
		fmt.Fprintln(w, "truncated:   yes: the MIME tree is deeper or has more parts than the limits; the rest was not checked")
	}
}

func methodName(m verify.Method) string {
	if m == verify.MethodOpenPGP {
		return "PGP/MIME"
	}
	return "S/MIME"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "(no address)"
	}
	return s
}
