package harvest_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/danemilter/danemilter/harvest"
)

// A certificate harvested from a verified signature is found again by the
// signer's address. Whether it may be used is decided elsewhere: only when
// a DNSSEC-secure SMIMEA record for the address matches it.
func Example() {
	dir, err := os.MkdirTemp("", "harvest-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := harvest.OpenBolt(filepath.Join(dir, "harvest.db"), harvest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	ctx := context.Background()
	seen := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	// SMIMECapabilities: AES-256-GCM, then AES-256-CBC (RFC 8551 §2.5.2).
	caps := []byte{
		0x30, 0x1a,
		0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2e,
		0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a,
	}
	err = store.Put(ctx, harvest.Entry{
		Address:      "Alice@Partner.example",
		Certificate:  []byte("a DER certificate"),
		Capabilities: caps,
		LastSeen:     seen,
	})
	if err != nil {
		log.Fatal(err)
	}
	entries, err := store.Get(ctx, "alice@partner.example")
	if err != nil {
		log.Fatal(err) // with PostgreSQL: read as "not known"
	}
	for _, e := range entries {
		oids, err := harvest.ParseCapabilities(e.Capabilities)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Address, e.LastSeen.Format(time.DateOnly), oids)
	}
	// Output: alice@partner.example 2026-11-30 [2.16.840.1.101.3.4.1.46 2.16.840.1.101.3.4.1.42]
}
