package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/harvest"
)

const storeUsage = "usage: danemilter store [--config FILE] list | show ADDR | forget ADDR | export"

// runStore is "danemilter store": what the harvested certificate store
// holds, for operators and for data subjects' requests (export, forget).
func runStore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/danemilter/danemilter.toml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, storeUsage)
		return 2
	}
	sub, rest := fs.Arg(0), fs.Args()[1:]
	want := map[string]int{"list": 0, "show": 1, "forget": 1, "export": 0}
	n, ok := want[sub]
	if !ok || len(rest) != n {
		fmt.Fprintln(stderr, storeUsage)
		return 2
	}
	var cfg *config.Config
	var err error
	if _, statErr := os.Stat(*cfgPath); statErr != nil && !flagSet(fs, "config") {
		cfg, err = config.Parse("(defaults)", nil)
	} else {
		cfg, err = config.Load(*cfgPath)
	}
	if err != nil {
		fmt.Fprintln(stderr, "danemilter:", err)
		return 2
	}
	if cfg.Store.Backend == "bolt" {
		// Reading must not create the file.
		if _, err := os.Stat(cfg.Store.Path); errors.Is(err, iofs.ErrNotExist) && sub != "forget" {
			fmt.Fprintf(stderr, "danemilter store: %s does not exist yet: nothing harvested\n", cfg.Store.Path)
			return 0
		}
	}
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := openStore(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "danemilter store:", err)
		return 1
	}
	if store == nil {
		fmt.Fprintln(stderr, "danemilter store: [store] backend is off")
		return 2
	}
	err = storeCommand(ctx, store, sub, rest, stdout)
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, "danemilter store:", err)
		return 1
	}
	return 0
}

// openStore opens the configured harvest store; nil (and no error) when
// [store] backend is off.
func openStore(ctx context.Context, cfg *config.Config, logger *slog.Logger) (harvest.Store, error) {
	switch cfg.Store.Backend {
	case "bolt":
		return harvest.OpenBolt(cfg.Store.Path, cfg.StoreOptions())
	case "postgres":
		return harvest.OpenPostgres(ctx, cfg.Store.DSN, cfg.StoreOptions(), logger)
	}
	return nil, nil
}

func storeCommand(ctx context.Context, store harvest.Store, sub string, args []string, w io.Writer) error {
	switch sub {
	case "list":
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDRESS\tFINGERPRINT (SHA-256)\tFIRST SEEN\tLAST SEEN\tCAPABILITIES")
		err := store.List(ctx, func(e harvest.Entry) error {
			_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Address, e.Fingerprint,
				e.FirstSeen.Format(time.RFC3339), e.LastSeen.Format(time.RFC3339), strings.Join(capabilityNames(e), ","))
			return err
		})
		if err != nil {
			return err
		}
		return tw.Flush()
	case "show":
		es, err := store.Get(ctx, args[0])
		if err != nil {
			return err
		}
		if len(es) == 0 {
			fmt.Fprintf(w, "%s: nothing stored\n", harvest.NormalizeAddress(args[0]))
			return nil
		}
		for i, e := range es {
			if i > 0 {
				fmt.Fprintln(w)
			}
			showEntry(w, e)
		}
		fmt.Fprintf(w, "\nA stored certificate is used for encryption only when a DNSSEC-secure SMIMEA record\nfor %s matches it: see danemilter lookup %s\n", es[0].Address, es[0].Address)
		return nil
	case "forget":
		n, err := store.Forget(ctx, args[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s: %d certificate(s) forgotten\n", harvest.NormalizeAddress(args[0]), n)
		return nil
	case "export":
		enc := json.NewEncoder(w)
		return store.List(ctx, func(e harvest.Entry) error { return enc.Encode(exportOf(e)) })
	}
	return fmt.Errorf("unknown store command %q", sub)
}

func capabilityNames(e harvest.Entry) []string {
	oids, err := harvest.ParseCapabilities(e.Capabilities)
	if err != nil {
		return []string{"(malformed)"}
	}
	names := make([]string, len(oids))
	for i, o := range oids {
		names[i] = harvest.CapabilityName(o)
	}
	return names
}

func showEntry(w io.Writer, e harvest.Entry) {
	fmt.Fprintf(w, "address:      %s\nfingerprint:  %s (SHA-256 of the certificate)\n", e.Address, e.Fingerprint)
	if c, err := x509.ParseCertificate(e.Certificate); err == nil {
		fmt.Fprintf(w, "subject:      %s\nissuer:       %s\nvalid:        %s to %s\n", c.Subject, c.Issuer,
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "certificate:  does not parse: %v\n", err)
	}
	fmt.Fprintf(w, "first seen:   %s\nlast seen:    %s\n", e.FirstSeen.Format(time.RFC3339), e.LastSeen.Format(time.RFC3339))
	caps := capabilityNames(e)
	if len(caps) == 0 {
		caps = []string{"(none announced)"}
	}
	fmt.Fprintf(w, "capabilities: %s\n", strings.Join(caps, ", "))
}

// storeExport is one line of "danemilter store export".
type storeExport struct {
	Address      string    `json:"address"`
	Fingerprint  string    `json:"fingerprint"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
	Capabilities []string  `json:"capabilities"`
	Certificate  string    `json:"certificate"`
}

func exportOf(e harvest.Entry) storeExport {
	x := storeExport{Address: e.Address, Fingerprint: e.Fingerprint, FirstSeen: e.FirstSeen, LastSeen: e.LastSeen,
		Capabilities: []string{}, Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Certificate}))}
	if oids, err := harvest.ParseCapabilities(e.Capabilities); err == nil {
		for _, o := range oids {
			x.Capabilities = append(x.Capabilities, o.String())
		}
	}
	return x
}
