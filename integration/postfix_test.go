package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// postfixEnv is a private Postfix instance: its own config, queue and data
// directories, listening on 127.0.0.1 only, relaying everything to the sink
// through the milter. The system instance (/etc/postfix) is not touched.
type postfixEnv struct {
	dir     string
	confDir string
	smtp    string // host:port of smtpd
	maillog string
}

// startPostfix writes main.cf and master.cf and runs "postfix -c DIR start".
// extraMain is appended to main.cf (e.g. a canonical map); extraServices are
// appended to master.cf (e.g. a milter-less re-injection listener).
func startPostfix(t *testing.T, dir string, smtpPort, sinkPort, milterPort int, extraMain string, extraServices ...string) *postfixEnv {
	t.Helper()
	p := &postfixEnv{
		dir:     dir,
		confDir: filepath.Join(dir, "conf"),
		smtp:    fmt.Sprintf("127.0.0.1:%d", smtpPort),
		maillog: filepath.Join(dir, "maillog"),
	}
	queueDir := filepath.Join(dir, "queue")
	// Postfix's daemons run as the postfix user: every directory above
	// the queue must be searchable. postfix start creates the queue's
	// subdirectories, not the queue directory itself (it must be root's).
	for _, d := range []string{p.confDir, queueDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Clean(dir); strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	main := fmt.Sprintf(`# Private instance of the danemilter integration test.
compatibility_level = 3.6
config_directory = %[1]s
queue_directory = %[2]s
data_directory = %[3]s
mail_owner = postfix
setgid_group = postdrop
# Without maillog_file_prefixes covering the log, postfix start fails
# without a word (the default allows only /var and /dev/stdout).
maillog_file = %[4]s
maillog_file_prefixes = %[5]s
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.local.test
mydomain = local.test
myorigin = $myhostname
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:%[6]d
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtputf8_enable = no
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_milters = inet:127.0.0.1:%[7]d
non_smtpd_milters = $smtpd_milters
milter_protocol = 6
milter_default_action = tempfail
milter_connect_timeout = 5s
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
# What SMTP clients may send: the client-facing smtpd's message_size_limit
# (master.cf -o), apart from main.cf's message_size_limit, which cleanup
# applies to queue files and so to encrypted copies (README, "Large
# messages"). Both are Postfix's default unless a test raises them.
test_client_message_size_limit = 10240000
`, p.confDir, queueDir, filepath.Join(dir, "data"), p.maillog, dir, sinkPort, milterPort) + extraMain
	// chroot "n" everywhere: the queue directory of a temporary instance
	// is no chroot jail (no /etc/services, resolv.conf, ... copied in).
	master := fmt.Sprintf(`# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:%d inet n    -       n       -       -       smtpd
  -o message_size_limit=$test_client_message_size_limit
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`, smtpPort) + strings.Join(extraServices, "")
	writeFile(t, filepath.Join(p.confDir, "main.cf"), []byte(main), 0o644)
	writeFile(t, filepath.Join(p.confDir, "master.cf"), []byte(master), 0o644)

	postfix := mustLookPath(t, "postfix")
	if _, errOut, err := runErr(dir, 60*time.Second, postfix, "-c", p.confDir, "check"); err != nil {
		p.logMaillog(t)
		t.Fatalf("postfix -c %s check: %v\n%s", p.confDir, err, errOut)
	}
	// Stop it however the test ends: postfix stop, then the master by its
	// pid file if it is still there.
	t.Cleanup(func() {
		if t.Failed() {
			p.logMaillog(t)
		}
	})
	t.Cleanup(func() { p.stop(t) })
	out, errOut, err := runErr(dir, 60*time.Second, postfix, "-c", p.confDir, "start")
	if err != nil {
		p.logMaillog(t)
		t.Fatalf("postfix -c %s start: %v\n%s%s", p.confDir, err, out, errOut)
	}
	p.waitBanner(t, 20*time.Second)
	return p
}

func (p *postfixEnv) logMaillog(t *testing.T) {
	t.Helper()
	logTail(t, "postfix maillog ("+p.maillog+")", p.maillog, 300)
}

// masterPID is the pid of this instance's master process, from its pid file.
func (p *postfixEnv) masterPID() int {
	b, err := os.ReadFile(filepath.Join(p.dir, "queue", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err != nil {
		return 0
	}
	return pid
}

func (p *postfixEnv) stop(t *testing.T) {
	pid := p.masterPID()
	if pid <= 1 {
		return
	}
	if _, errOut, err := runErr(p.dir, 30*time.Second, mustLookPath(t, "postfix"), "-c", p.confDir, "stop"); err != nil {
		t.Logf("postfix -c %s stop: %v\n%s", p.confDir, err, errOut)
	}
	// postfix stop waits for the master; if it is still alive, end it by
	// the pid this instance wrote.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil && isPostfixMaster(pid) {
		t.Logf("postfix master %d still running after stop; killing it", pid)
		if proc, err := os.FindProcess(pid); err == nil {
			_ = proc.Kill()
		}
	}
}

// isPostfixMaster reports whether pid is a live master process (not a
// zombie), so a pid file left behind never makes us signal another process.
func isPostfixMaster(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	return strings.Contains(s, "(master)") && !strings.Contains(s, ") Z ")
}

// waitBanner waits until smtpd answers with its 220 greeting.
func (p *postfixEnv) waitBanner(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", p.smtp, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			fmt.Fprintf(c, "QUIT\r\n")
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "220 ") {
				return
			}
			err = fmt.Errorf("greeting %q: %v", line, rerr)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	p.logMaillog(t)
	t.Fatalf("postfix smtpd does not greet on %s after %v: %v", p.smtp, timeout, last)
}

// queuedFiles lists the queue files of messages Postfix holds (received,
// in delivery, deferred or held).
func (p *postfixEnv) queuedFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, q := range []string{"incoming", "active", "deferred", "hold"} {
		root := filepath.Join(p.dir, "queue", q)
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				files = append(files, strings.TrimPrefix(path, p.dir+"/"))
			}
			return nil
		})
		if err != nil {
			t.Errorf("list %s: %v", root, err)
		}
	}
	return files
}
