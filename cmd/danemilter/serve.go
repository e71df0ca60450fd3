package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/keydir"
	"github.com/danemilter/danemilter/milter"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/safefile"
	"github.com/danemilter/danemilter/smime"
	"github.com/danemilter/danemilter/verify"
)

// serve runs the daemon until SIGTERM or SIGINT. The first signal stops
// accepting connections and waits up to timeouts.shutdown for in-flight
// messages; a second signal, or the timeout, closes the rest (the MTA then
// applies milter_default_action, tempfail, so no message is lost).
func serve(cfg *config.Config, logger *slog.Logger) error {
	// Catch signals first: a SIGHUP (systemctl reload) during start-up must
	// not kill the daemon with the default action.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	resolver, err := newResolver(cfg, logger)
	if err != nil {
		return err
	}
	levels, err := policy.NewLive(cfg.Levels, cfg.Policy.MapFile, logger)
	if err != nil {
		return err
	}
	if cfg.SpoolDir != "" { // made 0700 if missing; refused if a link or writable by others
		if err := safefile.MakeDir(cfg.SpoolDir); err != nil {
			return fmt.Errorf("spool_dir: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go levels.Watch(ctx, time.Duration(cfg.Policy.MapCheckInterval))
	selector, err := newSelector(ctx, cfg, logger)
	if err != nil {
		return err
	}
	var reinjector milter.Reinjector
	if cfg.ReinjectAddress != "" {
		reinjector = &milter.SMTPReinjector{Addr: cfg.ReinjectAddress, Helo: cfg.Reinject.Helo, Timeout: time.Duration(cfg.Reinject.Timeout)}
	}
	opts := daemonOptions(cfg, logger, resolver, levels, selector, reinjector)
	store, harvester := openHarvest(ctx, cfg, logger)
	if store != nil {
		defer closeHarvest(store, harvester, logger)
		opts.Store, opts.Harvester = store, harvester
	}
	if cfg.Gateway.KeyDir != "" {
		keys, err := keydir.Open(cfg.Gateway.KeyDir, logger)
		switch {
		case keys == nil:
			return fmt.Errorf("gateway.key_dir: %w", err)
		case err != nil:
			// Some key files do not parse: the others are used (as for
			// smime.cert_dir); the error names the files.
			logger.Error("key directory has unusable files; the others are in force", "dir", cfg.Gateway.KeyDir, "err", err)
		}
		go keys.Watch(ctx, keydir.DefaultCheckInterval)
		opts.Keys, opts.Decrypt, opts.DecryptReject = keys, cfg.DecryptList, cfg.DecryptReject
		logger.Info("gateway keys open", "key_dir", cfg.Gateway.KeyDir, "decrypt", cfg.Gateway.Decrypt, "on_failure", cfg.Gateway.OnFailure)
	}
	srv, err := milter.NewServer(opts)
	if err != nil {
		return err
	}
	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	logger.Info("listening", "version", version, "listen", cfg.Listen, "resolvers", cfg.DNS.Resolvers, "default_policy", cfg.Levels.Default().String(),
		"policy_entries", levels.Table().Len(), "cipher", cfg.Cipher.String(), "openpgp", *cfg.OpenPGP.Enabled, "cert_dir", cfg.SMIME.CertDir, "map_file", cfg.Policy.MapFile, "local_domains", cfg.LocalDomains, "reinject", cfg.ReinjectAddress, "dry_run", cfg.DryRun,
		"inbound_default", cfg.Inbound.Default, "inbound_senders", cfg.InboundLevels.Len(), "authserv_id", cfg.Inbound.AuthservID, "require_action", cfg.Inbound.RequireAction)

	// go-milter reports malformed packets, limits hit, accept errors and
	// recovered panics through this hook; they go to our log.
	gomilter.LogWarning = func(format string, v ...any) {
		logger.Warn("milter connection: " + fmt.Sprintf(format, v...))
	}

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()

	for {
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, gomilter.ErrServerClosed) {
				return fmt.Errorf("serve: %w", err)
			}
			return nil
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if cfg.Policy.MapFile == "" {
					logger.Info("SIGHUP received; no policy map file to reload (other settings need a restart)")
				} else {
					levels.ReloadAndLog("SIGHUP")
				}
				continue
			}
			logger.Info("shutting down; draining in-flight messages", "signal", sig.String(), "timeout", time.Duration(cfg.Timeouts.Shutdown).String())
			return shutdown(srv, sigs, time.Duration(cfg.Timeouts.Shutdown), logger, cfg)
		}
	}
}

// openHarvest opens the certificate store of [store] and starts its
// Harvester; both nil when the backend is off or the store cannot be
// opened (logged: the daemon runs without harvesting rather than defer
// mail over it).
func openHarvest(ctx context.Context, cfg *config.Config, logger *slog.Logger) (harvest.Store, *harvest.Harvester) {
	store, err := openStore(ctx, cfg, logger)
	if err != nil {
		logger.Error("certificate store unavailable; running without harvesting and without stored certificates until restart", "backend", cfg.Store.Backend, "err", err)
		return nil, nil
	}
	if store == nil {
		return nil, nil
	}
	logger.Info("certificate store open", "backend", cfg.Store.Backend)
	// Outbound selection asks the store per recipient; Cached keeps a
	// database round trip out of most messages (a Put through it, the
	// Harvester's, is seen at once; a miss is always asked again, so another
	// daemon's first harvest of an address is used by the next message).
	cached := harvest.NewCached(store, 0, 0)
	return cached, harvest.NewHarvester(cached, logger, harvest.HarvesterOptions{})
}

