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
	"github.com/danemilter/danemilter/verify"
)

// runVerify prints what the daemon would conclude about the signatures of
// the message in path (an .eml: header fields, empty line, body, as
// received). Exit status: 0 the message passes (a signature valid and
// DANE-bound to From), 1 it does not, 2 it could not be checked (file
// unreadable, DNS indeterminate).
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

// printVerify runs the Verifier the daemon runs on msg and renders its
// Report, then the header fields the daemon would add.
func printVerify(ctx context.Context, cfg *config.Config, resolver dane.Resolver, sel *dane.Selector, name string, msg []byte, now time.Time, w io.Writer) int {
	v := &verify.Verifier{Resolver: resolver, Selector: sel, LowercaseLocalPart: cfg.DNS.LowercaseLocalPart,
		Now: func() time.Time { return now }}
	fmt.Fprintf(w, "message:     %s (%d octets)\n", name, len(msg))
	if max := int64(cfg.Inbound.MaxVerifySize); max > 0 && int64(len(msg)) > max {
		fmt.Fprintf(w, "note:        larger than max_verify_size (%d): the daemon would not verify it (smime=neutral); checked here anyway\n", max)
	}
	rep, err := v.Verify(ctx, msg)
	if rep == nil {
		fmt.Fprintln(w, "error:      ", err)
		return 2
	}
	if rep.From != "" {
		fmt.Fprintf(w, "from:        %s\n", rep.From)
	} else {
		fmt.Fprintf(w, "from:        none usable: %s (no signature can pass)\n", rep.FromErr)
	}
	if cfg.InboundLevels != nil {
		m := cfg.InboundLevels.Lookup(rep.From)
		entry := "default"
		if m.Entry != "" {
			entry = "entry " + m.Entry
		}
		if m.DryRun {
			entry += ", dry-run"
		}
		fmt.Fprintf(w, "policy:      %s (%s)\n", m.Level, entry)
	}
	if !rep.Signed() {
		fmt.Fprintln(w, "signatures:  none found (S/MIME multipart/signed or signed-data, PGP/MIME multipart/signed)")
	}
	indeterminate := false
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
		if s.Binding == verify.BindingIndeterminate || s.Result == verify.ResultTempError {
			indeterminate = true
		}
	}
	if rep.Truncated {
		fmt.Fprintln(w, "truncated:   yes: the MIME tree is deeper or has more parts than the limits; the rest was not checked")
	}
	code := 1
	switch {
	case rep.Pass():
		code = 0
		fmt.Fprintln(w, "outcome:     pass: a valid signature bound to the From address by DNSSEC")
	case indeterminate || err != nil:
		code = 2
		fmt.Fprintln(w, "outcome:     could not be checked: a key lookup did not complete; the daemon would try again later")
	default:
		fmt.Fprintln(w, "outcome:     no pass")
	}
	fmt.Fprintf(w, "header fields the daemon would add (authserv-id %s):\n", cfg.Inbound.AuthservID)
	for _, f := range rep.Fields(cfg.Inbound.AuthservID) {
		fmt.Fprint(w, strings.ReplaceAll(mimeentity.FoldField(f.Name, f.Value), "\r\n", "\n"))
	}
	return code
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
