package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Sendmail 8.17 from Debian's packages, extracted by setup.sh (Debian's
// sendmail-bin conflicts with Postfix as the system MTA): the binary without
// its setgid bit (the loader ignores LD_LIBRARY_PATH for setgid programs),
// liblockfile and libwrap beside it, m4 and the cf macros. It runs under
// "unshare -m" with a private /etc/hosts and /etc/resolv.conf bind-mounted,
// so that its host name canonicalization never sends a DNS query off the
// machine.

// sendmailDir is where setup.sh extracts Sendmail: .cache/sendmail in the
// repository, or $DANEMILTER_SENDMAIL.
func sendmailDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("DANEMILTER_SENDMAIL"); d != "" {
		return d
	}
	d, err := filepath.Abs(filepath.Join("..", ".cache", "sendmail"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// requireSendmail is requireEnvironment for the extracted Sendmail.
func requireSendmail(t *testing.T) string {
	t.Helper()
	d := sendmailDir(t)
	for _, p := range []string{"sendmail", "root/usr/bin/m4", "root/usr/share/sendmail/cf/m4/cf.m4"} {
		if _, err := os.Stat(filepath.Join(d, p)); err != nil {
			msg := fmt.Sprintf("Sendmail not prepared in %s (run ./setup.sh): %v", d, err)
			if os.Getenv("DANEMILTER_INTEGRATION") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	if _, err := lookPath("unshare"); err != nil {
		t.Fatal("unshare (util-linux) missing")
	}
	return d
}

// sendmailEnv is one private Sendmail daemon: an SMTP port whose mail goes
// through danemilter, a port without milters for re-injection, relaying
// everything to the sink.
type sendmailEnv struct {
	dir, base    string // its directory; the extracted packages
	cf, submitCF string
	smtp         string // host:port with danemilter
	reinject     string // host:port without milters
	hosts        string // private /etc/hosts
	resolv       string // private /etc/resolv.conf
	proc         *proc
}

// startSendmail builds sendmail.cf and submit.cf with the extracted m4 and
// starts "sendmail -bD" (a daemon in the foreground).
//
// virtuser, when not empty, is a virtusertable (address -> address) for the
// domains of its keys: Sendmail's way of rewriting recipients.
func startSendmail(t *testing.T, dir string, smtpPort, reinjectPort, sinkPort, milterPort int, virtuser map[string]string) *sendmailEnv {
	t.Helper()
	base := requireSendmail(t)
	s := &sendmailEnv{
		dir: dir, base: base,
		cf: filepath.Join(dir, "sendmail.cf"), submitCF: filepath.Join(dir, "submit.cf"),
		smtp:     fmt.Sprintf("127.0.0.1:%d", smtpPort),
		reinject: fmt.Sprintf("127.0.0.1:%d", reinjectPort),
		hosts:    filepath.Join(dir, "hosts"), resolv: filepath.Join(dir, "resolv.conf"),
	}
	for _, d := range []string{"mqueue", "clientmqueue"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, s.hosts, []byte("127.0.0.1 localhost mx.local.test\n::1 localhost ip6-localhost\n"), 0o644)
	writeFile(t, s.resolv, []byte("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"), 0o644)
	writeFile(t, filepath.Join(dir, "service.switch"), []byte("hosts files\naliases files\n"), 0o644)
	writeFile(t, filepath.Join(dir, "aliases"), []byte(""), 0o644)
	writeFile(t, filepath.Join(dir, "local-host-names"), []byte(""), 0o644)
	cfDir := filepath.Join(base, "root/usr/share/sendmail/cf")
	common := fmt.Sprintf(`divert(-1)
# Private Sendmail of the danemilter integration tests: 127.0.0.1 only.
divert(0)dnl
include(%[1]s)dnl
VERSIONID(%[2]s)dnl
OSTYPE(%[3]s)dnl
define(%[4]s, %[5]s)dnl
define(%[6]s, %[7]s)dnl
define(%[8]s, %[9]s)dnl
define(%[10]s, %[11]s)dnl
define(%[12]s, %[13]s)dnl
define(%[14]s, %[15]s)dnl
define(%[16]s, %[17]s)dnl
define(%[18]s, %[19]s)dnl
`,
		q(filepath.Join(cfDir, "m4/cf.m4")), q("danemilter test"), q("linux"),
		q("confDOMAIN_NAME"), q("mx.local.test"),
		q("confDONT_PROBE_INTERFACES"), q("True"),
		q("confSERVICE_SWITCH_FILE"), q(filepath.Join(dir, "service.switch")),
		q("confHOSTS_FILE"), q(s.hosts),
		q("confCW_FILE"), q(filepath.Join(dir, "local-host-names")),
		q("ALIAS_FILE"), q(filepath.Join(dir, "aliases")),
		q("confPID_FILE"), q(filepath.Join(dir, "sendmail.pid")),
		q("STATUS_FILE"), q(filepath.Join(dir, "statistics")),
	)
	mc := common + fmt.Sprintf(`define(%[1]s, %[2]s)dnl
define(%[3]s, %[4]s)dnl
define(%[5]s, %[6]s)dnl
define(%[7]s, %[8]s)dnl
define(%[9]s, %[10]s)dnl
define(%[11]s, %[12]s)dnl
FEATURE(%[13]s)dnl
FEATURE(%[14]s)dnl
FEATURE(%[15]s)dnl
FEATURE(%[16]s)dnl
DAEMON_OPTIONS(%[17]s)dnl
DAEMON_OPTIONS(%[18]s)dnl
INPUT_MAIL_FILTER(%[19]s, %[20]s)dnl
%[22]sMAILER(%[21]s)dnl
`,
		q("QUEUE_DIR"), q(filepath.Join(dir, "mqueue")),
		q("SMART_HOST"), q("relay:[127.0.0.1]"),
		q("RELAY_MAILER_ARGS"), q(fmt.Sprintf("TCP $h %d", sinkPort)),
		q("confDELIVERY_MODE"), q("background"),
		q("confTO_QUEUERETURN"), q("1h"),
		q("confMILTER_LOG_LEVEL"), q("10"),
		q("no_default_msa"), q("accept_unresolvable_domains"), q("promiscuous_relay"), q("nocanonify"),
		q(fmt.Sprintf("Port=%d, Addr=127.0.0.1, Name=MTA", smtpPort)),
		// The re-injection port: no milters, so a copy never comes back.
		q(fmt.Sprintf("Port=%d, Addr=127.0.0.1, Name=REINJECT, InputMailFilters=", reinjectPort)),
		q("danemilter"), q(fmt.Sprintf("S=inet:%d@127.0.0.1, F=T, T=C:5s;S:30s;R:60s;E:5m", milterPort)),
		q("smtp"), s.virtuserConfig(t, virtuser),
	)
	// submit.cf: the mail submission program (MSP) that Sendmail's command
	// line uses; it hands mail over SMTP to the daemon, whose milters run.
	// Debian's MSP runs as smmsp, a user only the sendmail packages make;
	// the test's runs as mail, which owns its queue.
	submit := common + fmt.Sprintf(`define(%[1]s, %[2]s)dnl
define(%[3]s, %[4]s)dnl
define(%[5]s, %[6]s)dnl
FEATURE(%[7]s, %[8]s)dnl
`,
		q("MSP_QUEUE_DIR"), q(filepath.Join(dir, "clientmqueue")),
		q("confRUN_AS_USER"), q("mail:mail"),
		// Before FEATURE(msp), which includes the smtp mailers.
		q("RELAY_MAILER_ARGS"), q(fmt.Sprintf("TCP $h %d", smtpPort)),
		q("msp"), q("[127.0.0.1]"),
	)
	// The MSP (user mail) must reach its queue: every directory above it
	// searchable, as for Postfix's daemons.
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Clean(dir); strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "clientmqueue"), 8, 8); err != nil { // mail:mail on Debian
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "clientmqueue"), 0o770); err != nil {
		t.Fatal(err)
	}
	m4 := filepath.Join(base, "root/usr/bin/m4")
	for _, f := range []struct{ mc, cf, text string }{{"sendmail.mc", s.cf, mc}, {"submit.mc", s.submitCF, submit}} {
		writeFile(t, filepath.Join(dir, f.mc), []byte(f.text), 0o644)
		out, errOut, err := runErr(dir, 30*time.Second, m4, "-D_CF_DIR_="+cfDir+"/", filepath.Join(dir, f.mc))
		if err != nil {
			t.Fatalf("m4 %s: %v\n%s", f.mc, err, errOut)
		}
		writeFile(t, f.cf, out, 0o644)
	}
	s.proc = startProc(t, "sendmail", filepath.Join(dir, "sendmail.log"), s.argv("-bD", "-C", s.cf, "-q10s")...)
	// Sendmail logs to syslog, which the tests do not run: on failure, show
	// its queue instead (sendmail -bp).
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command(s.argv("-C", s.cf, "-bp")[0], s.argv("-C", s.cf, "-bp")[1:]...).CombinedOutput()
			t.Logf("sendmail queue (sendmail -bp):\n%s", out)
		}
	})
	waitTCP(t, "sendmail", s.smtp, 30*time.Second, s.proc.done)
	waitTCP(t, "sendmail re-injection port", s.reinject, 10*time.Second, s.proc.done)
	return s
}

