package harvest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/danemilter/danemilter/safefile"
)

// The bbolt file holds three buckets:
//
//	entries: address 0x00 fingerprint -> boltRecord (JSON)
//	seen:    LastSeen (8 bytes, big-endian, ordered) address 0x00 fingerprint -> empty
//	meta:    "count" -> number of entries (8 bytes, big-endian)
//
// "seen" orders the entries by LastSeen for Expire and for dropping the
// least recently seen past MaxEntries without reading every entry.
var (
	bucketEntries = []byte("entries")
	bucketSeen    = []byte("seen")
	bucketMeta    = []byte("meta")
	keyCount      = []byte("count")
)

// boltRecord is the stored value of one entry; address and fingerprint are
// its key.
type boltRecord struct {
	Certificate  []byte `json:"c"`
	Capabilities []byte `json:"p,omitempty"`
	FirstSeen    int64  `json:"f"` // Unix microseconds
	LastSeen     int64  `json:"l"`
}

// Bolt is the embedded Store: one bbolt file.
//
// The file is open, and locked, only while an operation runs: every Put,
// Get, List, Forget and Expire opens it, waits at most Options.Timeout for
// bbolt's flock, runs one transaction and closes it. So the daemon and
// the danemilter store and lookup commands take turns on one file instead
// of the first to open it keeping the others out. Get and List take a
// shared lock (readers do not wait for each other, in this process or
// another); Put, Forget and Expire take the exclusive one. Within one
// process the operations are ordered by a read-write mutex, because flock
// locks of two descriptors conflict as those of two processes do, and
// bbolt polls for a lock only every 50 ms.
//
// The cost is an open, a lock, an mmap (with its page faults) and a close
// per operation (BenchmarkBoltGet and BenchmarkBoltPut, see README.md):
// about 160 us per Get, some 30 times a Get on a file kept open, and
// about 0.4 ms more per Put. The daemon puts a Cached in front, so it pays
// this on cache misses and harvests only.
type Bolt struct {
	path   string
	opts   Options
	expiry expiry

	mu      sync.RWMutex // Get, List: RLock; Put, Forget, Expire: Lock
	closed  bool         // under mu
	checked atomic.Value // fs.FileInfo of the file safefile last passed
}

var _ Store = (*Bolt)(nil)

// errClosed is returned by the methods of a closed Bolt.
var errClosed = errors.New("harvest: store closed")

// listBatch is the most entries List reads per opening of the file: a
// long export holds the lock for one batch at a time, and the daemon's
// writes get their turns in between.
const listBatch = 256

// OpenBolt checks the store file at path, creating it with mode 0600 (and
// its directory with mode 0700) when missing, and expires old entries. It
// does not keep the file open: each method opens it for its own
// transaction (see Bolt). The file and its directory must be owned by
// root or the daemon's user and not writable by group or others (package
// safefile); they are checked here and again at every opening. When
// another process holds the file for longer than opts.Timeout the error
// wraps ErrLocked and names the file. Other errors wrap a *safefile.Error
// or are bbolt's.
func OpenBolt(path string, opts Options) (*Bolt, error) {
	opts = opts.withDefaults()
	if err := safefile.MakeDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("harvest: store directory: %w", err)
	}
	if err := safefile.Check(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("harvest: %w", err)
	}
	s := &Bolt{path: path, opts: opts}
	db, err := s.open(context.Background(), false, os.O_CREATE)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketEntries, bucketSeen, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("harvest: %s: %w", path, err)
	}
	s.expiry.due(time.Now())
	if _, err := s.Expire(context.Background(), time.Now().Add(-opts.ExpireAfter)); err != nil {
		return nil, err
	}
	return s, nil
}

// open opens and locks the file: shared for a reader, exclusive for a
// writer, waiting at most Options.Timeout or until ctx's deadline.
// create is os.O_CREATE or 0: only OpenBolt makes the file, so a file
// removed under a running daemon is an error, not a new empty store.
func (s *Bolt) open(ctx context.Context, readOnly bool, create int) (*bbolt.DB, error) {
	timeout := s.opts.Timeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if timeout <= 0 { // zero would be bbolt's "wait forever"
		return nil, context.DeadlineExceeded
	}
	var file *os.File
	db, err := bbolt.Open(s.path, 0o600, &bbolt.Options{
		Timeout:  timeout,
		ReadOnly: readOnly,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag&^os.O_CREATE|create, mode)
			file = f
			return f, err
		},
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s: not free within %v (another program keeps it open: a danemilter of an older version, or a bbolt tool?)", ErrLocked, s.path, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("harvest: open %s: %w", s.path, err)
	}
	if err := s.check(file); err != nil {
		db.Close() // refusing it; the close error adds nothing
		return nil, err
	}
	return db, nil
}

