package integration

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// buildDanemilter builds the daemon into dir.
func buildDanemilter(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "danemilter")
	out, errOut, err := runErr("", 5*time.Minute, goTool(t), "build", "-o", bin, "github.com/danemilter/danemilter/cmd/danemilter")
	if err != nil {
		t.Fatalf("go build danemilter: %v\n%s%s", err, out, errOut)
	}
	return bin
}

// writeConfig writes danemilter's configuration: milter on milterPort,
// Unbound as the only resolver, policy dane for everyone.
func writeConfig(t *testing.T, dir string, milterPort int, resolver string) string {
	t.Helper()
	path := filepath.Join(dir, "danemilter.toml")
	writeFile(t, path, fmt.Appendf(nil, `# danemilter integration test
listen = "inet:127.0.0.1:%d"
local_domains = ["local.test"]
log_level = "debug"
spool_dir = %q

[dns]
resolvers = [%q]
timeout = "2s"

[policy]
default = "dane"
`, milterPort, dir, resolver), 0o644)
	return path
}

// milterDaemon is a running "danemilter serve".
type milterDaemon struct {
	*proc
	addr string
}

// startDanemilter runs "danemilter serve" and waits until it listens.
func startDanemilter(t *testing.T, bin, config, logPath string, milterPort int) *milterDaemon {
	t.Helper()
	p := startProc(t, "danemilter", logPath, bin, "serve", "--config", config)
	addr := fmt.Sprintf("127.0.0.1:%d", milterPort)
	waitTCP(t, "danemilter", addr, 15*time.Second, p.done)
	return &milterDaemon{proc: p, addr: addr}
}

// lookupExit runs "danemilter lookup" for addr and returns its exit code
// and output.
func lookupExit(t *testing.T, bin, config, addr string) (int, string) {
	t.Helper()
	out, errOut, err := runErr("", 30*time.Second, bin, "lookup", "--config", config, addr)
	text := string(out) + string(errOut)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, text
	case errors.As(err, &ee):
		return ee.ExitCode(), text
	}
	t.Fatalf("danemilter lookup %s: %v\n%s", addr, err, text)
	return -1, ""
}
