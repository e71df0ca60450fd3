package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The danemilter binary of the package's tests: built once, by the first
// test that needs it, into a directory TestMain removes.
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// buildDanemilter returns the danemilter binary, which one go build makes
// for every test of the package; dir is not used.
func buildDanemilter(t *testing.T, dir string) string {
	t.Helper()
	goTool := goTool(t)
	build.once.Do(func() {
		if build.dir, build.err = os.MkdirTemp("", "danemilter-integration-"); build.err != nil {
			return
		}
		bin := filepath.Join(build.dir, "danemilter")
		out, errOut, err := runErr("", 5*time.Minute, goTool, "build", "-o", bin, "github.com/danemilter/danemilter/cmd/danemilter")
		if err != nil {
			build.err = fmt.Errorf("go build danemilter: %w\n%s%s", err, out, errOut)
			return
		}
		build.bin = bin
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// daemonConfig is a test's danemilter configuration beyond what every test
// sets: the milter on 127.0.0.1, local.test local, the spool in the test's
// directory, Unbound the only resolver with a 2s timeout.
type daemonConfig struct {
	logLevel string // "debug" when empty
	top      string // more top-level keys
	policy   string // the lines of [policy]; `default = "dane"` when empty
	reinject string // reinject.address, if any
	tables   string // more tables
	// localDomains are local_domains; ["local.test"] when empty.
	localDomains []string
}

// write writes the configuration to dir/danemilter.toml and returns its
// path.
func (c daemonConfig) write(t *testing.T, dir string, milterPort int, resolver string) string {
	t.Helper()
	if c.logLevel == "" {
		c.logLevel = "debug"
	}
	if c.policy == "" {
		c.policy = `default = "dane"`
	}
	if c.reinject != "" {
		c.tables += fmt.Sprintf("\n[reinject]\naddress = %q\nhelo = \"danemilter.local.test\"\n", c.reinject)
	}
	if !strings.Contains(c.top+c.tables, "[store]") {
		// The default backend (bolt), in the test's own directory: never
		// the host's /var/lib/danemilter, and never shared between the
		// test's daemons.
		c.tables += fmt.Sprintf("\n[store]\npath = %q\n", filepath.Join(dir, "store", "harvest.db"))
	}
	if len(c.localDomains) == 0 {
		c.localDomains = []string{"local.test"}
	}
	var local []string
	for _, d := range c.localDomains {
		local = append(local, strconv.Quote(d))
	}
	path := filepath.Join(dir, "danemilter.toml")
	writeFile(t, path, fmt.Appendf(nil, `# danemilter integration test
listen = "inet:127.0.0.1:%d"
local_domains = [%s]
log_level = %q
spool_dir = %q
%s
[dns]
resolvers = [%q]
timeout = "2s"

[policy]
%s
%s`, milterPort, strings.Join(local, ", "), c.logLevel, dir, c.top, resolver, c.policy, c.tables), 0o644)
	return path
}

// writeConfig writes danemilter's configuration: milter on milterPort,
// Unbound as the only resolver, policy dane for everyone.
func writeConfig(t *testing.T, dir string, milterPort int, resolver string) string {
	t.Helper()
	return daemonConfig{}.write(t, dir, milterPort, resolver)
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
