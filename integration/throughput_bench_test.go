package integration

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPostfixThroughputBench measures many small messages through the real
// Postfix, the benchmark of issue 10: smtp-source sends N messages of SIZE
// bytes in SESSIONS parallel SMTP sessions (a connection per message, as
// smtp-source does without -d) to one keyed recipient, once through the
// smtpd with danemilter (every message encrypted) and once through a second
// smtpd of the same Postfix without milters (the anchor), alternating which
// goes first, for ROUNDS rounds. A run ends when the sink (the Go SMTP sink
// Postfix relays to) has all N messages; it reports messages per second
// delivered, and accepted (smtp-source's own time), per arm min/median/max,
// the ratio danemilter/alone of each round, and danemilter's CPU time per
// message. It runs only when DANEMILTER_BENCH=1
// (scripts/bench-postfix-throughput); DANEMILTER_BENCH_N (2000),
// DANEMILTER_BENCH_SIZE (10240), DANEMILTER_BENCH_SESSIONS (10) and
// DANEMILTER_BENCH_ROUNDS (5) set the load; DANEMILTER_BENCH_DRY_RUN=1 runs
// danemilter with dry_run = true (it decides and adds its header, encrypts
// nothing), DANEMILTER_BENCH_BIN runs another danemilter binary (an older
// build, to compare).
func TestPostfixThroughputBench(t *testing.T) {
	if os.Getenv("DANEMILTER_BENCH") != "1" {
		t.Skip("benchmark: set DANEMILTER_BENCH=1 (scripts/bench-postfix-throughput)")
	}
	e := newEnv(t, "smtp-source")
	n := envInt(t, "DANEMILTER_BENCH_N", 2000)
	size := envInt(t, "DANEMILTER_BENCH_SIZE", 10240)
	sessions := envInt(t, "DANEMILTER_BENCH_SESSIONS", 10)
	rounds := envInt(t, "DANEMILTER_BENCH_ROUNDS", 5)
	dryRun := os.Getenv("DANEMILTER_BENCH_DRY_RUN") == "1"
	if bin := os.Getenv("DANEMILTER_BENCH_BIN"); bin != "" {
		e.bin = bin
	}
	top := ""
	if dryRun {
		top = "dry_run = true\n"
	}

	e.alice = newUser(t, e.keys, "alice@secure.test")
	aloneAddr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	e.start(t, envSpec{
		zones: []zoneSpec{{name: zoneName, signed: true, users: []*user{e.alice}}},
		config: func(dir string, milterPort int, _ string) string {
			return daemonConfig{logLevel: "info", top: top}.write(t, dir, milterPort, e.dns.resolver())
		},
		postfixServices: []postfixService{{name: "postfix smtpd without milters", addr: aloneAddr,
			conf: aloneAddr + " inet n - n - - smtpd\n  -o syslog_name=postfix/alone -o smtpd_milters= -o message_size_limit=$test_client_message_size_limit\n"}},
	})
	e.dns.requireSecure(t, []*user{e.alice}, nil)
	source := mustLookPath(t, "smtp-source")

	// run sends one batch through server and returns the time until
	// smtp-source finished and until the sink had every message.
	run := func(server string, withMilter bool) (accepted, delivered time.Duration) {
		t.Helper()
		base := e.sink.count()
		start := time.Now()
		cmd := exec.Command(source, "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n), "-l", strconv.Itoa(size),
			"-f", sender, "-t", e.alice.addr, "-M", "client.local.test", server)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Fatalf("smtp-source to %s: %v\n%s", server, err, clip(out, 2000))
		}
		accepted = time.Since(start)
		deadline := time.Now().Add(5 * time.Minute)
		for e.sink.count() < base+n {
			if time.Now().After(deadline) {
				t.Fatalf("through %s: %d of %d messages at the sink after 5 minutes", server, e.sink.count()-base, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		delivered = time.Since(start)
		ds := e.sink.rest("", 0)
		enc, traced := 0, 0
		for _, d := range ds {
			head := string(d.data[:min(len(d.data), 4096)])
			if strings.Contains(head, "pkcs7-mime") {
				enc++
			}
			if strings.Contains(head, "X-Danemilter:") {
				traced++
			}
		}
		wantEnc, wantTraced := 0, 0
		if withMilter {
			wantTraced = n
			if !dryRun {
				wantEnc = n
			}
		}
		if len(ds) != n || enc != wantEnc || traced != wantTraced {
			t.Fatalf("through %s: %d messages at the sink, %d encrypted, %d with the trace header; want %d, %d, %d", server, len(ds), enc, traced, n, wantEnc, wantTraced)
		}
		return accepted, delivered
	}
	// A warm-up batch per arm: Postfix's processes started, the lookup cached.
	run(e.postfix.smtp, true)
	run(aloneAddr, false)

	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	var alone, milter, aloneAcc, milterAcc, ratios, ratiosAcc, cpu []float64
	for i := range rounds {
		arms := []bool{true, false}
		if i%2 == 1 { // alternate which arm goes first
			slices.Reverse(arms)
		}
		var a, m, aa, ma float64
		for _, withMilter := range arms {
			if withMilter {
				c0 := cpuTime(t, e.milter.pid())
				acc, del := run(e.postfix.smtp, true)
				cpu = append(cpu, float64(cpuTime(t, e.milter.pid())-c0)/float64(time.Microsecond)/float64(n))
				m, ma = rate(del), rate(acc)
			} else {
				acc, del := run(aloneAddr, false)
				a, aa = rate(del), rate(acc)
			}
		}
		alone, milter, aloneAcc, milterAcc = append(alone, a), append(milter, m), append(aloneAcc, aa), append(milterAcc, ma)
		ratios, ratiosAcc = append(ratios, m/a), append(ratiosAcc, ma/aa)
		t.Logf("round %d: alone %.0f msg/s, with danemilter %.0f msg/s delivered (%.3f); accepted %.0f / %.0f (%.3f)", i+1, a, m, m/a, aa, ma, ma/aa)
	}
	stat := func(v []float64) (lo, med, hi float64) {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[0], s[len(s)/2], s[len(s)-1]
	}
	row := func(name, format string, v []float64) string {
		lo, med, hi := stat(v)
		return fmt.Sprintf("| %s | "+format+" | "+format+" | "+format+" |\n", name, lo, med, hi)
	}
	mode := "S/MIME AES-256-CBC, RSA-2048, 3 0 0"
	if dryRun {
		mode = "danemilter in dry run"
	}
	report := fmt.Sprintf("smtp-source -s %d -m %d -l %d through Postfix to the sink, %d interleaved rounds (%s):\n", sessions, n, size, rounds, mode) +
		"| | min | median | max |\n|---|---|---|---|\n" +
		row("Postfix alone, delivered msg/s", "%.0f", alone) +
		row("Postfix + danemilter, delivered msg/s", "%.0f", milter) +
		row("ratio danemilter/alone, delivered (per round)", "%.3f", ratios) +
		row("Postfix alone, accepted msg/s", "%.0f", aloneAcc) +
		row("Postfix + danemilter, accepted msg/s", "%.0f", milterAcc) +
		row("ratio danemilter/alone, accepted (per round)", "%.3f", ratiosAcc) +
		row("danemilter CPU µs per message", "%.0f", cpu)
	t.Log("\n" + report)
	if out := os.Getenv("DANEMILTER_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// cpuTime is the user and system CPU time a process has used
// (/proc/<pid>/stat, utime and stime in clock ticks of 10 ms).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
