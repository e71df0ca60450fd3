package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danemilter/danemilter/safefile"
)

// TestLoadFileModes: the configuration file and the files and directories
// it names are refused when someone other than root or the daemon's user
// could have written them (issue 9: a world-writable map file let a local
// user turn "encrypt" into "none").
func TestLoadFileModes(t *testing.T) {
	const nobody = 65534
	type files struct{ dir, config, mapFile, spool string }
	tests := []struct {
		name  string
		root  bool                        // needs root (chown)
		setup func(t *testing.T, f files) // breaks something
		key   string                      // named in the error; "" = only the file
		path  func(f files) string        // *safefile.Error.Path; nil = accepted
	}{
		{name: "all 0644 and 0700", setup: func(*testing.T, files) {}},
		{name: "config 0600", setup: func(t *testing.T, f files) { mustChmod(t, f.config, 0o600) }},
		{name: "config world-writable", setup: func(t *testing.T, f files) { mustChmod(t, f.config, 0o666) },
			path: func(f files) string { return f.config }},
		{name: "config group-writable", setup: func(t *testing.T, f files) { mustChmod(t, f.config, 0o664) },
			path: func(f files) string { return f.config }},
		{name: "config another user's", root: true, setup: func(t *testing.T, f files) { mustChown(t, f.config, nobody) },
			path: func(f files) string { return f.config }},
		{name: "config directory world-writable", setup: func(t *testing.T, f files) { mustChmod(t, f.dir, 0o777) },
			path: func(f files) string { return f.dir }},
		{name: "map world-writable", setup: func(t *testing.T, f files) { mustChmod(t, f.mapFile, 0o666) },
			key: "policy.map_file", path: func(f files) string { return f.mapFile }},
		{name: "map another user's", root: true, setup: func(t *testing.T, f files) { mustChown(t, f.mapFile, nobody) },
			key: "policy.map_file", path: func(f files) string { return f.mapFile }},
		{name: "map a link to a world-writable file", setup: func(t *testing.T, f files) {
			target := filepath.Join(f.dir, "real.map")
			if err := os.Rename(f.mapFile, target); err != nil {
				t.Fatal(err)
			}
			mustChmod(t, target, 0o666)
			if err := os.Symlink(target, f.mapFile); err != nil {
				t.Fatal(err)
			}
		}, key: "policy.map_file", path: func(f files) string { return filepath.Join(f.dir, "real.map") }},
		{name: "map a link to a good file", setup: func(t *testing.T, f files) {
			target := filepath.Join(f.dir, "real.map")
			if err := os.Rename(f.mapFile, target); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, f.mapFile); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "spool world-writable", setup: func(t *testing.T, f files) { mustChmod(t, f.spool, 0o777) },
			key: "spool_dir", path: func(f files) string { return f.spool }},
		{name: "spool sticky world-writable", setup: func(t *testing.T, f files) { mustChmod(t, f.spool, 0o777|fs.ModeSticky) },
			key: "spool_dir", path: func(f files) string { return f.spool }},
		{name: "spool group-writable", setup: func(t *testing.T, f files) { mustChmod(t, f.spool, 0o770) },
			key: "spool_dir", path: func(f files) string { return f.spool }},
		{name: "spool another user's", root: true, setup: func(t *testing.T, f files) { mustChown(t, f.spool, nobody) },
			key: "spool_dir", path: func(f files) string { return f.spool }},
		{name: "spool a link", setup: func(t *testing.T, f files) {
			target := filepath.Join(f.dir, "real-spool")
			if err := os.Rename(f.spool, target); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, f.spool); err != nil {
				t.Fatal(err)
			}
		}, key: "spool_dir", path: func(f files) string { return f.spool }},
		// Missing is fine (serve makes it), if it can be made safely.
		{name: "spool missing", setup: func(t *testing.T, f files) {
			if err := os.Remove(f.spool); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("needs root to give files to another user")
			}
			dir := filepath.Join(t.TempDir(), "etc")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			mustChmod(t, dir, 0o755)
			f := files{dir: dir, config: filepath.Join(dir, "danemilter.toml"), mapFile: filepath.Join(dir, "policy.map"), spool: filepath.Join(dir, "spool")}
			if err := os.Mkdir(f.spool, 0o700); err != nil {
				t.Fatal(err)
			}
			writeMode(t, f.mapFile, "partner.example encrypt\n", 0o644)
			writeMode(t, f.config, "spool_dir = \""+f.spool+"\"\n\n[policy]\nmap_file = \""+f.mapFile+"\"\n", 0o644)
			tc.setup(t, f)

			c, err := Load(f.config)
			if tc.path == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if c.Policy.MapFile != f.mapFile {
					t.Errorf("map_file %q", c.Policy.MapFile)
				}
				return
			}
			var se *safefile.Error
			if !errors.As(err, &se) || !errors.Is(err, safefile.ErrUnsafe) {
				t.Fatalf("Load: %v; want a *safefile.Error", err)
			}
			if se.Path != tc.path(f) {
				t.Errorf("error about %q, want %q: %v", se.Path, tc.path(f), err)
			}
			msg := err.Error()
			if tc.key != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(msg, `key "`+tc.key+`"`)) {
				t.Errorf("error does not name key %s: %v", tc.key, err)
			}
			if !strings.Contains(msg, f.config) || !strings.Contains(msg, tc.path(f)) {
				t.Errorf("error does not name the configuration file and %s: %v", tc.path(f), err)
			}
		})
	}
}

func TestLoadSpoolMissingParent(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	writeMode(t, cfg, "spool_dir = \""+filepath.Join(dir, "no", "spool")+"\"\n", 0o644)
	if _, err := Load(cfg); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "spool_dir") {
		t.Errorf("Load: %v; want a spool_dir error wrapping fs.ErrNotExist", err)
	}
}

func TestLoadPKIXRootsMode(t *testing.T) {
	dir := t.TempDir()
	roots := filepath.Join(dir, "roots.pem")
	writeMode(t, roots, "not even PEM\n", 0o666)
	cfg := filepath.Join(dir, "c.toml")
	writeMode(t, cfg, "[smime]\npkix_roots = \""+roots+"\"\n", 0o644)
	// The mode is refused before the contents are looked at.
	_, err := Load(cfg)
	if !errors.Is(err, safefile.ErrUnsafe) || !strings.Contains(err.Error(), "smime.pkix_roots") || !strings.Contains(err.Error(), "c.toml:2") {
		t.Errorf("Load: %v; want ErrUnsafe for smime.pkix_roots at line 2", err)
	}
}

func mustChmod(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func mustChown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// writeMode writes a file with exactly mode, whatever the umask.
func writeMode(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	mustChmod(t, path, mode)
}

// sampleConfig copies deploy/danemilter.toml into the test's own directory
// with mode 0644, so that the file checks judge the sample and not the
// umask or owner of the checkout (git archive writes 0664, a CI checkout may
// belong to another user than the one running the tests).
func sampleConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "danemilter.toml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "danemilter.toml")
	writeMode(t, path, string(b), 0o644)
	return path
}
