package keydir_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/danemilter/danemilter/keydir"
)

// Generate a user's keys into a key directory and open it as the daemon
// does.
func Example() {
	base, _ := os.MkdirTemp("", "keydir")
	defer os.RemoveAll(base)
	root := filepath.Join(base, "keys") // made with mode 0700

	k, err := keydir.GenerateSMIME("Alice@example.com", keydir.SMIMEP256, keydir.Options{})
	if err != nil {
		panic(err)
	}
	if _, err := keydir.WriteSMIME(root, "Alice@example.com", k); err != nil {
		panic(err)
	}
	d, err := keydir.Open(root, nil)
	if err != nil {
		panic(err)
	}
	var src keydir.Source = d
	fmt.Println(len(src.SMIME("alice@EXAMPLE.com")), len(src.OpenPGP("alice@example.com")))
	for _, e := range d.List() {
		fmt.Println(e.Address, e.Kind, e.Algorithm)
	}
	// Output:
	// 1 0
	// alice@example.com smime ECDSA P-256
}
