package keydir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"

	"github.com/danemilter/danemilter/safefile"
)

var (
	fixOnce  sync.Once
	fixSMIME SMIMEKey
	fixPGP   *pgp.Entity
)

// fixtures are one P-256 S/MIME key and one cv25519 OpenPGP key for
// alice@example.com, made once per test binary.
func fixtures(t *testing.T) (SMIMEKey, *pgp.Entity) {
	t.Helper()
	fixOnce.Do(func() {
		var err error
		if fixSMIME, err = GenerateSMIME("alice@example.com", SMIMEP256, Options{}); err != nil {
			panic(err)
		}
		if fixPGP, err = GenerateOpenPGP("alice@example.com", OpenPGPCv25519, Options{}); err != nil {
			panic(err)
		}
	})
	return fixSMIME, fixPGP
}

// keyDir makes a private directory (0700, under a 0700 temp dir) holding
// the fixtures for Alice@Example.com.
func keyDir(t *testing.T) string {
	t.Helper()
	s, e := fixtures(t)
	base := t.TempDir()
	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "keys")
	if _, err := WriteSMIME(root, "Alice@Example.com", s); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteOpenPGP(root, "alice@example.com", e); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestOpenLookup(t *testing.T) {
	root := keyDir(t)
	d, err := Open(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"alice@example.com", "ALICE@example.COM"} {
		if ks := d.SMIME(a); len(ks) != 1 || ks[0].Cert == nil || ks[0].Key == nil {
			t.Errorf("SMIME(%q) = %v", a, ks)
		}
		if es := d.OpenPGP(a); len(es) != 1 || es[0].PrivateKey == nil || es[0].PrivateKey.Encrypted {
			t.Errorf("OpenPGP(%q) = %v", a, es)
		}
	}
	if ks := d.SMIME("bob@example.com"); ks != nil {
		t.Errorf("SMIME(bob) = %v", ks)
	}
	l := d.List()
	if len(l) != 2 || l[0].Kind != KindSMIME || l[1].Kind != KindOpenPGP || l[0].Address != "alice@example.com" {
		t.Fatalf("List = %+v", l)
	}
	if l[0].Algorithm != "ECDSA P-256" || !strings.HasPrefix(l[1].Algorithm, "EdDSA") {
		t.Errorf("algorithms %q %q", l[0].Algorithm, l[1].Algorithm)
	}
	if l[0].Expired(time.Now()) || !strings.HasPrefix(l[0].ExpiryText(time.Now()), "expires in 72") {
		t.Errorf("expiry %v %q", l[0].NotAfter, l[0].ExpiryText(time.Now()))
	}
	var _ Source = d
}

func TestReloadPicksUpKeys(t *testing.T) {
	root := keyDir(t)
	d, err := Open(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := d.Reload(); changed || err != nil {
		t.Fatalf("Reload unchanged = %v, %v", changed, err)
	}
	k, err := GenerateSMIME("bob@example.com", SMIMEP256, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteSMIME(root, "bob@example.com", k); err != nil {
		t.Fatal(err)
	}
	if changed, err := d.Reload(); !changed || err != nil {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	if len(d.SMIME("Bob@example.com")) != 1 {
		t.Error("new key not picked up")
	}
	// A directory made unsafe is dropped entirely.
	if err := os.Chmod(filepath.Join(root, "bob@example.com"), 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Reload(); !errors.Is(err, safefile.ErrUnsafe) {
		t.Fatalf("Reload of unsafe dir: %v", err)
	}
	if len(d.SMIME("alice@example.com")) != 0 || len(d.List()) != 0 {
		t.Error("keys still in use after the directory became unsafe")
	}
}

func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name   string
		root   bool // needs to run as root (chown)
		break_ func(t *testing.T, root string)
		want   string // in the error
	}{
		{"group-readable file", false, func(t *testing.T, root string) {
			chmod(t, findKeyFile(t, root, "smime-"), 0o640)
		}, "smime-"},
		{"other-readable dir", false, func(t *testing.T, root string) {
			chmod(t, root, 0o755)
		}, "readable or writable by group or others (mode 0755"},
		{"group-readable subdir", false, func(t *testing.T, root string) {
			chmod(t, filepath.Join(root, "alice@example.com"), 0o750)
		}, "alice@example.com (directory) is readable"},
		{"other-owned dir", true, func(t *testing.T, root string) {
			if err := os.Chown(filepath.Join(root, "alice@example.com"), 4242, 4242); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 4242"},
		{"other-owned file", true, func(t *testing.T, root string) {
			if err := os.Chown(findKeyFile(t, root, "openpgp-"), 4242, 4242); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 4242"},
		{"symlink escaping", false, func(t *testing.T, root string) {
			outside := filepath.Join(filepath.Dir(root), "elsewhere.pem")
			if err := os.WriteFile(outside, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(root, "alice@example.com", "smime-0000000000000000.pem")); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
		{"symlinked address dir", false, func(t *testing.T, root string) {
			if err := os.Symlink(filepath.Join(root, "alice@example.com"), filepath.Join(root, "bob@example.com")); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("needs root to chown")
			}
			root := keyDir(t)
			tc.break_(t, root)
			d, err := Open(root, nil)
			if d != nil || !errors.Is(err, safefile.ErrUnsafe) {
				t.Fatalf("Open = %v, %v; want ErrUnsafe", d, err)
			}
			var se *safefile.Error
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestOpenBadKeyFile(t *testing.T) {
	root := keyDir(t)
	bad := filepath.Join(root, "alice@example.com", "smime-ffffffffffffffff.pem")
	if err := os.WriteFile(bad, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(root, nil)
	var ke *KeyFileError
	if !errors.As(err, &ke) || d == nil || ke.Files[bad] == nil || !errors.Is(ke.Files[bad], ErrBadKey) {
		t.Fatalf("Open = %v, %v", d, err)
	}
	if len(d.SMIME("alice@example.com")) != 1 {
		t.Error("the good key is not in use")
	}
}

func chmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

func findKeyFile(t *testing.T, root, prefix string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(root, "alice@example.com", prefix+"*"))
	if len(m) != 1 {
		t.Fatalf("%s files: %v", prefix, m)
	}
	return m[0]
}