// virtuserConfig writes the virtusertable as a hash map with the extracted
// makemap and returns its sendmail.mc lines.
func (s *sendmailEnv) virtuserConfig(t *testing.T, virtuser map[string]string) string {
	t.Helper()
	if len(virtuser) == 0 {
		return ""
	}
	var table strings.Builder
	domains := map[string]bool{}
	for from, to := range virtuser {
		fmt.Fprintf(&table, "%s\t%s\n", from, to)
		_, d, _ := strings.Cut(from, "@")
		domains[d] = true
	}
	path := filepath.Join(s.dir, "virtusertable")
	makemap := filepath.Join(s.base, "root/usr/libexec/sendmail/makemap")
	cmd := exec.Command(makemap, "-C", os.DevNull, "hash", path)
	cmd.Stdin = strings.NewReader(table.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("makemap hash %s: %v\n%s", path, err, out)
	}
	// The test's directories hang below /tmp, world-writable (sticky):
	// Sendmail opens no map in such a path unless told it is safe.
	lines := fmt.Sprintf("define(%s, %s)dnl\nFEATURE(%s, %s)dnl\n", q("confDONT_BLAME_SENDMAIL"), q("MapInUnsafeDirPath"),
		q("virtusertable"), q("hash "+path))
	for d := range domains {
		lines += fmt.Sprintf("VIRTUSER_DOMAIN(%s)dnl\n", q(d))
	}
	return lines
}

