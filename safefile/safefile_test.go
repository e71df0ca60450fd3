package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// other is the uid that stands for another local user (nobody).
const other = 65534

// needRoot skips a test that must chown to another user.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
}

func chmod(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string, uid, gid int) {
	t.Helper()
	if err := os.Lchown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// layout is base/dir/file plus base/link -> dir/file; base is the test's
// own temporary directory (0700 under the system's sticky temp directory).
type layout struct {
	base, dir, file, link string
}

func newLayout(t *testing.T) layout {
	t.Helper()
	base := t.TempDir()
	l := layout{base: base, dir: filepath.Join(base, "dir"), link: filepath.Join(base, "link")}
	l.file = filepath.Join(l.dir, "file")
	if err := os.Mkdir(l.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chmod(t, l.dir, 0o755) // whatever the umask
	if err := os.WriteFile(l.file, []byte("partner.example encrypt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	chmod(t, l.file, 0o644)
	if err := os.Symlink(l.file, l.link); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestReadFile(t *testing.T) {
	tests := []struct {
		name  string
		root  bool                         // needs root
		setup func(t *testing.T, l layout) // changes the layout
		open  func(l layout) string        // what to read; default l.file
		bad   func(l layout) string        // the Path of the *Error; "" = accepted
		want  string                       // in the error text
	}{
		{name: "0644 root", setup: func(*testing.T, layout) {}},
		{name: "0600", setup: func(t *testing.T, l layout) { chmod(t, l.file, 0o600) }},
		{name: "0444", setup: func(t *testing.T, l layout) { chmod(t, l.file, 0o444) }},
		{name: "0666 world-writable", setup: func(t *testing.T, l layout) { chmod(t, l.file, 0o666) },
			bad: func(l layout) string { return l.file }, want: "writable by group or others (mode 0666)"},
		{name: "0646 other-writable", setup: func(t *testing.T, l layout) { chmod(t, l.file, 0o646) },
			bad: func(l layout) string { return l.file }, want: "mode 0646"},
		{name: "0664 group-writable", setup: func(t *testing.T, l layout) { chmod(t, l.file, 0o664) },
			bad: func(l layout) string { return l.file }, want: "mode 0664"},
		{name: "owned by another user", root: true, setup: func(t *testing.T, l layout) { chown(t, l.file, other, 0) },
			bad: func(l layout) string { return l.file }, want: "owned by uid 65534"},
		{name: "root's, group another's, not group-writable", root: true, setup: func(t *testing.T, l layout) { chown(t, l.file, 0, other) }},
		{name: "directory 0777", setup: func(t *testing.T, l layout) { chmod(t, l.dir, 0o777) },
			bad: func(l layout) string { return l.dir }, want: "(directory) is writable by group or others (mode 0777)"},
		{name: "directory 0775", setup: func(t *testing.T, l layout) { chmod(t, l.dir, 0o775) },
			bad: func(l layout) string { return l.dir }, want: "mode 0775"},
		{name: "directory 1777 (sticky, like /tmp)", setup: func(t *testing.T, l layout) { chmod(t, l.dir, 0o777|fs.ModeSticky) }},
		{name: "directory owned by another user", root: true, setup: func(t *testing.T, l layout) { chown(t, l.dir, other, other) },
			bad: func(l layout) string { return l.dir }, want: "owned by uid 65534"},
		{name: "grandparent 0777", setup: func(t *testing.T, l layout) { chmod(t, l.base, 0o777) },
			bad: func(l layout) string { return l.base }, want: "mode 0777"},
		{name: "link to a good file", setup: func(*testing.T, layout) {},
			open: func(l layout) string { return l.link }},
		{name: "link to a world-writable file", setup: func(t *testing.T, l layout) { chmod(t, l.file, 0o666) },
			open: func(l layout) string { return l.link }, bad: func(l layout) string { return l.file }, want: "mode 0666"},
		{name: "link to another user's file", root: true, setup: func(t *testing.T, l layout) { chown(t, l.file, other, 0) },
			open: func(l layout) string { return l.link }, bad: func(l layout) string { return l.file }, want: "uid 65534"},
		// The link's directory is writable by others: the link could be
		// pointed elsewhere even though its target is fine.
		{name: "link in a world-writable directory", setup: func(t *testing.T, l layout) {
			w := filepath.Join(l.base, "w")
			if err := os.Mkdir(w, 0o777); err != nil {
				t.Fatal(err)
			}
			chmod(t, w, 0o777)
			if err := os.Symlink(l.file, filepath.Join(w, "link")); err != nil {
				t.Fatal(err)
			}
		}, open: func(l layout) string { return filepath.Join(l.base, "w", "link") },
			bad: func(l layout) string { return filepath.Join(l.base, "w") }, want: "mode 0777"},
		// A linked directory on the way: where the file really is counts.
		{name: "through a link to a world-writable directory", setup: func(t *testing.T, l layout) {
			chmod(t, l.dir, 0o777)
			if err := os.Symlink(l.dir, filepath.Join(l.base, "dirlink")); err != nil {
				t.Fatal(err)
			}
		}, open: func(l layout) string { return filepath.Join(l.base, "dirlink", "file") },
			bad: func(l layout) string { return l.dir }, want: "mode 0777"},
		{name: "a directory", setup: func(*testing.T, layout) {},
			open: func(l layout) string { return l.dir }, bad: func(l layout) string { return l.dir }, want: "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				needRoot(t)
			}
			l := newLayout(t)
			tc.setup(t, l)
			name := l.file
			if tc.open != nil {
				name = tc.open(l)
			}
			b, err := ReadFile(name)
			cerr := Check(name)
			if tc.bad == nil {
				if err != nil || cerr != nil {
					t.Fatalf("ReadFile: %v; Check: %v; want accepted", err, cerr)
				}
				if string(b) != "partner.example encrypt\n" {
					t.Errorf("read %q", b)
				}
				return
			}
			for _, err := range []error{err, cerr} {
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, ErrUnsafe) {
					t.Fatalf("err %v, want *Error wrapping ErrUnsafe", err)
				}
				if e.File != name || e.Path != tc.bad(l) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), name) {
					t.Errorf("err %q (File %q, Path %q); want File %q, Path %q, text with %q", err, e.File, e.Path, name, tc.bad(l), tc.want)
				}
			}
			if b != nil {
				t.Errorf("ReadFile returned %q with the error", b)
			}
		})
	}
}