// check checks the file bbolt opened. safefile.Check walks the path and its
// parents, which costs more than the rest of a Get; so the file checked
// last is remembered, and the same file (device and inode) with the same
// mode and owner passes on one fstat. Another file at the path (one
// restored from a backup) is checked in full.
func (s *Bolt) check(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("harvest: %w", err)
	}
	if prev, ok := s.checked.Load().(fs.FileInfo); ok && os.SameFile(prev, fi) && prev.Mode() == fi.Mode() && owner(prev) == owner(fi) && owner(fi) >= 0 {
		return nil
	}
	if err := safefile.Check(s.path); err != nil {
		return fmt.Errorf("harvest: %w", err)
	}
	// The path must still lead to the file that was opened.
	if pfi, err := os.Stat(s.path); err != nil || !os.SameFile(fi, pfi) {
		return fmt.Errorf("harvest: %s was replaced while being opened", s.path)
	}
	s.checked.Store(fi)
	return nil
}

// owner is fi's owner, or -1 when the system does not say.
func owner(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Uid)
	}
	return -1
}

// view runs f in a read transaction of the file, opened for it.
func (s *Bolt) view(ctx context.Context, f func(entries *bbolt.Bucket) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	db, err := s.open(ctx, true, 0)
	if err != nil {
		return err
	}
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if b == nil {
			return fmt.Errorf("harvest: %s: not a store file (no %q bucket)", s.path, bucketEntries)
		}
		return f(b)
	})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("harvest: close %s: %w", s.path, cerr)
	}
	return err
}

// update runs f in a write transaction of the file, opened for it; the
// transaction is committed with fsync before the file is closed.
func (s *Bolt) update(ctx context.Context, f func(tx *bbolt.Tx, entries, seen *bbolt.Bucket) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	db, err := s.open(ctx, false, 0)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		entries, seen := tx.Bucket(bucketEntries), tx.Bucket(bucketSeen)
		if entries == nil || seen == nil || tx.Bucket(bucketMeta) == nil {
			return fmt.Errorf("harvest: %s: not a store file (buckets missing)", s.path)
		}
		return f(tx, entries, seen)
	})
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("harvest: close %s: %w", s.path, cerr)
	}
	return err
}

// Path returns the file's name.
func (s *Bolt) Path() string { return s.path }

func entryKey(addr, fp string) []byte {
	return append(append([]byte(addr), 0), fp...)
}

func seenKey(lastSeen int64, key []byte) []byte {
	k := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(k, uint64(lastSeen)^(1<<63)) // sign flip: negative times order first
	return append(k, key...)
}

func seenTime(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k[:8]) ^ (1 << 63))
}

func decodeEntry(k, v []byte) (Entry, error) {
	addr, fp, ok := bytes.Cut(k, []byte{0})
	if !ok {
		return Entry{}, fmt.Errorf("harvest: malformed key %q", k)
	}
	var r boltRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Entry{}, fmt.Errorf("harvest: entry %q: %w", k, err)
	}
	return Entry{
		Address:      string(addr),
		Fingerprint:  string(fp),
		Certificate:  r.Certificate,
		Capabilities: r.Capabilities,
		FirstSeen:    time.UnixMicro(r.FirstSeen).UTC(),
		LastSeen:     time.UnixMicro(r.LastSeen).UTC(),
	}, nil
}

func count(tx *bbolt.Tx) uint64 {
	v := tx.Bucket(bucketMeta).Get(keyCount)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func setCount(tx *bbolt.Tx, n uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], n)
	return tx.Bucket(bucketMeta).Put(keyCount, v[:])
}

