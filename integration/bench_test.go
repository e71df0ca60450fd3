package integration

import (
	"fmt"
	"net/smtp"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPostfixLargeBench measures large messages through the real Postfix:
// rounds of one message to a keyed recipient through the smtpd with
// danemilter and through a second smtpd of the same Postfix without milters
// (the anchor), interleaved, and danemilter's peak RSS. It runs only when
// DANEMILTER_BENCH=1 (scripts/bench-postfix-large); DANEMILTER_BENCH_SIZE
// (bytes, default 25,000,000) and DANEMILTER_BENCH_ROUNDS (default 5) set
// the load. Time per message runs from the SMTP connection to the message's
// arrival at the sink.
func TestPostfixLargeBench(t *testing.T) {
	if os.Getenv("DANEMILTER_BENCH") != "1" {
		t.Skip("benchmark: set DANEMILTER_BENCH=1 (scripts/bench-postfix-large)")
	}
	e := newEnv(t)
	size := envInt(t, "DANEMILTER_BENCH_SIZE", 25_000_000)
	rounds := envInt(t, "DANEMILTER_BENCH_ROUNDS", 5)
	// Queue files must hold the encrypted copy (README, "Large messages").
	queueLimit := size*142/100 + 1_000_000

	e.alice = newUser(t, e.keys, "alice@secure.test")
	aloneAddr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	e.start(t, envSpec{
		zones: []zoneSpec{{name: zoneName, signed: true, users: []*user{e.alice}}},
		config: func(dir string, milterPort int, _ string) string {
			return daemonConfig{logLevel: "info", top: fmt.Sprintf("max_encrypted_size = \"%d\"\n", queueLimit)}.
				write(t, dir, milterPort, e.dns.resolver())
		},
		postfixMain: fmt.Sprintf("message_size_limit = %d\ntest_client_message_size_limit = %d\n", queueLimit, size+1_000_000),
		postfixServices: []postfixService{{name: "postfix smtpd without milters", addr: aloneAddr,
			conf: aloneAddr + " inet n - n - - smtpd\n  -o syslog_name=postfix/alone -o smtpd_milters= -o message_size_limit=$test_client_message_size_limit\n"}},
	})
	e.dns.requireSecure(t, []*user{e.alice}, nil)

	orig := largeMessage(t, size)
	rss0 := procStatus(t, e.milter.pid(), "VmRSS")
	var withMilter, without []time.Duration
	type arm struct {
		server string
		into   *[]time.Duration
	}
	for i := range rounds {
		arms := []arm{{e.postfix.smtp, &withMilter}, {aloneAddr, &without}}
		if i%2 == 1 { // alternate which arm goes first
			slices.Reverse(arms)
		}
		for _, arm := range arms {
			marker := e.marker(t)
			msg := withMarker(orig, marker)
			start := time.Now()
			if err := smtpSend(arm.server, sender, e.alice.addr, msg); err != nil {
				t.Fatalf("send to %s: %v", arm.server, err)
			}
			ds, err := e.sink.take(marker, []string{e.alice.addr}, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			*arm.into = append(*arm.into, time.Since(start))
			encrypted := strings.Contains(parseHeader(t, ds[0].data).Get("Content-Type"), "pkcs7-mime")
			if encrypted != (arm.server == e.postfix.smtp) {
				t.Fatalf("through %s: encrypted=%v", arm.server, encrypted)
			}
		}
	}
	hwm := procStatus(t, e.milter.pid(), "VmHWM")
	stat := func(d []time.Duration) (lo, med, hi time.Duration) {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[0], s[len(s)/2], s[len(s)-1]
	}
	lo1, med1, hi1 := stat(withMilter)
	lo0, med0, hi0 := stat(without)
	report := fmt.Sprintf(`Postfix, one %d-byte message at a time, %d interleaved rounds (S/MIME AES-256-CBC, RSA-2048, 3 0 0):
| path | min | median | max |
|---|---|---|---|
| Postfix alone | %v | %v | %v |
| Postfix + danemilter | %v | %v | %v |
median ratio (danemilter / alone): %.2f; danemilter RSS before %s, peak (VmHWM) %s
`, size, rounds, lo0.Round(time.Millisecond), med0.Round(time.Millisecond), hi0.Round(time.Millisecond),
		lo1.Round(time.Millisecond), med1.Round(time.Millisecond), hi1.Round(time.Millisecond),
		float64(med1)/float64(med0), rss0, hwm)
	t.Log("\n" + report)
	if out := os.Getenv("DANEMILTER_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// procStatus is one field of /proc/<pid>/status, e.g. "VmHWM" -> "23456 kB".
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

// smtpSend sends msg (CRLF line ends) with net/smtp, which dot-stuffs it.
func smtpSend(server, from, to string, msg []byte) error {
	c, err := smtp.Dial(server)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.local.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
