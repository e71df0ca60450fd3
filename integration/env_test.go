package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requiredBinaries are the programs of the Debian packages setup.sh installs
// that this test runs.
var requiredBinaries = []string{
	"nsd", "unbound", "postfix", "ldns-keygen", "ldns-signzone", "ldns-key2ds",
	"swaks", "openssl", "miltertest", "dig",
}

// requireEnvironment skips the test under -short, and when it cannot run
// here (not root, a program missing) unless DANEMILTER_INTEGRATION=1
// demands that it runs, in which case a missing prerequisite is a failure.
func requireEnvironment(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test skipped with -short")
	}
	mandatory := os.Getenv("DANEMILTER_INTEGRATION") == "1"
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root privileges (Postfix, NSD and Unbound are started as root)")
	}
	for _, b := range requiredBinaries {
		if _, err := lookPath(b); err != nil {
			missing = append(missing, "program "+b)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "integration test needs: " + strings.Join(missing, ", ") + " (install them with ./setup.sh; run as root)"
	if mandatory {
		t.Fatal(msg + "; DANEMILTER_INTEGRATION=1 makes this a failure")
	}
	t.Skip(msg + "; set DANEMILTER_INTEGRATION=1 to make this a failure")
}

// lookPath finds a program in PATH or in the sbin directories, which are not
// in every user's PATH.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func mustLookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := lookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// freePorts returns n distinct ports of 127.0.0.1 that are free for both TCP
// and UDP at the time of the call.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n && tries < 100; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("cannot find a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			l.Close()
			continue
		}
		pc.Close()
		held = append(held, l)
		ports = append(ports, port)
	}
	if len(ports) < n {
		t.Fatalf("found only %d of %d free ports", len(ports), n)
	}
	return ports
}

// waitTCP waits until something accepts connections on addr.
func waitTCP(t *testing.T, what, addr string, timeout time.Duration, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if exited != nil {
			select {
			case <-exited:
				t.Fatalf("%s exited before it listened on %s", what, addr)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after %v: %v", what, addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proc is a long-running server process the test started. It is stopped by
// its PID in t.Cleanup, and its output is shown when the test fails.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProc starts argv with stdout and stderr going to logPath.
func startProc(t *testing.T, name, logPath string, argv ...string) *proc {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a terminal's ^C does not reach it first
	// and the cleanup below decides the order of shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	// Registered first, so it runs after the stop below: the log is complete.
	t.Cleanup(func() {
		if t.Failed() {
			logTail(t, name+" output ("+logPath+")", logPath, 200)
		}
	})
	t.Cleanup(p.stop)
	t.Logf("started %s, pid %d: %s", name, cmd.Process.Pid, strings.Join(argv, " "))
	return p
}

// stop ends the process by its PID: SIGTERM, then SIGKILL after 5 seconds.
// It is idempotent.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process abruptly by its PID (SIGKILL), as a crash would.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// logTail logs the last max lines of a file.
func logTail(t *testing.T, title, path string, max int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("%s: %v", title, err)
		return
	}
	lines := strings.SplitAfter(string(b), "\n")
	skipped := 0
	if len(lines) > max {
		skipped = len(lines) - max
		lines = lines[skipped:]
	}
	head := ""
	if skipped > 0 {
		head = fmt.Sprintf("[... %d earlier lines ...]\n", skipped)
	}
	t.Logf("%s:\n%s%s", title, head, strings.Join(lines, ""))
}

// run runs a short command and returns its stdout; on failure or timeout it
// fails the test with the command's output.
func run(t *testing.T, dir string, timeout time.Duration, argv ...string) []byte {
	t.Helper()
	out, errOut, err := runErr(dir, timeout, argv...)
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(argv, " "), err, out, errOut)
	}
	return out
}

// runErr runs a short command and returns its stdout, its stderr and the
// error of running it (an *exec.ExitError for a non-zero exit).
func runErr(dir string, timeout time.Duration, argv ...string) (stdout, stderr []byte, err error) {
	return runIn(dir, nil, timeout, argv...)
}

// runStdin is runErr with stdin as the command's standard input.
func runStdin(stdin []byte, timeout time.Duration, argv ...string) (stdout, stderr []byte, err error) {
	return runIn("", stdin, timeout, argv...)
}

func runIn(dir string, stdin []byte, timeout time.Duration, argv ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	return o.Bytes(), e.Bytes(), err
}

// goTool returns the go command; go test puts its own first in PATH.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go command not found in PATH")
	}
	return p
}

// writeFile writes a file or fails the test.
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}
