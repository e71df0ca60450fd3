package harvest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

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
	// A second open (as the CLI's beside the daemon) succeeds: the file
	// is not kept open between operations.
	s2, err := OpenBolt(path, Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	// One that keeps the file open (as a bbolt tool would) makes the
	// open wait for the lock, then fail naming the file.
	held := holdBolt(t, path, false)
	start := time.Now()
	_, err = OpenBolt(path, Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("open while held: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("open while held took %v", d)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Bolt{s, s2} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(context.Background(), "x@y.example"); err == nil {
		t.Error("Get after Close: no error")
	}
	// A file removed under a running store is an error, not a new empty
	// store.
	s, err = OpenBolt(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "x@y.example"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get of a removed file: %v", err)
	}
	if err := s.Put(context.Background(), Entry{Address: "x@y.example", Certificate: []byte{1}}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Put to a removed file: %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("Put made the file again")
	}
	if err := os.Rename(path+".moved", path); err != nil {
		t.Fatal(err)
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

// holdBolt opens path with bbolt itself and keeps it open, holding its
// lock (exclusive, or shared when readOnly) until the returned DB is
// closed: a program that does not take turns.
func holdBolt(t *testing.T, path string, readOnly bool) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: readOnly})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestBoltShared opens one file twice, as the daemon and the store
// command do, and uses both in turn and at once: every call succeeds and
// each sees what the other wrote.
func TestBoltShared(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "harvest.db")
	var stores [2]*Bolt
	for i := range stores {
		s, err := OpenBolt(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s
		t.Cleanup(func() { s.Close() })
	}
	daemon, cli := stores[0], stores[1]
	ctx := context.Background()
	cert := newCert(t, "shared@x.example")
	certOf := func(i int) []byte { return append(append([]byte{}, cert...), byte(i), byte(i>>8)) }

	// In turn.
	if err := daemon.Put(ctx, Entry{Address: "a@x.example", Certificate: certOf(0)}); err != nil {
		t.Fatal(err)
	}
	if es, err := cli.Get(ctx, "a@x.example"); err != nil || len(es) != 1 {
		t.Fatalf("cli Get: %v %d", err, len(es))
	}
	if n, err := cli.Forget(ctx, "a@x.example"); err != nil || n != 1 {
		t.Fatalf("cli Forget: %v %d", err, n)
	}
	if es, err := daemon.Get(ctx, "a@x.example"); err != nil || len(es) != 0 {
		t.Fatalf("daemon Get after Forget: %v %d", err, len(es))
	}

	// At once: the daemon harvests and looks up while the command lists
	// and forgets.
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := range n {
			if err := daemon.Put(ctx, Entry{Address: fmt.Sprintf("d%d@x.example", i), Certificate: certOf(i)}); err != nil {
				errs <- fmt.Errorf("daemon Put %d: %w", i, err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range n {
			if _, err := daemon.Get(ctx, fmt.Sprintf("d%d@x.example", i)); err != nil {
				errs <- fmt.Errorf("daemon Get %d: %w", i, err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range n {
			if err := cli.Put(ctx, Entry{Address: fmt.Sprintf("c%d@x.example", i), Certificate: certOf(1000 + i)}); err != nil {
				errs <- fmt.Errorf("cli Put %d: %w", i, err)
			}
			if i%2 == 1 {
				if _, err := cli.Forget(ctx, fmt.Sprintf("c%d@x.example", i)); err != nil {
					errs <- fmt.Errorf("cli Forget %d: %w", i, err)
				}
			}
			if i%10 == 0 {
				if err := cli.List(ctx, func(Entry) error { return nil }); err != nil {
					errs <- fmt.Errorf("cli List: %w", err)
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, s := range stores {
		got := 0
		if err := s.List(ctx, func(Entry) error { got++; return nil }); err != nil {
			t.Fatal(err)
		}
		if got != n+n/2 {
			t.Errorf("listed %d entries, want %d", got, n+n/2)
		}
	}
}

// TestBoltListBatches lists more than one batch while entries are put
// and forgotten from f: each entry comes once, in order.
func TestBoltListBatches(t *testing.T) {
	t.Parallel()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "harvest.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	cert := newCert(t, "list@x.example")
	const n = 2*listBatch + 7
	for i := range n {
		c := append(append([]byte{}, cert...), byte(i), byte(i>>8))
		if err := s.Put(ctx, Entry{Address: fmt.Sprintf("l%04d@x.example", i), Certificate: c}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err = s.List(ctx, func(e Entry) error {
		got = append(got, e.Address)
		// The file is not held while f runs: the store may be used.
		_, err := s.Forget(ctx, e.Address)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || !slices.IsSorted(got) {
		t.Errorf("listed %d entries (sorted %v), want %d", len(got), slices.IsSorted(got), n)
	}
	if es := getAll(t, s, "l0000@x.example"); len(es) != 0 {
		t.Errorf("forgotten from f, still there: %d", len(es))
	}
}

// TestBoltLocked: a program that keeps the file open longer than the
// timeout makes the store's calls fail with ErrLocked within about the
// timeout, which the daemon reads as "not known" (Cached does not
// remember it); they succeed again once it lets go. A shared holder keeps
// out only the writes.
func TestBoltLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "harvest.db")
	const timeout = 200 * time.Millisecond
	s, err := OpenBolt(path, Options{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	cert := newCert(t, "locked@x.example")
	if err := s.Put(ctx, Entry{Address: "a@x.example", Certificate: cert}); err != nil {
		t.Fatal(err)
	}
	cached := NewCached(s, 0, 0)

	held := holdBolt(t, path, false)
	quick := func(what string, err error, start time.Time) {
		t.Helper()
		if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s while held: %v", what, err)
		}
		if d := time.Since(start); d > timeout+time.Second {
			t.Errorf("%s took %v, timeout %v", what, d, timeout)
		}
	}
	start := time.Now()
	_, err = cached.Get(ctx, "a@x.example")
	quick("Get", err, start)
	start = time.Now()
	quick("Put", s.Put(ctx, Entry{Address: "b@x.example", Certificate: cert}), start)
	start = time.Now()
	quick("List", s.List(ctx, func(Entry) error { return nil }), start)
	// A caller's deadline shorter than the timeout bounds the wait.
	dctx, cancel := context.WithTimeout(ctx, 60*time.Millisecond)
	start = time.Now()
	_, err = s.Get(dctx, "a@x.example")
	cancel()
	if err == nil || time.Since(start) > timeout {
		t.Errorf("Get with a 60ms deadline: %v after %v", err, time.Since(start))
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	// The failure was not remembered: the entry is known again at once.
	if es, err := cached.Get(ctx, "a@x.example"); err != nil || len(es) != 1 {
		t.Errorf("Get after release: %v %d", err, len(es))
	}

	// A reader holding a shared lock (a read-only bbolt tool) lets Get
	// through and keeps Put out.
	shared := holdBolt(t, path, true)
	if es, err := s.Get(ctx, "a@x.example"); err != nil || len(es) != 1 {
		t.Errorf("Get beside a shared holder: %v %d", err, len(es))
	}
	start = time.Now()
	quick("Put beside a shared holder", s.Put(ctx, Entry{Address: "b@x.example", Certificate: cert}), start)
	if err := shared.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, Entry{Address: "b@x.example", Certificate: cert}); err != nil {
		t.Errorf("Put after release: %v", err)
	}
}
