// Command danemilter-load is the load harness of danemilter: it starts the
// real daemon as a child process, with an in-process DNS server on loopback
// that answers DNSSEC-secure (AD) SMIMEA records for generated recipients,
// plays an MTA over the milter protocol with many concurrent sessions, and
// reports throughput, latency percentiles and the daemon's peak memory
// (VmHWM from /proc).
//
//	go run ./cmd/danemilter-load -n 200 -c 4 -size 100KB -rcpts 1
//	go run ./cmd/danemilter-load -n 8 -c 1 -size 25MB -rcpts 10
//	go run ./cmd/danemilter-load -n 2000 -c 4 -size 10KB -dry-run
//
// With -dry-run the daemon runs with dry_run = true: it looks up, decides
// and adds its trace header, but encrypts nothing (scripts/bench-load
// compares the two, interleaved).
//
// -store sets the daemon's [store]: off, bolt (a file in the harness's
// temporary directory; the default, as the daemon's own default is bolt)
// or postgres (-store-dsn, a database the caller runs). The daemon asks the
// store for every recipient whose SMIMEA answer has records, so each
// message costs one lookup per recipient. -store-prefill puts an entry for
// every recipient (its certificate) into the store before the daemon
// starts, so the lookups find something; -records hash publishes only the
// SHA-256 of each certificate (3 0 1), so the daemon can encrypt only with
// the certificate from the store (needs -store-prefill). scripts/bench-store
// compares off, bolt and postgres, interleaved.
//
//	go run ./cmd/danemilter-load -n 2000 -c 4 -size 10KB -store off
//	go run ./cmd/danemilter-load -n 2000 -c 4 -size 10KB -store postgres \
//		-store-dsn 'postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable' -store-prefill
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/config"
	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/milter"

	"github.com/danemilter/danemilter/milter/miltertest"
)

func main() {
	n := flag.Int("n", 100, "messages to send")
	c := flag.Int("c", 4, "concurrent milter sessions")
	sizeS := flag.String("size", "100KB", "message body size (e.g. 10KB, 1MB, 25MB)")
	nrcpt := flag.Int("rcpts", 1, "keyed recipients per message")
	daemon := flag.String("daemon", "", "danemilter binary (default: go build ./cmd/danemilter)")
	cipher := flag.String("cipher", "", "S/MIME content cipher (config key smime.cipher), empty = daemon default")
	dryRun := flag.Bool("dry-run", false, "run the daemon with dry_run = true (decide, encrypt nothing)")
	budget := flag.String("memory-budget", "", "limits.memory_budget of the daemon (e.g. 16MiB), empty = daemon default")
	var o options
	flag.StringVar(&o.store, "store", "bolt", "the daemon's [store] backend: off, bolt (a file in the harness's temporary directory) or postgres (-store-dsn)")
	flag.StringVar(&o.dsn, "store-dsn", "", "PostgreSQL connection string for -store postgres")
	flag.BoolVar(&o.prefill, "store-prefill", false, "put every recipient's certificate into the store before the daemon starts, so its lookups find an entry")
	flag.StringVar(&o.records, "records", "full", "what the SMIMEA records publish: full (3 0 0, the certificate) or hash (3 0 1, its SHA-256: the daemon needs the stored certificate)")
	flag.Parse()
	size, err := config.ParseByteSize(*sizeS)
	if err != nil {
		fatal(err)
	}
	o.n, o.conc, o.size, o.nrcpt, o.daemon, o.cipher, o.dryRun, o.budget = *n, *c, int64(size), *nrcpt, *daemon, *cipher, *dryRun, *budget
	if err := o.check(); err != nil {
		fatal(err)
	}
	if err := run(o); err != nil {
		fatal(err)
	}
}

// options are the harness's flags.
type options struct {
	n, conc        int
	size           int64
	nrcpt          int
	daemon, cipher string
	dryRun         bool
	budget         string
	store, dsn     string // [store] backend and PostgreSQL DSN
	prefill        bool
	records        string // full or hash
}

func (o options) check() error {
	switch o.store {
	case "off", "bolt":
		if o.dsn != "" {
			return fmt.Errorf("-store-dsn is for -store postgres, not %s", o.store)
		}
	case "postgres":
		if o.dsn == "" {
			return errors.New("-store postgres needs -store-dsn")
		}
	default:
		return fmt.Errorf("-store: want off, bolt or postgres, got %q", o.store)
	}
	switch o.records {
	case "full":
	case "hash":
		if o.store == "off" || !o.prefill {
			return errors.New("-records hash needs a store with -store-prefill: the records name no certificate")
		}
	default:
		return fmt.Errorf("-records: want full or hash, got %q", o.records)
	}
	if o.prefill && o.store == "off" {
		return errors.New("-store-prefill needs -store bolt or postgres")
	}
	return nil
}

