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
	"sync"
	"syscall"
	"testing"
	"time"
)

const sender = "sender@local.test"

// env is one top-level test's environment: NSD and Unbound serving its
// zones, the sink standing in for the Internet, and the MTAs with the
// danemilters they call. newEnv makes its directory, start brings it up.
type env struct {
	dir        string
	keys       string // where the test's keys go
	bin        string // danemilter
	config     string // danemilter.toml
	log        string // the output of Postfix's danemilter
	milterPort int
	milter     *milterDaemon
	dns        *dnsEnv
	sink       *sink
	postfix    *postfixEnv
	alice, bob *user
	carol      string
	seq        int
	mtas       []*mta            // every MTA of the environment
	cur        *mta              // the MTA of this copy (forMTA), nil: Postfix
	virtuser   map[string]string // Sendmail's virtusertable, if any
	started    time.Time
}

// envSpec is what sets one environment apart from the others.
type envSpec struct {
	zones []zoneSpec
	// config writes the configuration of a danemilter on milterPort into
	// dir, for split copies to reinject ("" for none), and returns its
	// path. It runs once per MTA, after DNS is up.
	config func(dir string, milterPort int, reinject string) string
	// checkConfig, if set, runs between writing Postfix's danemilter's
	// configuration and starting it.
	checkConfig func(t *testing.T, reinject string)
	// postfixMain is appended to Postfix's main.cf, postfixServices to its
	// master.cf.
	postfixMain     string
	postfixServices []postfixService
	// reinject gives Postfix a milter-less listener for split copies
	// (README "Mixed recipients"), the re-injection address of its
	// danemilter.
	reinject bool
	// sendmail starts a Sendmail beside Postfix, with a danemilter of its
	// own; virtuser is its virtusertable.
	sendmail bool
	virtuser map[string]string
}

// postfixService is a listener of master.cf beyond the smtpd with milters.
type postfixService struct {
	name string // for the wait's message
	addr string // host:port
	conf string // its master.cf lines
}

// reinjectService is the re-injection listener of README "Mixed
// recipients": an smtpd without milters.
func reinjectService(addr string) postfixService {
	return postfixService{name: "postfix re-injection smtpd", addr: addr, conf: addr + ` inet n - n - - smtpd
  -o syslog_name=postfix/reinject
  -o smtpd_milters= -o non_smtpd_milters= -o receive_override_options=no_milters
  -o content_filter= -o mynetworks=127.0.0.0/8
  -o smtpd_recipient_restrictions=permit_mynetworks,reject -o smtpd_client_restrictions=
`}
}

// newEnv checks that the test can run (requireEnvironment, and programs
// only it needs) and makes its directory, a directory for keys, and the
// danemilter binary, for what the test prepares before start.
func newEnv(t *testing.T, programs ...string) *env {
	t.Helper()
	requireEnvironment(t)
	requirePrograms(t, programs...)
	e := &env{started: time.Now(), dir: t.TempDir()}
	e.keys = mkdirPrivate(t, filepath.Join(e.dir, "keys"))
	e.bin = buildDanemilter(t, e.dir)
	return e
}

// secureZone makes alice and bob, who have keys, and carol, who has none,
// and returns the signed zone secure.test that publishes their records.
func (e *env) secureZone(t *testing.T) zoneSpec {
	t.Helper()
	e.alice = newUser(t, e.keys, "alice@secure.test")
	e.bob = newUser(t, e.keys, "bob@secure.test")
	e.carol = "carol@secure.test"
	return zoneSpec{name: zoneName, signed: true, users: []*user{e.alice, e.bob}}
}

// start brings up what spec describes: NSD and Unbound with its zones, the
// sink, danemilter and Postfix, and Sendmail with its own danemilter when
// asked. e.mtas lists Postfix first.
func (e *env) start(t *testing.T, spec envSpec) {
	t.Helper()
	ports := freePorts(t, 5)
	nsdPort, unboundPort, smtpPort := ports[0], ports[1], ports[3]
	e.milterPort = ports[2]
	e.dns = startDNSZones(t, filepath.Join(e.dir, "dns"), nsdPort, unboundPort, spec.zones...)
	t.Logf("DNS ready after %v: NSD on 127.0.0.1:%d, Unbound on %s, trust anchors %v",
		time.Since(e.started).Round(time.Millisecond), nsdPort, e.dns.resolver(), e.dns.anchors)

	e.sink = startSink(t)
	var reinject string
	services := spec.postfixServices
	if spec.reinject {
		reinject = fmt.Sprintf("127.0.0.1:%d", ports[4])
		services = append([]postfixService{reinjectService(reinject)}, services...)
	}
	e.config = spec.config(e.dir, e.milterPort, reinject)
	if spec.checkConfig != nil {
		spec.checkConfig(t, reinject)
	}
	e.log = filepath.Join(e.dir, "danemilter.log")
	e.milter = startDanemilter(t, e.bin, e.config, e.log, e.milterPort)
	var master []string
	for _, s := range services {
		master = append(master, s.conf)
	}
	e.postfix = startPostfix(t, filepath.Join(e.dir, "postfix"), smtpPort, e.sink.port(), e.milterPort, spec.postfixMain, master...)
	for _, s := range services {
		waitTCP(t, s.name, s.addr, 20*time.Second, nil)
	}
	e.mtas = []*mta{e.postfixMTA(reinject, e.log)}
	if spec.sendmail {
		e.virtuser = spec.virtuser
		e.mtas = append(e.mtas, e.addSendmail(t, spec.config))
	}
	var mtas []string
	for _, m := range e.mtas {
		mtas = append(mtas, fmt.Sprintf("%s %s (danemilter %s, re-injection %q)", m.name, m.smtp, m.milter.addr, m.reinject))
	}
	t.Logf("all parts running after %v: %s; sink 127.0.0.1:%d",
		time.Since(e.started).Round(time.Millisecond), strings.Join(mtas, ", "), e.sink.port())
}

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

// handedOut are the ports freePorts returned: none is returned twice, so
// that the ports of two calls never collide before their servers bind them.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePorts returns n distinct ports of 127.0.0.1 that are free for both TCP
// and UDP at the time of the call, and that no earlier call returned.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	handedOut.Lock()
	defer handedOut.Unlock()
	var ports []int
	for tries := 0; len(ports) < n && tries < 100; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("cannot find a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if handedOut.ports[port] {
			held = append(held, l) // so that the next Listen gets another
			continue
		}
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			l.Close()
			continue
		}
		pc.Close()
		held = append(held, l)
		ports = append(ports, port)
		handedOut.ports[port] = true
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

// mkdirPrivate makes a directory only its owner may enter (keys, GnuPG
// homes) or fails the test.
func mkdirPrivate(t *testing.T, dir string) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}
