package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// buildDaemon compiles the command once per test.
func buildDaemon(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the daemon")
	}
	bin := filepath.Join(t.TempDir(), "danemilter")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestServeDrainsOnSIGTERM starts the daemon, opens a milter session in the
// middle of a message, sends SIGTERM, finishes the message and checks that it
// was answered and that the daemon then exits 0; a second daemon gets two
// signals while a session hangs and must exit at once.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	bin := buildDaemon(t)
	for _, tc := range []struct {
		name    string
		signals int
		finish  bool
	}{{"drain", 1, true}, {"second signal", 2, false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "m.sock")
			cfg := filepath.Join(dir, "c.toml")
			// A resolver port nobody answers: lookups would be indeterminate,
			// policy none avoids them altogether.
			conf := fmt.Sprintf("listen = \"unix:%s\"\nsocket_mode = \"0600\"\n[dns]\nresolvers = [\"127.0.0.1:%d\"]\n[timeouts]\nshutdown = \"20s\"\n[policy]\ndefault = \"none\"\n[store]\npath = %q\n", sock, freePort(t), filepath.Join(dir, "harvest.db"))
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			cmd := exec.Command(bin, "serve", "--config", cfg)
			cmd.Stderr = &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			var exitErr error
			go func() { exitErr = cmd.Wait(); close(exited) }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
				if t.Failed() {
					t.Log(logs.String())
				}
			})
			deadline := time.Now().Add(10 * time.Second)
			for {
				if fi, err := os.Stat(sock); err == nil {
					if fi.Mode().Perm() != 0o600 {
						t.Errorf("socket mode %o, want 600", fi.Mode().Perm())
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("socket never appeared")
				}
				time.Sleep(20 * time.Millisecond)
			}
			s, err := gomilter.NewClient("unix", sock).Session(gomilter.NewMacroBag())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, step := range []func() (*gomilter.Action, error){
				func() (*gomilter.Action, error) { return s.Conn("localhost", gomilter.FamilyInet, 25, "127.0.0.1") },
				func() (*gomilter.Action, error) { return s.Helo("localhost") },
				func() (*gomilter.Action, error) { return s.Mail("<a@local.example>", "") },
				func() (*gomilter.Action, error) { return s.Rcpt("<b@remote.example>", "") },
				s.DataStart,
			} {
				if _, err := step(); err != nil {
					t.Fatal(err)
				}
			}
			for range tc.signals {
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if tc.finish {
				if _, err := s.HeaderField("Subject", " x", nil); err != nil {
					t.Fatal(err)
				}
				if _, err := s.HeaderEnd(); err != nil {
					t.Fatal(err)
				}
				_, act, err := s.BodyReadFrom(strings.NewReader("body\r\n"))
				if err != nil || act.Type != gomilter.ActionAccept {
					t.Fatalf("in-flight message after SIGTERM: %+v %v", act, err)
				}
				s.Close()
			}
			select {
			case <-exited:
				if exitErr != nil && tc.signals == 1 {
					t.Errorf("exit: %v", exitErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("daemon did not exit")
			}
			if _, err := os.Stat(sock); !os.IsNotExist(err) {
				t.Errorf("socket left behind: %v", err)
			}
			if !strings.Contains(logs.String(), "shutting down") {
				t.Errorf("no shutdown log line:\n%s", logs.String())
			}
		})
	}
}
