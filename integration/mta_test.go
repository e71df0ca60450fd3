package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// mta is one MTA of an environment and the danemilter it calls: every
// scenario runs once per MTA, as a subtest named by it ("postfix",
// "sendmail"). Each MTA has a danemilter of its own, because split
// delivery re-injects into that MTA's milter-less listener.
type mta struct {
	name       string // subtest name
	smtp       string // host:port whose mail goes through danemilter
	reinject   string // host:port without milters
	milter     *milterDaemon
	milterPort int
	config     string // that danemilter's configuration
	log        string // and its output
	postfix    *postfixEnv
	sendmail   *sendmailEnv
}

// queued lists the messages the MTA holds in its queue.
func (m *mta) queued(t *testing.T) []string {
	t.Helper()
	if m.sendmail != nil {
		return m.sendmail.queued(t)
	}
	return m.postfix.queuedFiles(t)
}

// postfixMTA records the Postfix of an environment as an mta.
func (e *env) postfixMTA(reinject, log string) *mta {
	return &mta{name: "postfix", smtp: e.postfix.smtp, reinject: reinject, milter: e.milter, milterPort: e.milterPort,
		config: e.config, log: log, postfix: e.postfix}
}

// addSendmail starts a Sendmail beside the environment's Postfix, with a
// danemilter of its own whose configuration writeConfig makes (milter port,
// re-injection address) in its own directory, relaying to the same sink.
func (e *env) addSendmail(t *testing.T, writeConfig func(dir string, milterPort int, reinject string) string) *mta {
	t.Helper()
	ports := freePorts(t, 3)
	milterPort, smtpPort, reinjectPort := ports[0], ports[1], ports[2]
	dir := filepath.Join(e.dir, "sendmail")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &mta{name: "sendmail", milterPort: milterPort, reinject: fmt.Sprintf("127.0.0.1:%d", reinjectPort)}
	m.config = writeConfig(dir, milterPort, m.reinject)
	m.log = filepath.Join(dir, "danemilter.log")
	m.milter = startDanemilter(t, e.bin, m.config, m.log, milterPort)
	m.sendmail = startSendmail(t, filepath.Join(dir, "mta"), smtpPort, reinjectPort, e.sink.port(), milterPort, e.virtuser)
	m.smtp = m.sendmail.smtp
	return m
}

// forMTA is a copy of the environment whose mail goes through m.
func (e *env) forMTA(m *mta) *env {
	c := *e
	c.cur, c.milter, c.milterPort, c.config = m, m.milter, m.milterPort, m.config
	return &c
}

// smtpAddr is where send delivers: the current MTA's, else Postfix's.
func (e *env) smtpAddr() string {
	if e.cur != nil {
		return e.cur.smtp
	}
	return e.postfix.smtp
}

// eachMTA runs f once per MTA of the environment, in subtests named by it.
func (e *env) eachMTA(t *testing.T, f func(t *testing.T, e *env)) {
	t.Helper()
	for _, m := range e.mtas {
		t.Run(m.name, func(t *testing.T) { f(t, e.forMTA(m)) })
	}
}

// mkdirAll is os.MkdirAll that fails the test.
func mkdirAll(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