// daemonConfig is the daemon's configuration file: listening on port,
// resolving through dnsAddr, spooling and (bolt) storing under dir.
func (o options) daemonConfig(port int, dir, dnsAddr string) string {
	cfg := fmt.Sprintf("listen = \"inet:127.0.0.1:%d\"\nlog_level = \"warn\"\nspool_dir = %q\nmax_message_size = \"200MiB\"\nmax_encrypted_size = \"0\"\n[dns]\nresolvers = [%q]\n", port, dir, dnsAddr)
	if o.dryRun {
		cfg = "dry_run = true\n" + cfg
	}
	if o.cipher != "" {
		cfg += fmt.Sprintf("[smime]\ncipher = %q\n", o.cipher)
	}
	if o.budget != "" {
		cfg += fmt.Sprintf("[limits]\nmemory_budget = %q\n", o.budget)
	}
	switch o.store {
	case "off":
		cfg += "[store]\nbackend = \"off\"\n"
	case "bolt":
		cfg += fmt.Sprintf("[store]\nbackend = \"bolt\"\npath = %q\n", storePath(dir))
	case "postgres":
		cfg += fmt.Sprintf("[store]\nbackend = \"postgres\"\ndsn = %q\n", o.dsn)
	}
	return cfg
}

// storePath is the bolt file of a run whose temporary directory is dir.
func storePath(dir string) string { return filepath.Join(dir, "store", "harvest.db") }

// fillStore puts an entry for every recipient into the store the daemon will
// open, before it starts (a bolt file is one process's at a time).
func (o options) fillStore(dir string, rcpts []string, certs [][]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var s harvest.Store
	var err error
	switch o.store {
	case "bolt":
		s, err = harvest.OpenBolt(storePath(dir), harvest.Options{})
	case "postgres":
		s, err = harvest.OpenPostgres(ctx, o.dsn, harvest.Options{}, nil)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	now := time.Now()
	for i, addr := range rcpts {
		if err := s.Put(ctx, harvest.Entry{Address: addr, Certificate: certs[i], LastSeen: now}); err != nil {
			s.Close()
			return fmt.Errorf("prefill %s: %w", addr, err)
		}
	}
	return s.Close()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "danemilter-load:", err)
	os.Exit(1)
}

