package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danemilter/danemilter/config"
)

func TestDaemonConfigStore(t *testing.T) {
	dir := t.TempDir()
	dsn := "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	for _, o := range []options{{store: "off"}, {store: "bolt"}, {store: "postgres", dsn: dsn}} {
		o.records = "full"
		if err := o.check(); err != nil {
			t.Fatalf("%s: %v", o.store, err)
		}
		cfg, err := config.Parse("load.toml", []byte(o.daemonConfig(10025, dir, "127.0.0.1:5353")))
		if err != nil {
			t.Fatalf("%s: %v", o.store, err)
		}
		if cfg.Store.Backend != o.store {
			t.Errorf("backend %q, want %q", cfg.Store.Backend, o.store)
		}
		switch o.store {
		case "bolt":
			if cfg.Store.Path != storePath(dir) {
				t.Errorf("bolt path %q, want %q (in the harness's directory)", cfg.Store.Path, storePath(dir))
			}
		case "postgres":
			if cfg.Store.DSN != dsn {
				t.Errorf("dsn %q", cfg.Store.DSN)
			}
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, tc := range []struct {
		o   options
		err string
	}{
		{options{store: "sqlite", records: "full"}, "want off, bolt or postgres"},
		{options{store: "postgres", records: "full"}, "needs -store-dsn"},
		{options{store: "bolt", dsn: "x", records: "full"}, "-store-dsn is for"},
		{options{store: "off", prefill: true, records: "full"}, "-store-prefill needs"},
		{options{store: "bolt", records: "hash"}, "-records hash needs"},
		{options{store: "bolt", records: "dane"}, "want full or hash"},
	} {
		err := tc.o.check()
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.err)
		}
	}
}

// TestHashRecordsFromBoltStore runs the harness with records that publish
// only a hash: every message is encrypted only if the daemon found the
// prefilled certificate in its bolt store.
func TestHashRecordsFromBoltStore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	bin := filepath.Join(t.TempDir(), "danemilter")
	if out, err := exec.Command("go", "build", "-o", bin, "../danemilter").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	o := options{n: 20, conc: 2, size: 4 << 10, nrcpt: 2, daemon: bin, store: "bolt", prefill: true, records: "hash"}
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	// The same without the store's entries (check refuses it; run does
	// not): no certificate, nothing encrypted, so the test above proves
	// the lookups hit.
	o.prefill, o.n = false, 2
	if err := run(o); err == nil {
		t.Fatal("hash records without stored certificates: every message passed")
	}
}
