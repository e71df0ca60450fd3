package harvest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danemilter/danemilter/safefile"
)

func openBolt(t *testing.T, o Options) Store {
	t.Helper()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "state", "harvest.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestBolt(t *testing.T) {
	t.Parallel()
	testBehaviour(t, openBolt)
}

func TestBoltFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "harvest.db")
	s, err := OpenBolt(path, Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %o", name, fi.Mode().Perm(), err, want)
		}
	}
	// A second open (as a second process would) waits for the lock, then
	// fails naming the file.
	start := time.Now()
	_, err = OpenBolt(path, Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("second open: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second open took %v", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A file others may write is refused, and so is such a directory.
	if err := os.Chmod(path, 0o620); err != nil {
		t.Fatal(err)
	}
	var se *safefile.Error
	if _, err := OpenBolt(path, Options{}); !errors.As(err, &se) || !strings.Contains(err.Error(), path) {
		t.Errorf("group-writable file: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBolt(path, Options{}); !errors.As(err, &se) {
		t.Errorf("group-writable directory: %v", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBolt(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBoltCrash runs a child process that puts entries in a loop and kills
// it with SIGKILL: the file must open and hold every entry whose Put had
// returned before the kill.
func TestBoltCrash(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "harvest.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltCrashChild$")
	cmd.Env = append(os.Environ(), "HARVEST_CRASH_FILE="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := map[int]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "done ")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(n)
		if err != nil {
			t.Fatal(err)
		}
		done[i] = true
		if len(done) == 200 {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Whatever the child wrote after the 200th line also counts.
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "done "); ok {
			i, _ := strconv.Atoi(n)
			done[i] = true
		}
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("child exited by itself")
	}
	if len(done) < 200 {
		t.Fatalf("child reported only %d puts", len(done))
	}
	s, err := OpenBolt(path, Options{})
	if err != nil {
		t.Fatalf("open after kill -9: %v", err)
	}
	defer s.Close()
	for i := range done {
		if es := getAll(t, s, fmt.Sprintf("crash%d@x.example", i)); len(es) != 1 {
			t.Errorf("entry %d reported done, not in the file", i)
		}
	}
	t.Logf("%d entries reported done, all present", len(done))
}

// TestBoltCrashChild is TestBoltCrash's child process.
func TestBoltCrashChild(t *testing.T) {
	path := os.Getenv("HARVEST_CRASH_FILE")
	if path == "" {
		t.Skip("run by TestBoltCrash")
	}
	s, err := OpenBolt(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cert := newCert(t, "crash@x.example")
	for i := 0; ; i++ {
		addr := fmt.Sprintf("crash%d@x.example", i)
		c := append(append([]byte{}, cert...), byte(i), byte(i>>8)) // a distinct fingerprint each
		if err := s.Put(context.Background(), Entry{Address: addr, Certificate: c}); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(os.Stdout, "done %d\n", i)
	}
}
