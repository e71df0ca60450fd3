package main

import (
	"bytes"
	"crypto"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	gomilter "github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/openpgp"

	"github.com/danemilter/danemilter/milter/miltertest"
)

// The README's promises about the command that no other test pinned down.

// TestPromisedUnixSocket: "A stale Unix socket is removed at start" and
// "socket_mode: octal mode of a Unix socket"; a socket someone still listens
// on, or a file that is not a socket, is left alone and refused.
func TestPromisedUnixSocket(t *testing.T) {
	dir := t.TempDir()
	cfgFor := func(path, mode string) *config.Config {
		t.Helper()
		c, err := config.Parse("t", []byte(fmt.Sprintf("listen = \"unix:%s\"\nsocket_mode = %q\n", path, mode)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	stale := filepath.Join(dir, "stale.sock")
	old, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false) // as after a crash
	old.Close()
	if _, err := os.Lstat(stale); err != nil {
		t.Fatal("no stale socket to test with")
	}
	ln, err := listen(cfgFor(stale, "0640"))
	if err != nil {
		t.Fatalf("stale socket not removed: %v", err)
	}
	defer ln.Close()
	fi, err := os.Stat(stale)
	if err != nil || fi.Mode().Perm() != 0o640 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket %v %v, want a socket with mode 0640", fi.Mode(), err)
	}

	// The socket just made is live: a second daemon must not take it.
	if _, err := listen(cfgFor(stale, "0660")); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("live socket: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := listen(cfgFor(file, "0660")); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Error("a file that is not a socket was touched")
	}
}

// TestPromisedMaxEncryptedSizeOff: max_encrypted_size "0" turns the check
// off in the daemon (the milter's "negative = off").
func TestPromisedMaxEncryptedSizeOff(t *testing.T) {
	for in, want := range map[string]int64{"max_encrypted_size = \"0\"\n": -1, "": 10_240_000, "max_encrypted_size = \"14500000\"\n": 14_500_000} {
		c, err := config.Parse("t", []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if got := maxEncryptedSize(c); got != want {
			t.Errorf("%q: milter gets %d, want %d", in, got, want)
		}
	}
}

// TestPromisedRecordBinaryKey: "FILE from gpg --export, binary or armored";
// TestRecord covers the armored form.
func TestPromisedRecordBinaryKey(t *testing.T) {
	e, err := pgp.NewEntity("pia", "", "pia@partner.example", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, DefaultHash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	var bin bytes.Buffer
	if err := e.Serialize(&bin); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "pia.gpg")
	if err := os.WriteFile(keyFile, bin.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"record", "openpgpkey", "--key", keyFile, "pia@partner.example"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	rr, err := dns.NewRR(out.String())
	if err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	if keys, rej := openpgp.SelectKeys("pia@partner.example", []dns.RR{rr}, time.Now()); len(keys) != 1 {
		t.Errorf("record does not yield the key: %+v", rej)
	}
}

// TestPromisedSIGHUP: "SIGHUP reloads the policy map file". The map check
// interval is an hour, so only the signal can bring the new map in: a
// recipient at level none passes before it, and is looked up (and, the
// resolver being unreachable, deferred with 451 4.4.3) under encrypt after.
func TestPromisedSIGHUP(t *testing.T) {
	bin := buildDaemon(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "m.sock")
	mapFile := filepath.Join(dir, "policy.map")
	if err := os.WriteFile(mapFile, []byte("x.example none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.toml")
	conf := fmt.Sprintf("listen = \"unix:%s\"\n[dns]\nresolvers = [\"127.0.0.1:%d\"]\ntimeout = \"1s\"\n[policy]\nmap_file = %q\nmap_check_interval = \"1h\"\n[store]\npath = %q\n",
		sock, freePort(t), mapFile, filepath.Join(dir, "harvest.db"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	waitFor(t, func() bool { _, err := os.Stat(sock); return err == nil }, "socket")

	msg := []byte("From: s@local.example\r\nTo: a@x.example\r\nSubject: x\r\n\r\nhello\r\n")
	reply := func() string {
		t.Helper()
		res, err := miltertest.Simulate("unix", sock, "QH", "s@local.example", []string{"a@x.example"}, msg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rcpts[0] != nil {
			return res.Rcpts[0].SMTPReply
		}
		if res.Final.Type == gomilter.ActionAccept {
			return ""
		}
		return res.Final.SMTPReply
	}
	if r := reply(); r != "" {
		t.Fatalf("level none: reply %q, want accepted", r)
	}
	if err := os.WriteFile(mapFile, []byte("x.example encrypt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if r := reply(); r != "" {
		t.Fatalf("map changed before SIGHUP (check interval 1h): reply %q", r)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return strings.Contains(logs.String(), "policy map reloaded") && strings.Contains(logs.String(), "trigger=SIGHUP entries=1")
	}, "the reload log line")
	if r := reply(); !strings.HasPrefix(r, "451 4.4.3") {
		t.Errorf("after SIGHUP: reply %q, want 451 4.4.3 (encrypt, resolver unreachable)", r)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuf is a bytes.Buffer safe for the daemon's stderr copier and the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