func TestReadFileMissing(t *testing.T) {
	_, err := ReadFile(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrUnsafe) {
		t.Errorf("err %v, want fs.ErrNotExist", err)
	}
}

func TestCheckDir(t *testing.T) {
	tests := []struct {
		name  string
		root  bool
		setup func(t *testing.T, l layout) string // returns the directory to check
		want  string                              // in the error; "" = accepted
	}{
		{name: "0700", setup: func(t *testing.T, l layout) string { chmod(t, l.dir, 0o700); return l.dir }},
		{name: "0755", setup: func(t *testing.T, l layout) string { return l.dir }},
		{name: "0770", setup: func(t *testing.T, l layout) string { chmod(t, l.dir, 0o770); return l.dir }, want: "mode 0770"},
		{name: "0777", setup: func(t *testing.T, l layout) string { chmod(t, l.dir, 0o777); return l.dir }, want: "mode 0777"},
		// Sticky is fine above, not for the spool itself: others could
		// still fill it, and read what its mode lets them.
		{name: "1777", setup: func(t *testing.T, l layout) string { chmod(t, l.dir, 0o777|fs.ModeSticky); return l.dir }, want: "mode 1777"},
		{name: "another user's", root: true, setup: func(t *testing.T, l layout) string { chown(t, l.dir, other, other); return l.dir }, want: "owned by uid 65534"},
		{name: "a link to a good directory", setup: func(t *testing.T, l layout) string {
			p := filepath.Join(l.base, "dirlink")
			if err := os.Symlink(l.dir, p); err != nil {
				t.Fatal(err)
			}
			return p
		}, want: "symbolic link"},
		{name: "a file", setup: func(t *testing.T, l layout) string { return l.file }, want: "not a directory"},
		{name: "parent world-writable", setup: func(t *testing.T, l layout) string { chmod(t, l.base, 0o777); return l.dir }, want: "mode 0777"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				needRoot(t)
			}
			l := newLayout(t)
			dir := tc.setup(t, l)
			err := CheckDir(dir)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckDir: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckDir: %v; want ErrUnsafe with %q", err, tc.want)
			}
		})
	}
}

func TestMakeDir(t *testing.T) {
	t.Run("made 0700 whatever the umask", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "spool")
		old := syscall.Umask(0)
		defer syscall.Umask(old)
		if err := MakeDir(dir); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Fatalf("made %v, %v; want a 0700 directory", fi.Mode(), err)
		}
		if err := MakeDir(dir); err != nil { // there already: checked only
			t.Errorf("second MakeDir: %v", err)
		}
	})
	t.Run("existing 0777 refused, not changed", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "spool")
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		chmod(t, dir, 0o777)
		if err := MakeDir(dir); !errors.Is(err, ErrUnsafe) {
			t.Errorf("err %v, want ErrUnsafe", err)
		}
		if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o777 {
			t.Errorf("mode changed to %v", fi.Mode())
		}
	})
	t.Run("symlink refused", func(t *testing.T) {
		base := t.TempDir()
		real := filepath.Join(base, "real")
		if err := os.Mkdir(real, 0o700); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(base, "spool")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		if err := MakeDir(link); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("err %v, want ErrUnsafe for a link", err)
		}
	})
	t.Run("dangling symlink refused, nothing made", func(t *testing.T) {
		base := t.TempDir()
		target := filepath.Join(base, "elsewhere")
		link := filepath.Join(base, "spool")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := MakeDir(link); !errors.Is(err, ErrUnsafe) {
			t.Errorf("err %v, want ErrUnsafe", err)
		}
		if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the link's target was made: %v", err)
		}
	})
	t.Run("parent missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "no", "spool")
		if err := MakeDir(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("parent world-writable: not made", func(t *testing.T) {
		base := t.TempDir()
		chmod(t, base, 0o777)
		dir := filepath.Join(base, "spool")
		if err := MakeDir(dir); !errors.Is(err, ErrUnsafe) {
			t.Errorf("err %v, want ErrUnsafe", err)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("made in an unsafe parent: %v", err)
		}
	})
	t.Run("in a sticky parent", func(t *testing.T) {
		base := t.TempDir()
		chmod(t, base, 0o777|fs.ModeSticky)
		if err := MakeDir(filepath.Join(base, "spool")); err != nil {
			t.Error(err)
		}
	})
	t.Run("another user's, in a sticky parent", func(t *testing.T) {
		needRoot(t)
		base := t.TempDir()
		chmod(t, base, 0o777|fs.ModeSticky)
		dir := filepath.Join(base, "spool")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		chown(t, dir, other, other) // made first by someone else
		if err := MakeDir(dir); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "uid 65534") {
			t.Errorf("err %v, want ErrUnsafe naming uid 65534", err)
		}
	})
}