// closeHarvest stops the Harvester (what it has not written is logged as
// lost) and closes the store.
func closeHarvest(store harvest.Store, h *harvest.Harvester, logger *slog.Logger) {
	if err := h.Close(); err != nil {
		logger.Warn("harvester did not stop cleanly", "err", err)
	}
	if err := store.Close(); err != nil {
		logger.Warn("certificate store did not close cleanly", "err", err)
	}
}

func shutdown(srv *gomilter.Server, sigs <-chan os.Signal, timeout time.Duration, logger *slog.Logger, cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case sig := <-sigs:
			logger.Warn("second signal; closing connections now", "signal", sig.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	err := srv.Shutdown(ctx)
	if cfg.Network == "unix" {
		_ = os.Remove(cfg.Address)
	}
	if err != nil {
		logger.Warn("shutdown did not drain every connection", "err", err)
		return nil
	}
	logger.Info("stopped")
	return nil
}

// listen opens the milter socket. A stale Unix socket left by a crash is
// removed; any other file at that path is an error.
func listen(cfg *config.Config) (net.Listener, error) {
	if cfg.Network != "unix" {
		return net.Listen(cfg.Network, cfg.Address)
	}
	if fi, err := os.Lstat(cfg.Address); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("listen %s: exists and is not a socket", cfg.Address)
		}
		if c, err := net.Dial("unix", cfg.Address); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("listen %s: another process is listening there", cfg.Address)
		}
		if err := os.Remove(cfg.Address); err != nil {
			return nil, fmt.Errorf("listen %s: remove stale socket: %w", cfg.Address, err)
		}
	}
	// The umask makes the socket appear with its mode already right (no
	// moment in which it has the default one); the Chmod below then sets
	// the exact bits. Nothing else creates files at start-up.
	old := syscall.Umask(int(0o777 &^ cfg.FileMode.Perm()))
	ln, err := net.Listen("unix", cfg.Address)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(cfg.Address, cfg.FileMode); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", cfg.Address, err)
	}
	return ln, nil
}

// maxEncryptedSize maps the config's "0 = off" onto the milter's "negative =
// off".
func maxEncryptedSize(cfg *config.Config) int64 {
	if *cfg.MaxEncryptedSize == 0 {
		return -1
	}
	return int64(*cfg.MaxEncryptedSize)
}

// daemonOptions are the milter options the daemon runs with; the test that
// compares `danemilter lookup` with the daemon uses them too.
func daemonOptions(cfg *config.Config, logger *slog.Logger, resolver dane.Resolver, levels policy.Source, selector *dane.Selector, reinjector milter.Reinjector) milter.Options {
	return milter.Options{
		Logger:             logger,
		Resolver:           resolver,
		Levels:             levels,
		Exemptions:         cfg.Exemptions,
		Reinjector:         reinjector,
		RcptWait:           time.Duration(*cfg.Timeouts.Rcpt),
		Selector:           selector,
		SMIME:              smime.Options{Cipher: cfg.Cipher, RSAOAEP: cfg.SMIME.RSAOAEP, UseSKI: cfg.SMIME.UseSKI},
		CipherFor:          cfg.CipherFor,
		OpenPGP:            *cfg.OpenPGP.Enabled,
		Prefer:             preferFunc(cfg),
		ProtectHeaders:     cfg.OpenPGP.ProtectHeaders,
		IsLocal:            cfg.IsLocal,
		LowercaseLocalPart: cfg.DNS.LowercaseLocalPart,
		MaxMessageSize:     int64(cfg.MaxMessageSize),
		MaxEncryptedSize:   maxEncryptedSize(cfg),
		MemoryThreshold:    int64(cfg.MemoryThreshold),
		SpoolDir:           cfg.SpoolDir,
		MessageTimeout:     time.Duration(cfg.Timeouts.Message),
		DryRun:             cfg.DryRun,
		MaxPacketSize:      int64(cfg.Limits.MaxPacket),
		MaxConnections:     cfg.Limits.MaxConnections,
		MemoryBudget:       int64(cfg.Limits.MemoryBudget),
		IdleTimeout:        time.Duration(cfg.Timeouts.Idle),
		PacketTimeout:      time.Duration(cfg.Timeouts.Packet),
		// Inbound: the same resolver (and its cache) and Selector as the
		// outbound lookups.
		Direction:     cfg.DirectionRules,
		Verifier:      &verify.Verifier{Resolver: resolver, Selector: selector, LowercaseLocalPart: cfg.DNS.LowercaseLocalPart, Keys: &openpgp.KeyCache{}},
		Inbound:       cfg.InboundLevels,
		AuthservID:    cfg.Inbound.AuthservID,
		RequireHold:   cfg.RequireHold,
		MaxVerifySize: int64(cfg.Inbound.MaxVerifySize),
	}
}
