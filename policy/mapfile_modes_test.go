package policy

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danemilter/danemilter/safefile"
)

// TestLiveReloadUnsafe is issue 9's attack: the map file becomes writable
// by others and someone turns "encrypt" into "none". The reload refuses the
// file whatever it holds, logs an error naming it, and the last good map
// stays in force.
func TestLiveReloadUnsafe(t *testing.T) {
	tests := []struct {
		name   string
		root   bool
		expose func(t *testing.T, dir, path string) // makes the file writable by someone else
		fix    func(t *testing.T, dir, path string) // undoes expose
	}{
		{"file 0666",
			false,
			func(t *testing.T, _, path string) { chmodT(t, path, 0o666) },
			func(t *testing.T, _, path string) { chmodT(t, path, 0o644) }},
		{"file 0664",
			false,
			func(t *testing.T, _, path string) { chmodT(t, path, 0o664) },
			func(t *testing.T, _, path string) { chmodT(t, path, 0o644) }},
		{"directory 0777",
			false,
			func(t *testing.T, dir, _ string) { chmodT(t, dir, 0o777) },
			func(t *testing.T, dir, _ string) { chmodT(t, dir, 0o755) }},
		{"file another user's",
			true,
			func(t *testing.T, _, path string) { chownT(t, path, 65534) },
			func(t *testing.T, _, path string) { chownT(t, path, 0) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("needs root to give the file to another user")
			}
			dir := filepath.Join(t.TempDir(), "etc")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			chmodT(t, dir, 0o755)
			path := filepath.Join(dir, "policy.map")
			if err := os.WriteFile(path, []byte("partner.example encrypt\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			chmodT(t, path, 0o644)
			var logs bytes.Buffer
			live, err := NewLive(NewTable(LevelDane), path, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}

			tc.expose(t, dir, path)
			// WriteFile keeps the mode and owner of an existing file.
			if err := os.WriteFile(path, []byte("partner.example none\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			changed, err := live.Reload()
			var se *safefile.Error
			if changed || !errors.As(err, &se) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Reload = %v, %v; want a *safefile.Error naming %s", changed, err, path)
			}
			if m := live.Lookup("a@partner.example"); m.Level != LevelEncrypt {
				t.Fatalf("the tampered map is in force: %+v", m)
			}
			live.ReloadAndLog("changed")
			if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "keeping the last good map") || !strings.Contains(l, "file="+path) {
				t.Errorf("log %q: want an error naming the file", l)
			}
			if m := live.Lookup("a@partner.example"); m.Level != LevelEncrypt {
				t.Fatalf("the tampered map is in force: %+v", m)
			}
			// Safe again: the file is read (the operator has checked what
			// it says) and its contents take effect.
			tc.fix(t, dir, path)
			if changed, err := live.Reload(); !changed || err != nil {
				t.Fatalf("Reload after the fix = %v, %v", changed, err)
			}
			if m := live.Lookup("a@partner.example"); m.Level != LevelNone {
				t.Errorf("after the fix: %+v", m)
			}
		})
	}
}

// TestLiveUnsafeAtStart: a daemon does not start with a map file others can
// write.
func TestLiveUnsafeAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.map")
	if err := os.WriteFile(path, []byte("partner.example encrypt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	chmodT(t, path, 0o646)
	if _, err := NewLive(NewTable(LevelDane), path, nil); !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("NewLive: %v; want ErrUnsafe", err)
	}
}

// TestLiveWatchUnsafe: the watcher, not only an explicit reload, refuses a
// map file that became writable by others.
func TestLiveWatchUnsafe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.map")
	if err := os.WriteFile(path, []byte("partner.example encrypt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	chmodT(t, path, 0o644)
	logs := &syncBuffer{}
	live, err := NewLive(NewTable(LevelDane), path, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel(t)
	defer cancel()
	go live.Watch(ctx, 10*time.Millisecond)
	chmodT(t, path, 0o666)
	if err := os.WriteFile(path, []byte("partner.example none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "keeping the last good map") {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged; log: %s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if m := live.Lookup("a@partner.example"); m.Level != LevelEncrypt {
		t.Errorf("the tampered map is in force: %+v", m)
	}
	if !strings.Contains(logs.String(), path) || !strings.Contains(logs.String(), "mode 0666") {
		t.Errorf("log does not name the file and its mode: %s", logs.String())
	}
}

func chmodT(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chownT(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for the watcher's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLiveWatchChmodAlone: a map refused for its mode is loaded once the
// operator fixes the mode, without a SIGHUP: a chmod changes neither size nor
// time, so the watcher compares mode and owner too.
func TestLiveWatchChmodAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.map")
	if err := os.WriteFile(path, []byte("partner.example encrypt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	chmodT(t, path, 0o644)
	logs := &syncBuffer{}
	live, err := NewLive(NewTable(LevelDane), path, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel(t)
	defer cancel()
	go live.Watch(ctx, 10*time.Millisecond)
	// The operator's edit, written group-writable by mistake: refused.
	if err := os.WriteFile(path, []byte("partner.example none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	chmodT(t, path, 0o664)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "keeping the last good map") {
		if time.Now().After(deadline) {
			t.Fatalf("the group-writable map was not refused; log: %s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if m := live.Lookup("a@partner.example"); m.Level != LevelEncrypt {
		t.Fatalf("the refused map is in force: %+v", m)
	}
	// Fixed with chmod alone: size and time stay, the new map loads.
	chmodT(t, path, 0o644)
	for live.Lookup("a@partner.example").Level != LevelNone {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("the map is not loaded after chmod 0644; log: %s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
