package policy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/danemilter/danemilter/safefile"
)

// A policy map file holds one entry a line, like a Postfix lookup table:
//
//	# comment
//	partner.example        encrypt
//	.partner.example       encrypt      # every subdomain
//	ceo@bank.example       encrypt
//	lab.example            may dry-run
//
// Blank lines and everything after "#" are ignored. Keys are those of
// Table.Set; values those of ParseEntry.

// LineError is one bad line of a map file.
type LineError struct {
	Line int
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// MapError lists every bad line of a map file; nothing of the file is used.
type MapError struct {
	File  string
	Lines []LineError
}

func (e *MapError) Error() string {
	var b strings.Builder
	for i, l := range e.Lines {
		if i > 0 {
			b.WriteString("; ")
		}
		if i == 10 {
			fmt.Fprintf(&b, "and %d more", len(e.Lines)-10)
			break
		}
		fmt.Fprintf(&b, "%s:%d: %v", e.File, l.Line, l.Err)
	}
	return "policy map: " + b.String()
}

// maxMapLine bounds a map file's line length.
const maxMapLine = 4096

// ParseMap reads a map file into t, which should be a clone of the table of
// the configuration file: a key already in t is an error (one key, one
// place). name is used in errors. On any bad line it returns a *MapError
// listing all of them, and t must be discarded.
func ParseMap(name string, r io.Reader, t *Table) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), maxMapLine)
	merr := &MapError{File: name}
	seen := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			merr.Lines = append(merr.Lines, LineError{n, fmt.Errorf("%q: want \"key level [dry-run]\"", strings.TrimSpace(line))})
			continue
		}
		e, err := ParseEntry(strings.Join(f[1:], " "))
		if err != nil {
			merr.Lines = append(merr.Lines, LineError{n, err})
			continue
		}
		k, err := NormalizeKey(f[0])
		if err != nil {
			merr.Lines = append(merr.Lines, LineError{n, err})
			continue
		}
		if prev, ok := seen[k]; ok {
			merr.Lines = append(merr.Lines, LineError{n, fmt.Errorf("%q already set on line %d", f[0], prev)})
			continue
		}
		if t.Has(k) {
			merr.Lines = append(merr.Lines, LineError{n, fmt.Errorf("%q is also set in the configuration file", f[0])})
			continue
		}
		seen[k] = n
		t.put(k, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			merr.Lines = append(merr.Lines, LineError{n + 1, fmt.Errorf("line longer than %d bytes", maxMapLine)})
		} else {
			return fmt.Errorf("policy map: %s: %w", name, err)
		}
	}
	if len(merr.Lines) > 0 {
		return merr
	}
	return nil
}

// Live is a Source whose entries come from the configuration file's table
// plus a map file that is reloaded when it changes. A map file with errors is
// reported and not used: the last good table stays in force. Live is safe for
// concurrent use.
type Live struct {
	base *Table
	path string
	log  *slog.Logger

	cur atomic.Pointer[Table]

	mu     sync.Mutex // serializes reloads
	sum    [32]byte
	loaded fileStamp // what Watch last saw and handed to Reload
}

// fileStamp is what Watch compares: size and time catch a new content, mode
// and owner a chmod or chown (which may make a refused file acceptable, or an
// accepted one unsafe) that leaves size and time alone.
type fileStamp struct {
	size     int64
	mod      time.Time
	mode     os.FileMode
	uid, gid uint32
}

func stampOf(fi os.FileInfo) fileStamp {
	s := fileStamp{size: fi.Size(), mod: fi.ModTime(), mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.uid, s.gid = st.Uid, st.Gid
	}
	return s
}

// NewLive loads path (when not "") over base. An error in the map file at
// start is returned: a daemon should not start with a policy other than the
// one written.
func NewLive(base *Table, path string, logger *slog.Logger) (*Live, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Live{base: base, path: path, log: logger}
	l.cur.Store(base)
	if path == "" {
		return l, nil
	}
	if _, err := l.Reload(); err != nil {
		return nil, err
	}
	return l, nil
}

// Lookup implements Source with the table in force.
func (l *Live) Lookup(addr string) Match { return l.cur.Load().Lookup(addr) }

// Table returns the table in force.
func (l *Live) Table() *Table { return l.cur.Load() }

// Reload reads the map file again if its contents changed. It reports whether
// a new table is in force. On error the old table stays. A file that someone
// other than root or the daemon's user could have written is refused with an
// error wrapping a *safefile.Error (safefile.ErrUnsafe), whatever it holds.
func (l *Live) Reload() (bool, error) {
	if l.path == "" {
		return false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := safefile.ReadFile(l.path)
	if err != nil {
		return false, fmt.Errorf("policy map: %w", err)
	}
	sum := sha256.Sum256(b)
	if sum == l.sum {
		return false, nil
	}
	t := l.base.Clone()
	if err := ParseMap(l.path, bytes.NewReader(b), t); err != nil {
		l.sum = sum // do not report the same bad file again and again
		return false, err
	}
	l.sum = sum
	l.cur.Store(t)
	return true, nil
}

// Watch checks the map file every interval until ctx ends and reloads it
// when its size, time, mode or owner changed and then stayed the same for one more
// interval (so that a file still being written is not read half-way; writing
// a new file and renaming it over the old one is better still), and logs the
// outcome.
func (l *Live) Watch(ctx context.Context, interval time.Duration) {
	if l.path == "" {
		return
	}
	tk := time.NewTicker(interval)
	defer tk.Stop()
	var prev fileStamp
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			fi, err := os.Stat(l.path)
			if err != nil {
				l.log.Error("policy map file unreadable; keeping the last good map", "file", l.path, "err", err)
				continue
			}
			cur := stampOf(fi)
			if cur != prev {
				prev = cur // changed: wait until it is stable
				continue
			}
			l.mu.Lock()
			loaded := cur == l.loaded
			l.loaded = cur
			l.mu.Unlock()
			if !loaded {
				l.ReloadAndLog("changed")
			}
		}
	}
}

// ReloadAndLog reloads and logs what happened; why is "changed" or "SIGHUP".
func (l *Live) ReloadAndLog(why string) {
	changed, err := l.Reload()
	switch {
	case errors.Is(err, safefile.ErrUnsafe):
		l.log.Error("policy map file may have been written by someone else (owner or mode); keeping the last good map", "file", l.path, "trigger", why, "err", err)
	case err != nil:
		l.log.Error("policy map file has errors; keeping the last good map", "file", l.path, "trigger", why, "err", err)
	case changed:
		l.log.Info("policy map reloaded", "file", l.path, "trigger", why, "entries", l.cur.Load().Len())
	case why == "SIGHUP":
		l.log.Info("policy map unchanged", "file", l.path, "trigger", why, "entries", l.cur.Load().Len())
	default:
		l.log.Debug("policy map unchanged", "file", l.path, "trigger", why)
	}
}
