package keydir

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"

	"github.com/danemilter/danemilter/safefile"
)

// Dir is the key directory: one subdirectory per local address (its name
// the address in lower case), holding
//
//	smime-<SHA-256 prefix>.pem    certificate and PKCS#8 private key, PEM
//	openpgp-<fingerprint>.asc     ASCII-armored OpenPGP secret key
//
// The secret keys are stored unencrypted: the daemon starts unattended and
// cannot ask for a passphrase, and a passphrase kept beside the keys would
// protect nothing. What protects them is who can read the files, so Open
// and Reload refuse the whole directory unless it, every subdirectory and
// every file in them are owned by the daemon's user (or root) and neither
// readable nor writable by group or others, no entry is a symbolic link,
// and the directories above it pass package safefile's checks.
//
// Dir implements Source. It is safe for concurrent use.
type Dir struct {
	path string
	log  *slog.Logger

	mu      sync.RWMutex
	smime   map[string][]SMIMEKey // by lowercased address, usable first, newest first
	openpgp map[string]pgp.EntityList
	entries []Entry
	stamp   [32]byte
	loaded  bool
}

// Kind of a key in the directory.
const (
	KindSMIME   = "smime"
	KindOpenPGP = "openpgp"
)

// Entry describes one key of the directory, for listing.
type Entry struct {
	Address     string    // the subdirectory's address, lower case
	Kind        string    // KindSMIME or KindOpenPGP
	Fingerprint string    // SHA-256 of the certificate, or the OpenPGP fingerprint, hex
	Algorithm   string    // e.g. "RSA-3072", "ECDSA P-256", "EdDSA + ECDH"
	NotAfter    time.Time // the certificate's notAfter or the key's expiry; zero: never
	File        string    // path of the key file
}

// Expired reports whether the key has expired at now. Expired keys are
// still offered for decryption (old mail was encrypted to them) but must
// not be published.
func (e Entry) Expired(now time.Time) bool {
	return !e.NotAfter.IsZero() && now.After(e.NotAfter)
}

// ExpiryText says "expired", "expires in N days" or "does not expire".
func (e Entry) ExpiryText(now time.Time) string {
	switch {
	case e.NotAfter.IsZero():
		return "does not expire"
	case e.Expired(now):
		return "expired"
	}
	return fmt.Sprintf("expires in %d days", int(e.NotAfter.Sub(now).Hours()/24))
}

// KeyFileError lists key files that are safe but could not be read as
// keys; the other keys are in use.
type KeyFileError struct {
	Files map[string]error // by path
}

func (e *KeyFileError) Error() string {
	names := make([]string, 0, len(e.Files))
	for n := range e.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	s := "keydir:"
	for i, n := range names {
		if i > 0 {
			s += ";"
		}
		s += fmt.Sprintf(" %s: %v", n, e.Files[n])
	}
	return s
}

// Open reads the key directory at path. It returns a *safefile.Error
// (wrapping safefile.ErrUnsafe) naming the file or directory at fault when
// the directory fails the owner and mode rules (see Dir), and no Dir; the
// error of reading it; or a usable Dir next to a *KeyFileError when some
// key files could not be parsed (they are skipped and logged).
func Open(path string, logger *slog.Logger) (*Dir, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Dir{path: path, log: logger}
	if _, err := d.Reload(); err != nil {
		var ke *KeyFileError
		if errors.As(err, &ke) {
			return d, err
		}
		return nil, err
	}
	return d, nil
}

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// SMIME implements Source: the S/MIME keys of addr (any case), those whose
// certificate is valid now first, newest first. The slice is shared: do not
// change it.
func (d *Dir) SMIME(addr string) []SMIMEKey {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.smime[strings.ToLower(addr)]
}

// OpenPGP implements Source: the OpenPGP secret keys of addr (any case),
// unexpired first, newest first. The list is shared: do not change it.
func (d *Dir) OpenPGP(addr string) pgp.EntityList {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.openpgp[strings.ToLower(addr)]
}

