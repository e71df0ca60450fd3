package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/danemilter/danemilter/harvest"
)

func TestStoreCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "state", "harvest.db")
	cfg := filepath.Join(dir, "danemilter.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[store]\nbackend = \"bolt\"\npath = %q\n", db), 0o600); err != nil {
		t.Fatal(err)
	}
	run1 := func(args ...string) (string, string, int) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"store", "--config", cfg}, args...), &out, &errb)
		return out.String(), errb.String(), code
	}

	// Before anything was harvested: no file, and none made.
	if out, errs, code := run1("list"); code != 0 || out != "" || !strings.Contains(errs, "nothing harvested") {
		t.Errorf("list without a file: %d %q %q", code, out, errs)
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("list made the store file")
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "Frank"}, EmailAddresses: []string{"frank@partner.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	type capability struct{ ID asn1.ObjectIdentifier }
	caps, _ := asn1.Marshal([]capability{{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}}, {asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}}})
	s, err := harvest.OpenBolt(db, harvest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, e := range []harvest.Entry{
		{Address: "Frank@Partner.example", Certificate: der, Capabilities: caps, FirstSeen: seen.Add(-24 * time.Hour), LastSeen: seen},
		{Address: "grace@partner.example", Certificate: []byte("not a certificate")},
	} {
		if err := s.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fp := harvest.Fingerprint(der)

	out, errs, code := run1("list")
	if code != 0 || !strings.Contains(out, "frank@partner.example  "+fp) || !strings.Contains(out, "aes256-gcm,rsaes-oaep") || !strings.Contains(out, "grace@partner.example") {
		t.Errorf("list: %d %q\n%s", code, errs, out)
	}
	out, errs, code = run1("show", "FRANK@partner.example")
	for _, want := range []string{"fingerprint:  " + fp, "subject:      CN=Frank", "first seen:   2026-11-29T12:00:00Z", "last seen:    2026-11-30T12:00:00Z", "capabilities: aes256-gcm, rsaes-oaep", "DNSSEC-secure SMIMEA"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("show: missing %q: %d %q\n%s", want, code, errs, out)
		}
	}
	out, _, code = run1("export")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("export: %d, %d lines:\n%s", code, len(lines), out)
	}
	var x struct {
		Address, Fingerprint, Certificate string
		FirstSeen                         time.Time `json:"first_seen"`
		LastSeen                          time.Time `json:"last_seen"`
		Capabilities                      []string
	}
	if err := json.Unmarshal([]byte(lines[0]), &x); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(x.Certificate))
	if x.Address != "frank@partner.example" || x.Fingerprint != fp || blk == nil || !bytes.Equal(blk.Bytes, der) ||
		!x.LastSeen.Equal(seen) || !x.FirstSeen.Equal(seen.Add(-24*time.Hour)) ||
		strings.Join(x.Capabilities, " ") != "2.16.840.1.101.3.4.1.46 1.2.840.113549.1.1.7" {
		t.Errorf("export line: %+v", x)
	}

	// Beside a running daemon's store the tool works: the file is held
	// only for each operation.
	daemon, err := harvest.OpenBolt(db, harvest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if out, _, code := run1("show", "frank@partner.example"); code != 0 || !strings.Contains(out, fp) {
		t.Errorf("show beside a daemon: %d %q", code, out)
	}
	if err := daemon.Close(); err != nil {
		t.Fatal(err)
	}
	// While another program keeps the file open the tool says so.
	held, err := bbolt.Open(db, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfgShort := filepath.Join(dir, "short.toml")
	if err := os.WriteFile(cfgShort, fmt.Appendf(nil, "[store]\npath = %q\ntimeout = \"100ms\"\n", db), 0o600); err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	if code := run([]string{"store", "--config", cfgShort, "list"}, &o, &e); code != 1 || !strings.Contains(e.String(), "locked by another process") {
		t.Errorf("list while held: %d %q", code, e.String())
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}

	if out, _, code := run1("forget", "Frank@partner.example"); code != 0 || !strings.Contains(out, "frank@partner.example: 1 certificate(s) forgotten") {
		t.Errorf("forget: %d %q", code, out)
	}
	if out, _, code := run1("show", "frank@partner.example"); code != 0 || !strings.Contains(out, "nothing stored") {
		t.Errorf("show after forget: %d %q", code, out)
	}
	for _, args := range [][]string{{}, {"show"}, {"forget"}, {"list", "x"}, {"drop"}} {
		if _, errs, code := run1(args...); code != 2 || !strings.Contains(errs, "usage") {
			t.Errorf("%v: %d %q", args, code, errs)
		}
	}
	// Backend off.
	off := filepath.Join(dir, "off.toml")
	if err := os.WriteFile(off, []byte("[store]\nbackend = \"off\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"store", "--config", off, "list"}, &o, &e); code != 2 {
		t.Errorf("backend off: %d", code)
	}
}
