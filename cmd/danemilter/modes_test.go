package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnsafeFilesRefused: check-config and serve refuse the same files,
// with the same error naming the file (issue 9, item 5).
func TestUnsafeFilesRefused(t *testing.T) {
	tests := []struct {
		name  string
		root  bool
		setup func(t *testing.T, dir, cfg, mapFile, spool string) string // returns what the error must name
		want  string
	}{
		{"config world-writable", false, func(t *testing.T, _, cfg, _, _ string) string {
			chmodFile(t, cfg, 0o666)
			return cfg
		}, "writable by group or others (mode 0666)"},
		{"config another user's", true, func(t *testing.T, _, cfg, _, _ string) string {
			if err := os.Chown(cfg, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return cfg
		}, "owned by uid 65534"},
		{"map world-writable", false, func(t *testing.T, _, _, mapFile, _ string) string {
			chmodFile(t, mapFile, 0o646)
			return mapFile
		}, `key "policy.map_file"`},
		{"spool world-writable", false, func(t *testing.T, _, _, _, spool string) string {
			if err := os.Mkdir(spool, 0o700); err != nil {
				t.Fatal(err)
			}
			chmodFile(t, spool, 0o777)
			return spool
		}, `key "spool_dir"`},
		{"spool a link", false, func(t *testing.T, dir, _, _, spool string) string {
			real := filepath.Join(dir, "real-spool")
			if err := os.Mkdir(real, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, spool); err != nil {
				t.Fatal(err)
			}
			return spool
		}, "symbolic link"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("needs root to give the file to another user")
			}
			dir, cfg, mapFile, spool := writeModesConfig(t)
			named := tc.setup(t, dir, cfg, mapFile, spool)
			for _, cmd := range []string{"check-config", "serve"} {
				var out, errb bytes.Buffer
				code := run([]string{cmd, "--config", cfg}, &out, &errb)
				if code != 2 || !strings.Contains(errb.String(), named) || !strings.Contains(errb.String(), tc.want) {
					t.Errorf("%s: exit %d, stderr %q; want 2 and an error naming %s with %q", cmd, code, errb.String(), named, tc.want)
				}
				if out.Len() != 0 {
					t.Errorf("%s: printed %q", cmd, out.String())
				}
			}
		})
	}
}

// TestCheckConfigSpoolMissing: a missing spool_dir is not an error; the
// output says serve will make it.
func TestCheckConfigSpoolMissing(t *testing.T) {
	_, cfg, _, spool := writeModesConfig(t)
	var out, errb bytes.Buffer
	if code := run([]string{"check-config", "--config", cfg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "spool_dir "+spool+" does not exist yet; serve makes it with mode 0700") {
		t.Errorf("output %s", out.String())
	}
	if _, err := os.Lstat(spool); !os.IsNotExist(err) {
		t.Errorf("check-config made the spool directory: %v", err)
	}
}

// TestServeMakesSpoolDir: serve makes a missing spool_dir with mode 0700,
// whatever the umask.
func TestServeMakesSpoolDir(t *testing.T) {
	bin := buildDaemon(t)
	dir, cfg, _, spool := writeModesConfig(t)
	sock := filepath.Join(dir, "m.sock")
	conf := fmt.Sprintf("listen = \"unix:%s\"\nspool_dir = %q\n[dns]\nresolvers = [\"127.0.0.1:%d\"]\n[policy]\ndefault = \"none\"\n[store]\npath = %q\n", sock, spool, freePort(t), filepath.Join(dir, "harvest.db"))
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command("/bin/sh", "-c", "umask 0 && exec \"$0\" serve --config \"$1\"", bin, cfg)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("daemon exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket never appeared:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	fi, err := os.Lstat(spool)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("spool_dir %v, %v; want a directory with mode 0700", fi, err)
	}
}

// writeModesConfig writes dir/etc/danemilter.toml naming dir/etc/policy.map
// and dir/etc/spool (not made), all with modes that pass.
func writeModesConfig(t *testing.T) (dir, cfg, mapFile, spool string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chmodFile(t, dir, 0o755)
	cfg, mapFile, spool = filepath.Join(dir, "danemilter.toml"), filepath.Join(dir, "policy.map"), filepath.Join(dir, "spool")
	if err := os.WriteFile(mapFile, []byte("partner.example encrypt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	chmodFile(t, mapFile, 0o644)
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "spool_dir = %q\n[policy]\nmap_file = %q\n", spool, mapFile), 0o644); err != nil {
		t.Fatal(err)
	}
	chmodFile(t, cfg, 0o644)
	return dir, cfg, mapFile, spool
}

func chmodFile(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