// List returns every key of the directory, by address, kind, then newest
// first.
func (d *Dir) List() []Entry {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return append([]Entry(nil), d.entries...)
}

// Reload re-reads the directory if a file was added, removed or changed
// (by name, size, mode and time), and reports whether it did. A directory
// that now fails the owner and mode rules is dropped entirely — no key is
// used until it is fixed — and its *safefile.Error returned. Key files
// that do not parse come back in a *KeyFileError; the rest are in force.
func (d *Dir) Reload() (bool, error) {
	files, stamp, err := scan(d.path)
	if err != nil {
		d.mu.Lock()
		d.smime, d.openpgp, d.entries, d.stamp, d.loaded = nil, nil, nil, [32]byte{}, false
		d.mu.Unlock()
		return true, err
	}
	d.mu.RLock()
	same := d.loaded && stamp == d.stamp
	d.mu.RUnlock()
	if same {
		return false, nil
	}
	now := time.Now()
	smime := map[string][]SMIMEKey{}
	openpgp := map[string]pgp.EntityList{}
	var entries []Entry
	bad := map[string]error{}
	for _, f := range files {
		b, err := readPrivate(f.path)
		if err != nil {
			// Changed between scan and read: refuse as scan would have.
			d.mu.Lock()
			d.smime, d.openpgp, d.entries, d.loaded = nil, nil, nil, false
			d.mu.Unlock()
			return true, err
		}
		switch f.kind {
		case KindSMIME:
			k, err := ParseSMIME(b)
			if err != nil {
				bad[f.path] = err
				continue
			}
			smime[f.addr] = append(smime[f.addr], k)
			entries = append(entries, Entry{Address: f.addr, Kind: KindSMIME, Fingerprint: smimeFingerprint(k.Cert),
				Algorithm: smimeAlgorithm(k.Cert), NotAfter: k.Cert.NotAfter, File: f.path})
		case KindOpenPGP:
			e, err := ParseOpenPGP(b)
			if err != nil {
				bad[f.path] = err
				continue
			}
			openpgp[f.addr] = append(openpgp[f.addr], e)
			entries = append(entries, Entry{Address: f.addr, Kind: KindOpenPGP, Fingerprint: fmt.Sprintf("%X", e.PrimaryKey.Fingerprint),
				Algorithm: pgpAlgorithm(e), NotAfter: entityExpiry(e), File: f.path})
		}
	}
	for _, ks := range smime {
		sort.SliceStable(ks, func(i, j int) bool {
			ei, ej := now.After(ks[i].Cert.NotAfter), now.After(ks[j].Cert.NotAfter)
			if ei != ej {
				return !ei
			}
			return ks[i].Cert.NotBefore.After(ks[j].Cert.NotBefore)
		})
	}
	for _, es := range openpgp {
		sort.SliceStable(es, func(i, j int) bool {
			ei, ej := expired(entityExpiry(es[i]), now), expired(entityExpiry(es[j]), now)
			if ei != ej {
				return !ei
			}
			return es[i].PrimaryKey.CreationTime.After(es[j].PrimaryKey.CreationTime)
		})
	}
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.Address != b.Address {
			return a.Address < b.Address
		}
		if a.Kind != b.Kind {
			return a.Kind > b.Kind // smime before openpgp
		}
		return a.NotAfter.After(b.NotAfter)
	})
	for f, err := range bad {
		d.log.Warn("key file skipped", "file", f, "err", err)
	}
	d.mu.Lock()
	d.smime, d.openpgp, d.entries, d.stamp, d.loaded = smime, openpgp, entries, stamp, true
	d.mu.Unlock()
	if len(bad) > 0 {
		return true, &KeyFileError{Files: bad}
	}
	return true, nil
}

func expired(notAfter, now time.Time) bool { return !notAfter.IsZero() && now.After(notAfter) }

