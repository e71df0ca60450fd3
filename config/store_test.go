package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danemilter/danemilter/harvest"
)

func TestStoreDefaults(t *testing.T) {
	d, err := Parse("empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Store{Backend: "bolt", Path: "/var/lib/danemilter/harvest.db", ExpireAfter: Duration(400 * 24 * time.Hour), MaxEntries: 100000, Timeout: Duration(2 * time.Second)}
	if d.Store != want {
		t.Errorf("defaults %+v, want %+v", d.Store, want)
	}
	if o := d.StoreOptions(); o.ExpireAfter != harvest.DefaultExpireAfter || o.MaxEntries != harvest.DefaultMaxEntries || o.Timeout != harvest.DefaultTimeout {
		t.Errorf("StoreOptions = %+v", o)
	}
	// The sample shows the defaults.
	c, err := Load(sampleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != d.Store {
		t.Errorf("sample [store] %+v, defaults %+v", c.Store, d.Store)
	}
}

func TestStore(t *testing.T) {
	ok := []struct{ in, backend string }{
		{"[store]\nbackend = \"off\"\n", "off"},
		{"[store]\nbackend = \"postgres\"\ndsn = \"host=127.0.0.1 dbname=danemilter\"\n", "postgres"},
		{"[store]\nbackend = \"bolt\"\npath = \"/srv/h.db\"\nexpire_after = \"720h\"\nmax_entries = 10\ntimeout = \"500ms\"\n", "bolt"},
	}
	for _, tt := range ok {
		c, err := Parse("t.toml", []byte(tt.in))
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if c.Store.Backend != tt.backend {
			t.Errorf("%q: backend %q", tt.in, c.Store.Backend)
		}
	}
	bad := []struct{ in, want string }{
		{"[store]\nbackend = \"sqlite\"\n", `t.toml:2: invalid value: key "store.backend"`},
		{"[store]\npath = \"harvest.db\"\n", `t.toml:2: invalid value: key "store.path"`},
		{"[store]\nbackend = \"postgres\"\n", `key "store.dsn"`},
		{"[store]\nexpire_after = \"400d\"\n", "t.toml:2"},
		{"[store]\nexpire_after = \"10m\"\n", `t.toml:2: invalid value: key "store.expire_after"`},
		{"[store]\nmax_entries = -1\n", `t.toml:2: invalid value: key "store.max_entries"`},
		{"[store]\ntimeout = 5\n", `t.toml:2: invalid value: key "store.timeout"`},
		{"[store]\ntimeout = \"soon\"\n", "t.toml:2"},
		{"[store]\nbakend = \"bolt\"\n", `t.toml:2`},
	}
	for _, tt := range bad {
		_, err := Parse("t.toml", []byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestStoreDSNPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://danemilter:secret@db.example.org/danemilter",
		"postgres://danemilter@db.example.org/danemilter?password=secret",
		"host=db.example.org password=secret",
		"host=db.example.org password = secret",
	} {
		if !dsnPassword(dsn) {
			t.Errorf("%q: password not seen", dsn)
		}
		in := "[store]\nbackend = \"postgres\"\ndsn = \"" + dsn + "\"\n"
		path := filepath.Join(t.TempDir(), "danemilter.toml")
		writeMode(t, path, in, 0o640)
		_, err := Load(path)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), ":3:") || !strings.Contains(err.Error(), "PGPASSFILE") {
			t.Errorf("%q in a 0640 file: %v", dsn, err)
		}
		writeMode(t, path, in, 0o600)
		if _, err := Load(path); err != nil {
			t.Errorf("%q in a 0600 file: %v", dsn, err)
		}
	}
	for _, dsn := range []string{"host=db.example.org user=danemilter", "postgres://danemilter@db.example.org/danemilter?sslmode=verify-full"} {
		if dsnPassword(dsn) {
			t.Errorf("%q: password seen", dsn)
		}
	}
}
