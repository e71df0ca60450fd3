package keydir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	pgp "github.com/ProtonMail/go-crypto/openpgp"

	"github.com/danemilter/danemilter/dane"
)

// ErrBadAddress is returned for an address that cannot name a key's
// subdirectory.
var ErrBadAddress = errors.New("keydir: bad address")

// AddressDir returns the subdirectory of root for addr: the address in
// lower case. It returns an error wrapping ErrBadAddress for an address
// dane.SMIMEAName refuses or one that is not a safe file name.
func AddressDir(root, addr string) (string, error) {
	if _, err := dane.SMIMEAName(addr, false); err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadAddress, addr, err)
	}
	a := strings.ToLower(addr)
	if strings.ContainsAny(a, "/\x00") || strings.HasPrefix(a, ".") {
		return "", fmt.Errorf("%w: %q cannot be a directory name", ErrBadAddress, addr)
	}
	return filepath.Join(root, a), nil
}

// WriteSMIME stores k for addr under root (created with mode 0700 when
// missing, as is the address's subdirectory) and returns the file's path.
// The file is written with mode 0600 to a temporary name and renamed, so
// the daemon never reads half a key.
func WriteSMIME(root, addr string, k SMIMEKey) (string, error) {
	if err := keyMatches(k.Cert, k.Key); err != nil {
		return "", err
	}
	b, err := encodeSMIME(k)
	if err != nil {
		return "", err
	}
	return writeKey(root, addr, smimeFileName(k.Cert), b)
}

// WriteOpenPGP stores e's secret key for addr under root, as WriteSMIME.
func WriteOpenPGP(root, addr string, e *pgp.Entity) (string, error) {
	if err := checkSecret(e); err != nil {
		return "", err
	}
	b, err := encodeOpenPGP(e)
	if err != nil {
		return "", err
	}
	return writeKey(root, addr, openpgpFileName(e), b)
}

func writeKey(root, addr, name string, b []byte) (string, error) {
	sub, err := AddressDir(root, addr)
	if err != nil {
		return "", err
	}
	for _, d := range []string{root, sub} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("keydir: %w", err)
		}
		if err := checkPrivate(root, d); err != nil {
			return "", err
		}
	}
	f, err := os.CreateTemp(sub, ".tmp-")
	if err != nil {
		return "", fmt.Errorf("keydir: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone after the rename; cleans up on error
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return "", fmt.Errorf("keydir: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", fmt.Errorf("keydir: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("keydir: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("keydir: %w", err)
	}
	p := filepath.Join(sub, name)
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("keydir: %w", err)
	}
	return p, nil
}