func run(o options) error {
	n, conc, size, nrcpt, daemon, dryRun := o.n, o.conc, o.size, o.nrcpt, o.daemon, o.dryRun
	dir, err := os.MkdirTemp("", "danemilter-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Recipients and their SMIMEA records.
	records := map[string]dns.RR{}
	var rcpts []string
	var certs [][]byte
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	for i := range nrcpt {
		addr := fmt.Sprintf("user%d@load.test", i)
		rcpts = append(rcpts, addr)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: addr},
			EmailAddresses: []string{addr}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageKeyEncipherment}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return err
		}
		certs = append(certs, der)
		sum := sha256.Sum256([]byte(fmt.Sprintf("user%d", i)))
		name := hex.EncodeToString(sum[:28]) + "._smimecert.load.test."
		rr := &dns.SMIMEA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 3600},
			Usage: 3, Certificate: hex.EncodeToString(der)}
		if o.records == "hash" {
			h := sha256.Sum256(der)
			rr.MatchingType, rr.Certificate = 1, hex.EncodeToString(h[:])
		}
		records[name] = rr
	}
	if o.prefill {
		if err := o.fillStore(dir, rcpts, certs); err != nil {
			return err
		}
	}
	dnsAddr, stopDNS, err := serveDNS(records)
	if err != nil {
		return err
	}
	defer stopDNS()

	if daemon == "" {
		daemon = filepath.Join(dir, "danemilter")
		b := exec.Command("go", "build", "-o", daemon, "./cmd/danemilter")
		b.Stderr = os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("go build (run from the repository root): %w", err)
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	cfg := o.daemonConfig(port, dir, dnsAddr)
	cfgPath := filepath.Join(dir, "danemilter.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(daemon, "serve", "--config", cfgPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitPort(addr, 10*time.Second); err != nil {
		return err
	}
	base := vmKB(cmd.Process.Pid, "VmRSS")

	msg := makeMessage(size)
	mode := "encrypt"
	if dryRun {
		mode = "dry run"
	}
	store := o.store
	if o.prefill {
		store += " (prefilled)"
	}
	fmt.Printf("danemilter-load: %d messages of %d bytes body, %d keyed recipients each (records %s), %d sessions, %s, store %s, daemon pid %d (RSS at start %d KiB)\n",
		n, size, nrcpt, o.records, conc, mode, store, cmd.Process.Pid, base)

	jobs := make(chan int)
	var mu sync.Mutex
	var lat []time.Duration
	var failures []error
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t0 := time.Now()
				err := send(addr, fmt.Sprintf("LOAD%d", i), rcpts, msg, dryRun)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	hwm := vmKB(cmd.Process.Pid, "VmHWM")
	daemonCPU := cpuTime(cmd.Process.Pid)

	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	fmt.Printf("ok %d, failed %d in %s: %.1f msg/s, %.1f MB/s of message\n", len(lat), len(failures), elapsed.Round(time.Millisecond),
		float64(len(lat))/elapsed.Seconds(), float64(len(lat))*float64(len(msg))/1e6/elapsed.Seconds())
	fmt.Printf("latency p50 %s p95 %s p99 %s max %s\n", pct(0.5).Round(time.Microsecond), pct(0.95).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
	fmt.Printf("daemon CPU %s = %s per message\n", daemonCPU.Round(time.Millisecond), (daemonCPU / time.Duration(max(n, 1))).Round(time.Microsecond))
	fmt.Printf("daemon peak RSS (VmHWM) %d KiB = %.2fx the message (%d bytes)\n", hwm, float64(hwm*1024)/float64(len(msg)), len(msg))
	for i, err := range failures {
		if i == 5 {
			break
		}
		fmt.Println("failure:", err)
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d messages failed", len(failures), n)
	}
	return nil
}

// send plays one SMTP transaction over the milter protocol and checks that
// the message was accepted with its body replaced by S/MIME, or in dry run
// with the body unchanged and the trace header added.
func send(addr, queueID string, rcpts []string, msg []byte, dryRun bool) error {
	client := gomilter.NewClient("tcp", addr, gomilter.WithDialer(miltertest.StrictDialer{}), gomilter.WithReadTimeout(5*time.Minute), gomilter.WithWriteTimeout(5*time.Minute))
	macros := gomilter.NewMacroBag()
	macros.Set(gomilter.MacroQueueId, queueID)
	s, err := client.Session(macros)
	if err != nil {
		return err
	}
	defer s.Close()
	step := func(a *gomilter.Action, err error) error {
		if err != nil {
			return err
		}
		if a.StopProcessing() {
			return fmt.Errorf("milter stopped: %+v", a)
		}
		return nil
	}
	if err := step(s.Conn("localhost", gomilter.FamilyInet, 25, "127.0.0.1")); err != nil {
		return err
	}
	if err := step(s.Helo("localhost")); err != nil {
		return err
	}
	if err := step(s.Mail("<sender@local.test>", "")); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := step(s.Rcpt("<"+r+">", "")); err != nil {
			return err
		}
	}
	if err := step(s.DataStart()); err != nil {
		return err
	}
	head, body, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if !s.ProtocolOption(gomilter.OptHeaderLeadingSpace) {
			v = strings.TrimPrefix(v, " ")
		}
		if err := step(s.HeaderField(k, v, nil)); err != nil {
			return err
		}
	}
	if err := step(s.HeaderEnd()); err != nil {
		return err
	}
	mods, act, err := s.BodyReadFrom(bytes.NewReader(body))
	if err != nil {
		return err
	}
	if act.Type != gomilter.ActionAccept && act.Type != gomilter.ActionContinue {
		return fmt.Errorf("final action %+v", act)
	}
	replaced, traced := 0, false
	for _, m := range mods {
		switch m.Type {
		case gomilter.ActionReplaceBody:
			replaced += len(m.Body)
		case gomilter.ActionAddHeader:
			traced = traced || m.HeaderName == milter.TraceHeader
		}
	}
	if dryRun {
		if replaced != 0 || !traced {
			return fmt.Errorf("dry run: body replaced (%d bytes) or no %s header", replaced, milter.TraceHeader)
		}
		return nil
	}
	if replaced < len(body) {
		return fmt.Errorf("body not replaced by ciphertext (%d bytes)", replaced)
	}
	return nil
}

func makeMessage(size int64) []byte {
	var b bytes.Buffer
	b.WriteString("From: sender@local.test\r\nTo: user0@load.test\r\nSubject: load\r\nMessage-ID: <load@local.test>\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	raw := make([]byte, 57)
	for int64(b.Len()) < size {
		_, _ = rand.Read(raw)
		b.WriteString(base64.StdEncoding.EncodeToString(raw))
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// serveDNS answers SMIMEA queries for records with the AD bit, as a
// validating resolver on loopback would for a signed zone, and NXDOMAIN with
// AD for anything else.
func serveDNS(records map[string]dns.RR) (string, func(), error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.AuthenticatedData = true
		if rr, ok := records[strings.ToLower(q.Question[0].Name)]; ok && q.Question[0].Qtype == dns.TypeSMIMEA {
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: "load.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
				Ns: "ns.load.test.", Mbox: "hostmaster.load.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 300})
		}
		if o := q.IsEdns0(); o != nil {
			m.SetEdns0(1232, true)
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: h}
	go func() { _ = srv.ActivateAndServe() }()
	return pc.LocalAddr().String(), func() { _ = srv.Shutdown() }, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitPort(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			return c.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("daemon did not start listening on " + addr)
}

// vmKB reads a field such as VmHWM (peak resident set) from /proc.
func vmKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return -1
}

// cpuTime is the user and system CPU time of a process so far
// (/proc/<pid>/stat, utime and stime, in clock ticks of 10 ms).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
