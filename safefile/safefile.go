// Package safefile refuses files and directories that someone other than
// root or the daemon's own user could have written, as OpenSSH's StrictModes
// does for authorized_keys (misc.c, safe_path). danemilter trusts its
// configuration file, its policy map file and its key files to say which
// recipients must get ciphertext; a file another local user can change is a
// way to turn "encrypt" into "none".
//
// A file passes when:
//
//   - it is a regular file; a symbolic link is followed and its target must
//     pass, and so must the directories the link and its target are in;
//   - it is owned by root or by the process's effective user;
//   - it is not writable by its group or by others;
//   - every directory from the file's up to "/" is owned by root or by the
//     effective user and not writable by group or others, unless it has the
//     sticky bit (like /tmp): there others may add entries but cannot rename
//     or remove ours. OpenSSH makes no sticky exception; danemilter makes it
//     so that a configuration written into a temporary directory (tests,
//     "danemilter demo") can be used.
//
// A directory the daemon writes into (the spool) passes when it is not a
// symbolic link, is a directory, is owned by root or the effective user, is
// not writable by group or others (sticky or not), and its parents pass as
// above.
//
// Every refusal is an *Error, which wraps ErrUnsafe and names the file and
// the directory or file at fault. The checks are done on the open file
// (fstat), so the file read is the file checked.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUnsafe is wrapped by every *Error.
var ErrUnsafe = errors.New("unsafe owner or mode")

// Error is a file or directory that fails the checks.
type Error struct {
	// File is the file or directory asked about, as the caller named it.
	File string
	// Path is what fails: File itself, its symlink target or one of the
	// directories above it, with symbolic links resolved.
	Path string
	// Problem says what is wrong with Path, e.g. "is writable by group or
	// others (mode 0666)".
	Problem string
}

func (e *Error) Error() string {
	if e.Path == e.File {
		return fmt.Sprintf("%v: %s %s", ErrUnsafe, e.File, e.Problem)
	}
	return fmt.Sprintf("%v: %s: %s %s", ErrUnsafe, e.File, e.Path, e.Problem)
}

// Unwrap returns ErrUnsafe.
func (e *Error) Unwrap() error { return ErrUnsafe }

// ReadFile reads the file name after checking it, its symlink target and the
// directories above them. It returns an *Error (wrapping ErrUnsafe) for a
// file that fails the checks, or the error of opening or reading it.
func ReadFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close() // read-only
	if err := checkOpen(name, f); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// Check checks the file name as ReadFile does, without reading it. Errors
// as ReadFile.
func Check(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close() // read-only
	return checkOpen(name, f)
}

// checkOpen checks the open file f, opened as name.
func checkOpen(name string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return err
	}
	// The path must still lead to the file that was opened.
	if rfi, err := os.Stat(real); err != nil || !os.SameFile(fi, rfi) {
		return &Error{File: name, Path: real, Problem: "was replaced while being checked"}
	}
	if !fi.Mode().IsRegular() {
		return &Error{File: name, Path: real, Problem: "is not a regular file"}
	}
	if err := checkOwnerMode(name, real, fi, false); err != nil {
		return err
	}
	return checkParents(name, abs, real)
}

// CheckDir checks a directory the daemon writes into: not a symbolic link,
// a directory, owned by root or the effective user, not writable by group
// or others, and its parents as for ReadFile. It returns an *Error
// (wrapping ErrUnsafe), or the error of Lstat (fs.ErrNotExist when the
// directory is missing).
func CheckDir(name string) error {
	fi, err := os.Lstat(name)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(name)
		return &Error{File: name, Path: name, Problem: fmt.Sprintf("is a symbolic link (to %q); name the directory itself", target)}
	}
	if !fi.IsDir() {
		return &Error{File: name, Path: name, Problem: "is not a directory"}
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs) // a parent may be a link
	if err != nil {
		return err
	}
	if err := checkOwnerMode(name, real, fi, false); err != nil {
		return err
	}
	return checkParents(name, abs, real)
}

// CheckParent checks that the directory dir may be created: its parent
// exists and passes as the directories above a file do. It returns an
// *Error, or the error of looking at the parent.
func CheckParent(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	parent := filepath.Dir(abs)
	real, err := filepath.EvalSymlinks(parent)
	if err != nil {
		return err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &Error{File: dir, Path: real, Problem: "is not a directory"}
	}
	seen := map[string]bool{}
	if err := checkChain(dir, real, seen); err != nil {
		return err
	}
	return checkChain(dir, parent, seen)
}

// MakeDir creates the directory name with mode 0700 when it is missing
// (its parent must exist and pass CheckParent; parents are not created) and
// then checks it with CheckDir. Errors as CheckDir and CheckParent, or of
// os.Mkdir.
func MakeDir(name string) error {
	err := CheckDir(name)
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := CheckParent(name); err != nil {
		return err
	}
	if err := os.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	// Someone else may have made it first: check what is there now.
	return CheckDir(name)
}

// checkParents checks the directories above real (where the file is) and
// above every directory of abs as written (where any symbolic link on the
// way is, and whoever can write there can point the link elsewhere).
func checkParents(name, abs, real string) error {
	seen := map[string]bool{}
	if err := checkChain(name, filepath.Dir(real), seen); err != nil {
		return err
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		r, err := filepath.EvalSymlinks(d)
		if err != nil {
			return err
		}
		if err := checkChain(name, r, seen); err != nil {
			return err
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// checkChain checks dir and every directory above it up to "/". dir has
// no symbolic links in it. seen holds the directories already checked.
func checkChain(name, dir string, seen map[string]bool) error {
	for {
		if seen[dir] {
			return nil
		}
		seen[dir] = true
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if err := checkOwnerMode(name, dir, fi, true); err != nil {
			return err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

// checkOwnerMode checks that path (described by fi) is owned by root or the
// effective user and not writable by group or others; a parent directory
// may be writable by them when it is sticky.
func checkOwnerMode(name, path string, fi fs.FileInfo, parent bool) error {
	what := "file"
	if fi.IsDir() {
		what = "directory"
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if euid := uint32(os.Geteuid()); st.Uid != 0 && st.Uid != euid {
			return &Error{File: name, Path: path, Problem: fmt.Sprintf("(%s) is owned by uid %d, not by root or the daemon's user (uid %d)", what, st.Uid, euid)}
		}
	}
	if fi.Mode().Perm()&0o022 != 0 && !(parent && fi.Mode()&fs.ModeSticky != 0) {
		return &Error{File: name, Path: path, Problem: fmt.Sprintf("(%s) is writable by group or others (mode %04o)", what, modeBits(fi.Mode()))}
	}
	return nil
}

// modeBits renders m as the octal mode chmod takes.
func modeBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	return b
}
