package harvest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
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
type Bolt struct {
	db     *bbolt.DB
	path   string
	opts   Options
	expiry expiry
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens the store file at path, creating it with mode 0600 (and
// its directory with mode 0700) when missing. The file and its directory
// must be owned by root or the daemon's user and not writable by group or
// others (package safefile). Only one process may have the file open: when
// another holds it for longer than opts.Timeout the error wraps ErrLocked
// and names the file. Other errors wrap a *safefile.Error or are bbolt's.
func OpenBolt(path string, opts Options) (*Bolt, error) {
	opts = opts.withDefaults()
	if err := safefile.MakeDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("harvest: store directory: %w", err)
	}
	if err := safefile.Check(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("harvest: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.Timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (is another danemilter running? the embedded store is one process's; share through PostgreSQL instead)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("harvest: open %s: %w", path, err)
	}
	// The file exists now: check what was opened (and maybe created).
	if err := safefile.Check(path); err != nil {
		db.Close() // refusing it; the close error adds nothing
		return nil, fmt.Errorf("harvest: %w", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketEntries, bucketSeen, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close() // the open failed already
		return nil, fmt.Errorf("harvest: %s: %w", path, err)
	}
	s := &Bolt{db: db, path: path, opts: opts}
	s.expiry.due(time.Now())
	if _, err := s.Expire(context.Background(), time.Now().Add(-opts.ExpireAfter)); err != nil {
		db.Close() // the open failed already
		return nil, err
	}
	return s, nil
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
	return s.db.Update(func(tx *bbolt.Tx) error {
		entries, seen := tx.Bucket(bucketEntries), tx.Bucket(bucketSeen)
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

// Get implements Store.
func (s *Bolt) Get(ctx context.Context, addr string) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prefix := append([]byte(NormalizeAddress(addr)), 0)
	cutoff := time.Now().Add(-s.opts.ExpireAfter)
	var out []Entry
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketEntries).Cursor()
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

// List implements Store. f runs inside a read transaction: it must not
// call the store's other methods.
func (s *Bolt) List(ctx context.Context, f func(Entry) error) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			e, err := decodeEntry(k, v)
			if err != nil {
				return err
			}
			return f(e)
		})
	})
}

// Forget implements Store.
func (s *Bolt) Forget(ctx context.Context, addr string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	prefix := append([]byte(NormalizeAddress(addr)), 0)
	removed := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		entries, seen := tx.Bucket(bucketEntries), tx.Bucket(bucketSeen)
		var drop [][]byte
		c := entries.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			e, err := decodeEntry(k, v)
			if err != nil {
				return err
			}
			drop = append(drop, seenKey(e.LastSeen.UnixMicro(), k))
		}
		if len(drop) == 0 {
			return nil
		}
		if err := deleteSeen(entries, seen, drop); err != nil {
			return err
		}
		removed = len(drop)
		return setCount(tx, count(tx)-uint64(removed))
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
	err := s.db.Update(func(tx *bbolt.Tx) error {
		entries, seen := tx.Bucket(bucketEntries), tx.Bucket(bucketSeen)
		var drop [][]byte
		c := seen.Cursor()
		for k, _ := c.First(); k != nil && seenTime(k) < cutoff; k, _ = c.Next() {
			drop = append(drop, bytes.Clone(k))
		}
		if len(drop) == 0 {
			return nil
		}
		if err := deleteSeen(entries, seen, drop); err != nil {
			return err
		}
		removed = len(drop)
		return setCount(tx, count(tx)-uint64(removed))
	})
	if err != nil {
		return 0, err
	}
	return removed, nil
}

// Close implements Store.
func (s *Bolt) Close() error { return s.db.Close() }