// q quotes an m4 argument.
func q(s string) string { return "`" + s + "'" }

// argv runs Sendmail with args in its own mount namespace with the private
// hosts and resolv.conf.
func (s *sendmailEnv) argv(args ...string) []string {
	script := `mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"`
	bin := filepath.Join(s.base, "sendmail")
	return append([]string{mustLookPathNoT("unshare"), "-m", "--propagation", "private", "sh", "-c", script, "sh", s.hosts, s.resolv,
		"env", "LD_LIBRARY_PATH=" + filepath.Join(s.base, "root/usr/lib/x86_64-linux-gnu"), bin}, args...)
}

func mustLookPathNoT(name string) string {
	p, err := lookPath(name)
	if err != nil {
		return name
	}
	return p
}

// submit sends msg (CRLF line ends) with Sendmail's command line through the
// MSP, as a local user's mail program does.
func (s *sendmailEnv) submit(t *testing.T, from string, rcpts []string, msg []byte) (string, error) {
	t.Helper()
	argv := s.argv(append([]string{"-C", s.submitCF, "-Ac", "-v", "-i", "-odi", "-f", from, "--"}, rcpts...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// verify is "sendmail -bv addr": how Sendmail would route the address.
func (s *sendmailEnv) verify(t *testing.T, addr string) string {
	t.Helper()
	argv := s.argv("-C", s.cf, "-bv", addr)
	out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// queued lists the messages in Sendmail's queue (qf files).
func (s *sendmailEnv) queued(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(s.dir, "mqueue", "qf*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
