package dane

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// CertDir is a CertSource backed by a directory of PEM files (any names, any
// number of CERTIFICATE blocks each; other blocks are ignored). It holds the
// certificates that hashed SMIMEA records authenticate and the CA
// certificates chains are built through. Reload re-reads it; Watch does so
// when it changes. A file that does not parse is reported and skipped; the
// others are used. CertDir is safe for concurrent use.
type CertDir struct {
	path string
	log  *slog.Logger

	mu     sync.RWMutex
	certs  []*x509.Certificate
	pool   *x509.CertPool                 // certs, for chain building
	byAddr map[string][]*x509.Certificate // end-entity certs by lowercased address
	stamp  [32]byte                       // digest of names, sizes and times of the files read
}

// maxCertFile bounds one file of the directory.
const maxCertFile = 1 << 20

// NewCertDir reads dir. It fails only when dir cannot be listed; bad files
// are returned as a joined error next to a usable CertDir.
func NewCertDir(dir string, logger *slog.Logger) (*CertDir, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &CertDir{path: dir, log: logger}
	if _, err := d.Reload(); err != nil {
		var fe *CertFileError
		if errors.As(err, &fe) {
			return d, err
		}
		return nil, err
	}
	return d, nil
}

// CertFileError lists files of the directory that could not be used.
type CertFileError struct {
	Files map[string]error
}

func (e *CertFileError) Error() string {
	names := make([]string, 0, len(e.Files))
	for n := range e.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	s := "dane: certificate directory:"
	for i, n := range names {
		if i > 0 {
			s += ";"
		}
		s += fmt.Sprintf(" %s: %v", n, e.Files[n])
	}
	return s
}

// Pool returns every certificate of the directory as a pool, built once per
// reload; callers must not change it (Clone it first).
func (d *CertDir) Pool() *x509.CertPool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.pool
}

// ForAddress returns the end-entity certificates that name addr (case
// folded), from an index built once per reload.
func (d *CertDir) ForAddress(addr string) []*x509.Certificate {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.byAddr[strings.ToLower(addr)]
}

// Certificates implements CertSource.
func (d *CertDir) Certificates() []*x509.Certificate {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.certs
}

// Reload re-reads the directory if a file was added, removed or changed, and
// reports whether it did. Files that do not parse come back in a
// *CertFileError; the rest are in force.
func (d *CertDir) Reload() (bool, error) {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return false, fmt.Errorf("dane: certificate directory: %w", err)
	}
	h := sha256.New()
	var files []string
	for _, e := range entries {
		if e.IsDir() || e.Name()[0] == '.' {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", e.Name(), fi.Size(), fi.ModTime().UnixNano())
		files = append(files, filepath.Join(d.path, e.Name()))
	}
	var stamp [32]byte
	copy(stamp[:], h.Sum(nil))
	d.mu.RLock()
	same := stamp == d.stamp && d.certs != nil
	d.mu.RUnlock()
	if same {
		return false, nil
	}
	var certs []*x509.Certificate
	bad := map[string]error{}
	for _, f := range files {
		cs, err := readPEMCerts(f)
		if err != nil {
			bad[filepath.Base(f)] = err
		}
		certs = append(certs, cs...)
	}
	if certs == nil {
		certs = []*x509.Certificate{}
	}
	pool := x509.NewCertPool()
	byAddr := map[string][]*x509.Certificate{}
	for _, c := range certs {
		pool.AddCert(c)
		if c.IsCA {
			continue
		}
		seen := map[string]bool{}
		for _, a := range certAddressList(c) {
			a = strings.ToLower(a)
			if !seen[a] {
				seen[a] = true
				byAddr[a] = append(byAddr[a], c)
			}
		}
	}
	d.mu.Lock()
	d.certs, d.pool, d.byAddr, d.stamp = certs, pool, byAddr, stamp
	d.mu.Unlock()
	if len(bad) > 0 {
		return true, &CertFileError{Files: bad}
	}
	return true, nil
}

func readPEMCerts(path string) ([]*x509.Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxCertFile {
		return nil, fmt.Errorf("larger than %d bytes", maxCertFile)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		n++
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return certs, fmt.Errorf("certificate %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	if n == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return certs, nil
}

// Watch reloads the directory every interval until ctx ends, and logs what
// changed.
func (d *CertDir) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed, err := d.Reload()
			if err != nil {
				d.log.Error("certificate directory has unusable files; the others are in force", "dir", d.path, "err", err)
			}
			if changed {
				d.log.Info("certificate directory reloaded", "dir", d.path, "certificates", len(d.Certificates()))
			}
		}
	}
}
