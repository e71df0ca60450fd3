package safefile_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/danemilter/danemilter/safefile"
)

// A policy map file anyone may write is refused, whatever it says.
func ExampleReadFile() {
	dir, err := os.MkdirTemp("", "safefile-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "policy.map")
	if err := os.WriteFile(path, []byte("partner.example none\n"), 0o644); err != nil {
		fmt.Println(err)
		return
	}
	if err := os.Chmod(path, 0o666); err != nil {
		fmt.Println(err)
		return
	}
	_, err = safefile.ReadFile(path)
	var e *safefile.Error
	if errors.As(err, &e) {
		fmt.Println(errors.Is(err, safefile.ErrUnsafe), e.Path == path, e.Problem)
	}
	// Output: true true (file) is writable by group or others (mode 0666)
}
