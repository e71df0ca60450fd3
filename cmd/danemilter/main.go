// Command danemilter is a milter for Postfix and Sendmail that encrypts
// outbound mail to the keys its recipients publish in DNSSEC-signed zones:
// SMIMEA records (RFC 8162) for S/MIME (RFC 8551) and OPENPGPKEY records
// (RFC 7929) for PGP/MIME (RFC 3156). Per recipient a policy level (none,
// may, dane, encrypt, after Postfix's TLS levels; package policy) turns the
// lookup's DNSSEC outcome into encrypt, plaintext, a 550 or a 451, and a
// message whose recipients need different treatment is split into one copy
// each, re-injected into the MTA's milter-less listener.
//
// This command only wires the packages together: config loads the file,
// dane and openpgp find the keys, recipient evaluates each recipient (the
// daemon acts on that value and `danemilter lookup` prints it), policy
// decides the message's plan, reply names every SMTP reply, smime and
// openpgp encrypt, milter talks to the MTA.
//
// Usage:
//
//	danemilter serve --config FILE          run the daemon
//	danemilter check-config --config FILE   validate and print the effective configuration
//	danemilter lookup [--config FILE] ADDR  show what the daemon sees for a recipient
//	danemilter verify [--config FILE] FILE  show what the daemon concludes about a received message's signatures
//	danemilter record smimea --cert FILE [--usage U --selector S --matching M] ADDR
//	danemilter record openpgpkey --key FILE ADDR
//	danemilter store [--config FILE] list|show ADDR|forget ADDR|export
//	danemilter keys [--dir PATH] generate|import|list|records ...
//	danemilter demo                         encrypt a sample message in-process, no set-up needed
//	danemilter version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/danemilter/danemilter/address"
	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/milter"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  danemilter serve --config FILE          run the milter daemon
  danemilter check-config --config FILE   validate FILE and print the effective configuration
  danemilter lookup [--config FILE] ADDR  show the SMIMEA and OPENPGPKEY records, DNSSEC status and decision for ADDR
  danemilter verify [--config FILE] FILE  verify the S/MIME or PGP/MIME signatures of a received message (.eml) and their DANE binding
  danemilter record smimea|openpgpkey ... ADDR  print the SMIMEA or OPENPGPKEY record for ADDR
  danemilter store [--config FILE] list|show ADDR|forget ADDR|export  the harvested certificate store
  danemilter keys [--dir PATH] generate|import|list|records ...  the gateway's own users' keys (key directory)
  danemilter demo                         encrypt a sample message in-process (no DNS, no MTA needed)
  danemilter version
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/danemilter/danemilter.toml", "configuration file")
	switch cmd {
	case "serve", "check-config", "lookup", "verify":
	case "demo":
		return runDemo(stdout, stderr)
	case "record":
		return runRecord(args, stdout, stderr)
	case "store":
		return runStore(args, stdout, stderr)
	case "keys":
		return runKeys(args, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "danemilter", version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "danemilter: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var cfg *config.Config
	var err error
	if (cmd == "lookup" || cmd == "verify") && !flagSet(fs, "config") {
		if _, statErr := os.Stat(*cfgPath); statErr != nil {
			cfg, err = config.Parse("(defaults)", nil)
		} else {
			cfg, err = config.Load(*cfgPath)
		}
	} else {
		cfg, err = config.Load(*cfgPath)
	}
	if err != nil {
		fmt.Fprintln(stderr, "danemilter:", err)
		return 2
	}
	switch cmd {
	case "check-config":
		// Load has checked the owner and mode of every file and directory
		// named (package safefile); a missing spool_dir is made at start.
		fmt.Fprintf(stdout, "# %s: configuration is valid; effective values:\n", *cfgPath)
		if cfg.SpoolDir != "" {
			if _, err := os.Lstat(cfg.SpoolDir); errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(stdout, "# spool_dir %s does not exist yet; serve makes it with mode 0700\n", cfg.SpoolDir)
			}
		}
		fmt.Fprint(stdout, cfg)
		return 0
	case "lookup":
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "danemilter lookup: want exactly one address")
			return 2
		}
		return runLookup(cfg, fs.Arg(0), stdout, stderr)
	case "verify":
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "danemilter verify: want exactly one message file")
			return 2
		}
		return runVerify(cfg, fs.Arg(0), stdout, stderr)
	}
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter:", err)
		return 2
	}
	if err := serve(cfg, logger); err != nil {
		logger.Error("exiting", "err", err)
		return 1
	}
	return 0
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func newLogger(cfg *config.Config, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// newResolver builds the validating stub resolver and its cache from cfg.
func newResolver(cfg *config.Config, logger *slog.Logger) (dane.Resolver, error) {
	stub, err := dane.NewStub(dane.StubOptions{
		Servers: cfg.DNS.Resolvers,
		Trusted: cfg.DNS.Trusted,
		Timeout: time.Duration(cfg.DNS.Timeout),
		Logger:  logger,
	})
	if err != nil {
		return nil, err
	}
	return dane.NewCache(stub, dane.CacheOptions{MaxEntries: cfg.DNS.CacheSize}), nil
}

// newSelector builds the SMIMEA selector: trust anchors for the PKIX usages
// and the certificate directory, which is watched for changes while ctx
// lives.
func newSelector(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*dane.Selector, error) {
	sel := &dane.Selector{Roots: cfg.Roots}
	if cfg.SMIME.CertDir == "" {
		return sel, nil
	}
	dir, err := dane.NewCertDir(cfg.SMIME.CertDir, logger)
	if dir == nil {
		return nil, err
	}
	if err != nil {
		logger.Error("certificate directory has unusable files; the others are in force", "dir", cfg.SMIME.CertDir, "err", err)
	}
	sel.Certs = dir
	go dir.Watch(ctx, time.Duration(cfg.SMIME.CertDirCheckInterval))
	return sel, nil
}

// preferFunc turns the format preference of the configuration into the
// milter's per-recipient choice.
func preferFunc(cfg *config.Config) func(addr string) milter.Format {
	return func(addr string) milter.Format {
		domain := address.Domain(addr)
		if cfg.PreferOpenPGP(domain) {
			return milter.FormatOpenPGP
		}
		return milter.FormatSMIME
	}
}