// Put implements Store. The write is committed (and fsynced) when Put
// returns nil. Once an hour Put also expires entries not seen for
// Options.ExpireAfter.
func (s *Bolt) Put(ctx context.Context, e Entry) error {
	now := time.Now()
	e, err := normalize(e, s.opts, now)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.expiry.due(now) {
		if _, err := s.Expire(ctx, now.Add(-s.opts.ExpireAfter)); err != nil {
			return err
		}
	}
	key := entryKey(e.Address, e.Fingerprint)
	return s.update(ctx, func(tx *bbolt.Tx, entries, seen *bbolt.Bucket) error {
		n := count(tx)
		if v := entries.Get(key); v != nil {
			old, err := decodeEntry(key, v)
			if err != nil {
				return err
			}
			e = merge(old, e)
			if err := seen.Delete(seenKey(old.LastSeen.UnixMicro(), key)); err != nil {
				return err
			}
		} else {
			n++
		}
		v, err := json.Marshal(boltRecord{Certificate: e.Certificate, Capabilities: e.Capabilities, FirstSeen: e.FirstSeen.UnixMicro(), LastSeen: e.LastSeen.UnixMicro()})
		if err != nil {
			return err
		}
		if err := entries.Put(key, v); err != nil {
			return err
		}
		if err := seen.Put(seenKey(e.LastSeen.UnixMicro(), key), nil); err != nil {
			return err
		}
		// Past MaxEntries the least recently seen go first. Keys are
		// collected before deleting: a bbolt cursor may skip a key after
		// a Delete.
		var drop [][]byte
		c := seen.Cursor()
		for k, _ := c.First(); k != nil && n-uint64(len(drop)) > uint64(s.opts.MaxEntries); k, _ = c.Next() {
			drop = append(drop, bytes.Clone(k))
		}
		if err := deleteSeen(entries, seen, drop); err != nil {
			return err
		}
		return setCount(tx, n-uint64(len(drop)))
	})
}

// deleteSeen removes the entries whose "seen" keys are keys.
func deleteSeen(entries, seen *bbolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := entries.Delete(k[8:]); err != nil {
			return err
		}
		if err := seen.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// dropSeen removes the entries whose "seen" keys are keys and lowers the
// entry count by as many (Forget, Expire).
func dropSeen(tx *bbolt.Tx, entries, seen *bbolt.Bucket, keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	if err := deleteSeen(entries, seen, keys); err != nil {
		return err
	}
	return setCount(tx, count(tx)-uint64(len(keys)))
}

// Get implements Store.
func (s *Bolt) Get(ctx context.Context, addr string) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prefix := append([]byte(NormalizeAddress(addr)), 0)
	cutoff := time.Now().Add(-s.opts.ExpireAfter)
	var out []Entry
	err := s.view(ctx, func(entries *bbolt.Bucket) error {
		c := entries.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			e, err := decodeEntry(k, v)
			if err != nil {
				return err
			}
			if e.LastSeen.Before(cutoff) {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortNewestFirst(out)
	return out, nil
}

func sortNewestFirst(es []Entry) {
	slices.SortStableFunc(es, func(a, b Entry) int { return b.LastSeen.Compare(a.LastSeen) })
}

// List implements Store. It is not a snapshot: it reads listBatch entries
// per opening of the file and calls f with the file closed, so a long
// walk (danemilter store export) or a slow f never keeps the daemon out
// for more than one batch, and f may call the store's other methods. Each
// entry comes at most once, in address order; one written, changed or
// forgotten during the walk may show either way.
func (s *Bolt) List(ctx context.Context, f func(Entry) error) error {
	var after []byte
	for {
		batch := make([]Entry, 0, listBatch)
		err := s.view(ctx, func(entries *bbolt.Bucket) error {
			c := entries.Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(batch) < listBatch; k, v = c.Next() {
				e, err := decodeEntry(k, v)
				if err != nil {
					return err
				}
				batch = append(batch, e)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := f(e); err != nil {
				return err
			}
		}
		if len(batch) < listBatch {
			return nil
		}
		last := batch[len(batch)-1]
		after = entryKey(last.Address, last.Fingerprint)
	}
}

// Forget implements Store.
func (s *Bolt) Forget(ctx context.Context, addr string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	prefix := append([]byte(NormalizeAddress(addr)), 0)
	removed := 0
	err := s.update(ctx, func(tx *bbolt.Tx, entries, seen *bbolt.Bucket) error {
		var drop [][]byte
		c := entries.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			e, err := decodeEntry(k, v)
			if err != nil {
				return err
			}
			drop = append(drop, seenKey(e.LastSeen.UnixMicro(), k))
		}
		removed = len(drop)
		return dropSeen(tx, entries, seen, drop)
	})
	if err != nil {
		return 0, err
	}
	return removed, nil
}

// Expire implements Store.
func (s *Bolt) Expire(ctx context.Context, notSeenSince time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cutoff := notSeenSince.UnixMicro()
	removed := 0
	err := s.update(ctx, func(tx *bbolt.Tx, entries, seen *bbolt.Bucket) error {
		var drop [][]byte
		c := seen.Cursor()
		for k, _ := c.First(); k != nil && seenTime(k) < cutoff; k, _ = c.Next() {
			drop = append(drop, bytes.Clone(k))
		}
		removed = len(drop)
		return dropSeen(tx, entries, seen, drop)
	})
	if err != nil {
		return 0, err
	}
	return removed, nil
}

// Close implements Store: it waits for the operations under way (the
// file is not open otherwise); later calls return an error.
func (s *Bolt) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