// entityExpiry is when e's primary key expires (zero: never).
func entityExpiry(e *pgp.Entity) time.Time {
	sig, _ := e.PrimarySelfSignature()
	if sig == nil || sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
		return time.Time{}
	}
	return e.PrimaryKey.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
}

// keyFile is a key file found by scan.
type keyFile struct {
	path, addr, kind string
}

// scan checks the directory's owners and modes (see Dir) and returns its
// key files and a digest of every entry's name, size, mode and time.
func scan(root string) ([]keyFile, [32]byte, error) {
	var stamp [32]byte
	if err := safefile.CheckDir(root); err != nil {
		return nil, stamp, err
	}
	if err := checkPrivate(root, root); err != nil {
		return nil, stamp, err
	}
	h := sha256.New()
	var files []keyFile
	subs, err := os.ReadDir(root)
	if err != nil {
		return nil, stamp, fmt.Errorf("keydir: %w", err)
	}
	for _, s := range subs {
		p := filepath.Join(root, s.Name())
		if err := checkPrivate(root, p); err != nil {
			return nil, stamp, err
		}
		if !s.IsDir() {
			continue // a stray file at the top: safe, unused
		}
		addr := strings.ToLower(s.Name())
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, stamp, fmt.Errorf("keydir: %w", err)
		}
		for _, e := range ents {
			fp := filepath.Join(p, e.Name())
			if err := checkPrivate(root, fp); err != nil {
				return nil, stamp, err
			}
			if e.IsDir() {
				return nil, stamp, &safefile.Error{File: root, Path: fp, Problem: "is a directory inside an address's directory"}
			}
			fi, err := e.Info()
			if err != nil {
				return nil, stamp, fmt.Errorf("keydir: %w", err)
			}
			fmt.Fprintf(h, "%s\x00%s\x00%d\x00%o\x00%d\x00", s.Name(), e.Name(), fi.Size(), fi.Mode(), fi.ModTime().UnixNano())
			n := e.Name()
			switch {
			case strings.HasPrefix(n, smimePrefix) && strings.HasSuffix(n, smimeSuffix):
				files = append(files, keyFile{fp, addr, KindSMIME})
			case strings.HasPrefix(n, openpgpPrefix) && strings.HasSuffix(n, openpgpSuffix):
				files = append(files, keyFile{fp, addr, KindOpenPGP})
			}
		}
	}
	copy(stamp[:], h.Sum(nil))
	return files, stamp, nil
}

// checkPrivate checks one entry of the directory (not following a
// symbolic link): owned by root or the effective user, no permission bits
// for group or others, a directory or regular file.
func checkPrivate(root, p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("keydir: %w", err)
	}
	return checkInfo(root, p, fi)
}

func checkInfo(root, p string, fi fs.FileInfo) error {
	what := "file"
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(p)
		return &safefile.Error{File: root, Path: p, Problem: fmt.Sprintf("is a symbolic link (to %q); keys must be files in the directory itself", target)}
	case fi.IsDir():
		what = "directory"
	case !fi.Mode().IsRegular():
		return &safefile.Error{File: root, Path: p, Problem: "is not a regular file or directory"}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if euid := uint32(os.Geteuid()); st.Uid != 0 && st.Uid != euid {
			return &safefile.Error{File: root, Path: p, Problem: fmt.Sprintf("(%s) is owned by uid %d, not by root or the daemon's user (uid %d)", what, st.Uid, euid)}
		}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return &safefile.Error{File: root, Path: p, Problem: fmt.Sprintf("(%s) is readable or writable by group or others (mode %04o; want %04o)", what, perm, perm&0o700)}
	}
	return nil
}

// readPrivate opens p without following a symbolic link, checks the open
// file as checkPrivate does, and reads it.
func readPrivate(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("keydir: %w", err)
	}
	defer f.Close() // read-only
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keydir: %w", err)
	}
	if err := checkInfo(filepath.Dir(filepath.Dir(p)), p, fi); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, maxKeyFile))
}
