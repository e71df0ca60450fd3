package milter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/policy"

	"github.com/danemilter/danemilter/milter/miltertest"
)

// Tests of README "Limits and hostile peers": what a broken or hostile peer
// on the milter socket can do to the daemon.

// sessionPanics counts the panics go-milter recovered in a session (it
// reports them through LogWarning); a test fails when it grows.
var sessionPanics atomic.Int64

func init() {
	// Set before any test runs: LogWarning is a package variable of go-milter.
	gomilter.LogWarning = func(format string, v ...any) {
		if strings.Contains(format, "panic") {
			sessionPanics.Add(1)
		}
		log.Printf("milter: warning: "+format, v...)
	}
}

// logRecorder is a slog.Handler that keeps the messages logged, for checks.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.msgs = append(r.msgs, b.String())
	r.mu.Unlock()
	return nil
}

func (r *logRecorder) count(sub string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// rawPkt is one raw milter packet.
func rawPkt(code byte, data string) []byte {
	n := len(data) + 1
	return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), code}, data...)
}

// mtaOptneg is an MTA's negotiation: protocol 6, every action and protocol
// option offered.
var mtaOptneg = rawPkt('O', "\x00\x00\x00\x06\x00\x00\x01\xff\x00\x1f\xff\xff")

// rawConn is an MTA connection driven packet by packet.
type rawConn struct {
	t        testing.TB
	c        net.Conn
	r        *bufio.Reader
	protocol uint32 // negotiated SMFIP_* flags
}

// replied reports whether the MTA reads a reply to packet p: not when the
// event was negotiated without one (SMFIP_NR_*).
func (rc *rawConn) replied(p []byte) bool {
	return rc.protocol&miltertest.NoReplyFlag(p[4]) == 0
}

// exchange sends p and, when the MTA reads a reply to it, reads the reply;
// "c" when there is none.
func (rc *rawConn) exchange(p []byte) (byte, string) {
	rc.t.Helper()
	rc.send(p)
	if !rc.replied(p) {
		return 'c', ""
	}
	return rc.read()
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	return dialRawOptneg(t, addr, mtaOptneg)
}

// dialRawOptneg connects and negotiates with the MTA's packet optneg.
func dialRawOptneg(t testing.TB, addr string, optneg []byte) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	rc.send(optneg)
	code, data := rc.read()
	if code != 'O' || len(data) < 12 {
		t.Fatalf("negotiation answered %c %q", code, data)
	}
	rc.protocol = binary.BigEndian.Uint32([]byte(data[8:12]))
	return rc
}

func (rc *rawConn) send(p []byte) {
	rc.t.Helper()
	if _, err := rc.c.Write(p); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawConn) read() (byte, string) {
	rc.t.Helper()
	var n uint32
	if err := binary.Read(rc.r, binary.BigEndian, &n); err != nil {
		rc.t.Fatalf("read reply: %v", err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rc.r, b); err != nil || n == 0 {
		rc.t.Fatalf("read reply: %v", err)
	}
	return b[0], string(b[1:])
}

// final reads replies up to the one that ends the message (not a
// modification or progress) and returns it.
func (rc *rawConn) final() (byte, string) {
	rc.t.Helper()
	for {
		code, data := rc.read()
		switch code {
		case '+', '-', 'b', 'h', 'm', 'i', 'q', 'e', '2', 'p':
			continue
		}
		return code, data
	}
}

// mtaOptnegNoNR offers every protocol option but the SMFIP_NR_* ones, as an
// MTA older than protocol 6 would.
var mtaOptnegNoNR = rawPkt('O', "\x00\x00\x00\x06\x00\x00\x01\xff\x00\x10\x0f\x7f")

// TestNoReplyNegotiation: danemilter asks for no reply to header, end of
// headers and body where the MTA offers it, and still works, answering
// every event, where it does not. MAIL, RCPT and DATA keep their replies
// (the DATA event is not declined: see protocols).
func TestNoReplyNegotiation(t *testing.T) {
	addr := start(t, Options{Resolver: &dane.Fake{}})
	nr := uint32(miltertest.NoReplyFlag('L') | miltertest.NoReplyFlag('N') | miltertest.NoReplyFlag('B'))
	replied := uint32(miltertest.NoReplyFlag('M') | miltertest.NoReplyFlag('R') | miltertest.NoReplyFlag('T') | 1<<9) // and not SMFIP_NODATA
	if rc := dialRaw(t, addr); rc.protocol&nr != nr || rc.protocol&replied != 0 {
		t.Errorf("offered everything: negotiated %#x, want the no-reply flags %#x and none of %#x", rc.protocol, nr, replied)
	}
	if rc := dialRawOptneg(t, addr, mtaOptnegNoNR); rc.protocol&0xff080 != 0 {
		t.Errorf("offered no SMFIP_NR_*: negotiated %#x", rc.protocol)
	}
}

// TestOutOfOrderCommands: commands out of the order of the milter protocol
// are answered 451 and logged, never "accept, unchanged". An event
// negotiated without a reply gets its 451 at end of message, the next event
// the MTA reads a reply to; without SMFIP_NR_* at the event itself.
func TestOutOfOrderCommands(t *testing.T) {
	for _, optneg := range []struct {
		name string
		pkt  []byte
	}{{"no-reply events", mtaOptneg}, {"every event answered", mtaOptnegNoNR}} {
		t.Run(optneg.name, func(t *testing.T) { testOutOfOrder(t, optneg.pkt) })
	}
}

func testOutOfOrder(t *testing.T, optneg []byte) {
	rec := &logRecorder{}
	addr := start(t, Options{Resolver: &dane.Fake{}, Logger: slog.New(rec)})
	mail := rawPkt('M', "<a@local.example>\x00")
	rcpt := rawPkt('R', "<b@plain.example>\x00")
	hdr := rawPkt('L', "Subject\x00 hi\x00")
	eoh := rawPkt('N', "")
	body := rawPkt('B', "hello\r\n")
	eom := rawPkt('E', "")
	tests := []struct {
		name   string
		before [][]byte // each answered "continue"
		bad    []byte
	}{
		{"end of message without MAIL", nil, eom},
		{"body without MAIL", nil, body},
		{"header without MAIL", nil, hdr},
		{"RCPT without MAIL", nil, rcpt},
		{"header after the body", [][]byte{mail, rcpt, hdr, eoh, body}, hdr},
		{"body before end of headers", [][]byte{mail, rcpt, hdr}, body},
		{"end of message before end of headers", [][]byte{mail, rcpt, hdr}, eom},
		{"end of headers after the body", [][]byte{mail, rcpt, eoh, body}, eoh},
		{"header before RCPT", [][]byte{mail}, hdr},
		{"end of message after end of message", [][]byte{mail, rcpt, eoh, body}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRawOptneg(t, addr, optneg)
			for _, p := range tt.before {
				if code, data := rc.exchange(p); code != 'c' {
					t.Fatalf("in order command answered %c %q", code, data)
				}
			}
			bad := tt.bad
			if bad == nil { // a whole message, then a second end of message
				rc.send(eom)
				if code, _ := rc.final(); code != 'a' {
					t.Fatalf("message answered %c", code)
				}
				bad = eom
			}
			n := rec.count("out of order")
			rc.send(bad)
			if !rc.replied(bad) {
				rc.send(eom)
			}
			code, data := rc.final()
			if code != 'y' || !strings.HasPrefix(data, "451 4.3.0 ") {
				t.Fatalf("answered %c %q, want 451", code, data)
			}
			if rec.count("out of order") != n+1 {
				t.Errorf("not logged")
			}
			// The connection goes on: the next message in order is served.
			for _, p := range [][]byte{mail, rcpt, hdr, eoh, body} {
				if code, data := rc.exchange(p); code != 'c' {
					t.Fatalf("next message: answered %c %q", code, data)
				}
			}
			rc.send(eom)
			if code, _ := rc.final(); code != 'a' {
				t.Fatalf("next message answered %c", code)
			}
		})
	}
}

// normal sends a message to a recipient with a key and wants it encrypted.
func normal(t testing.TB, addr string) {
	t.Helper()
	msg := []byte("From: a@local.example\r\nTo: alice@partner.example\r\nSubject: hi\r\n\r\nhello\r\n")
	res, err := miltertest.Simulate("tcp", addr, "Q1", "a@local.example", []string{"alice@partner.example"}, msg)
	if err != nil {
		t.Fatalf("normal message: %v", err)
	}
	if res.Final == nil || res.Final.Type != gomilter.ActionAccept || len(header(res.Message, TraceHeader)) != 1 ||
		!strings.Contains(strings.Join(header(res.Message, "Content-Type"), ""), "pkcs7-mime") {
		t.Fatalf("normal message not encrypted: %+v\n%s", res.Final, trunc(res.Message))
	}
}

func keyedResolver(t testing.TB) *dane.Fake {
	fake := &dane.Fake{}
	newUser(t, "alice@partner.example").publish(t, fake)
	return fake
}

// heapInuse and vmRSS measure the process after a GC.
func memNow() (heap uint64, rss uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return ms.HeapInuse, rss
}

// TestHostileConnectionsMemory: hostile connections — packets announcing
// 512 MiB, packets announcing the largest size allowed and then dribbling or
// silent, slow readers — keep the memory growth of the process under
// 16 MiB (it was 512 MiB per connection: go-milter allocated what a packet
// announced), and a normal message still gets through meanwhile.
func TestHostileConnectionsMemory(t *testing.T) {
	const n = 64           // hostile connections
	const bound = 16 << 20 // allowed growth of HeapInuse and of VmRSS
	addr := start(t, Options{Resolver: keyedResolver(t), PacketTimeout: 20 * time.Second})
	normal(t, addr) // warm up: keys, code paths
	heap0, rss0 := memNow()

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var p []byte
		switch i % 4 {
		case 0: // announces 512 MiB before negotiation
			p = []byte{0x20, 0, 0, 0, 'O'}
		case 1: // announces 512 MiB after negotiation
			p = append(append([]byte{}, mtaOptneg...), 0x20, 0, 0, 0, 'B')
		case 2: // announces 1 MiB (allowed) and goes silent
			p = append(append([]byte{}, mtaOptneg...), 0x00, 0x10, 0, 0, 'B')
		case 3: // announces 1 MiB and dribbles a byte every 50ms
			p = append(append([]byte{}, mtaOptneg...), 0x00, 0x10, 0, 0, 'B')
			wg.Add(1)
			go func(c net.Conn) {
				defer wg.Done()
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := c.Write([]byte{'x'}); err != nil {
							return
						}
					}
				}
			}(c)
		}
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	// The normal message goes through while they are held.
	time.Sleep(500 * time.Millisecond)
	normal(t, addr)
	time.Sleep(500 * time.Millisecond)
	heap1, rss1 := memNow()
	close(stop)
	wg.Wait()
	t.Logf("%d hostile connections: HeapInuse %d -> %d KiB (+%d KiB), VmRSS %d -> %d KiB (+%d KiB)",
		n, heap0>>10, heap1>>10, (int64(heap1)-int64(heap0))>>10, rss0>>10, rss1>>10, (int64(rss1)-int64(rss0))>>10)
	if int64(heap1)-int64(heap0) > bound {
		t.Errorf("HeapInuse grew by %d MiB, bound %d MiB", (heap1-heap0)>>20, bound>>20)
	}
	if rss0 > 0 && int64(rss1)-int64(rss0) > bound {
		t.Errorf("VmRSS grew by %d MiB, bound %d MiB", (rss1-rss0)>>20, bound>>20)
	}
	// Those that announced 512 MiB were closed at once.
	for i, c := range conns {
		if i%4 > 1 {
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("connection %d announcing 512 MiB not closed: %v", i, err)
		}
	}
}

// TestSlowPacketClosed: a packet that is not complete within the packet
// timeout ends its connection, however long the idle timeout.
func TestSlowPacketClosed(t *testing.T) {
	addr := start(t, Options{Resolver: &dane.Fake{}, PacketTimeout: 300 * time.Millisecond, IdleTimeout: time.Hour})
	rc := dialRaw(t, addr)
	start := time.Now()
	rc.send([]byte{0, 0, 0, 20, 'M', 'a'})
	for i := 0; i < 100; i++ {
		time.Sleep(50 * time.Millisecond)
		if _, err := rc.c.Write([]byte{'x'}); err != nil {
			break
		}
		if time.Since(start) > 2*time.Second {
			break
		}
	}
	_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, rc.c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("slow packet: connection not closed: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v", d)
	}
}

// TestConnectionLimit: connections beyond MaxConnections are closed at
// once; the held ones and, once one goes, new ones are served.
func TestConnectionLimit(t *testing.T) {
	addr := start(t, Options{Resolver: keyedResolver(t), MaxConnections: 3})
	for i := 0; i < 3; i++ {
		dialRaw(t, addr) // negotiated: counted
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(c); len(got) != 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("fourth connection: %q, %v; want it closed", got, err)
	}
	if _, err := miltertest.Simulate("tcp", addr, "Q1", "a@local.example", []string{"alice@partner.example"}, []byte("Subject: x\r\n\r\nx\r\n")); err == nil {
		t.Fatal("a message over the connection limit was served")
	}
}

// TestMemoryBudget: bodies share the budget; past it they go to their file,
// and the budget is whole again when they are done.
func TestMemoryBudget(t *testing.T) {
	budget := newMemBudget(100 << 10)
	dir := t.TempDir()
	mk := func() *spool { return &spool{dir: dir, threshold: 64 << 10, limit: 1 << 30, budget: budget} }
	a, b := mk(), mk()
	chunk := bytes.Repeat([]byte("x"), 60<<10)
	for _, s := range []*spool{a, b} {
		if _, err := s.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if a.file != nil || b.file == nil {
		t.Fatalf("a in file %v, b in file %v; want a in memory, b spilled", a.file != nil, b.file != nil)
	}
	for _, s := range []*spool{a, b} {
		r, err := s.Reader()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		if !bytes.Equal(got, chunk) {
			t.Fatalf("body changed: %d bytes", len(got))
		}
	}
	a.Close()
	c := mk()
	if _, err := c.Write(chunk); err != nil || c.file != nil {
		t.Fatalf("after a freed its memory, c in file %v, %v", c.file != nil, err)
	}
	b.Close()
	c.Close()
	if left := budget.left.Load(); left != 100<<10 {
		t.Errorf("budget left %d, want all of it back", left)
	}
}

// TestMemoryBudgetThroughServer: with a budget for one body, concurrent
// messages are still all served (the others are spooled).
func TestMemoryBudgetThroughServer(t *testing.T) {
	addr := start(t, Options{Resolver: keyedResolver(t), MemoryThreshold: 256 << 10, MemoryBudget: 256 << 10, SpoolDir: t.TempDir()})
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 3000)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := miltertest.Simulate("tcp", addr, "Q1", "a@local.example", []string{"alice@partner.example"}, []byte("Subject: x\r\n\r\n"+body))
			if err == nil && (res.Final == nil || res.Final.Type != gomilter.ActionAccept) {
				err = fmt.Errorf("final %+v", res.Final)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestAcceptSurvivesFDExhaustion: with RLIMIT_NOFILE lowered and every
// descriptor taken, accept fails with EMFILE; the server backs off, stays
// up, and serves again once descriptors are free. It runs in a child
// process, since the limit applies to the whole process.
func TestAcceptSurvivesFDExhaustion(t *testing.T) {
	if os.Getenv("DANEMILTER_FD_CHILD") == "1" {
		fdChild(t)
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("RLIMIT_NOFILE test runs on Linux")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptSurvivesFDExhaustion$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "DANEMILTER_FD_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if !bytes.Contains(out, []byte("too many open files")) || !bytes.Contains(out, []byte("served after exhaustion")) {
		t.Fatal("child did not exhaust descriptors and serve again")
	}
}

func fdChild(t *testing.T) {
	rl := syscall.Rlimit{Cur: 64, Max: 64}
	var old syscall.Rlimit
	must(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old))
	if old.Max < rl.Max {
		rl.Max = old.Max
	}
	must(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl))
	addr, done := serveWithDone(t, Options{Resolver: keyedResolver(t)})
	normal(t, addr)

	// Take every descriptor, then free one for the client's socket: the
	// server's accept then has none.
	var held []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		held = append(held, f)
	}
	t.Logf("holding %d descriptors", len(held))
	_ = held[len(held)-1].Close()
	held = held[:len(held)-1]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // accept fails, backs off, retries
	select {
	case err := <-done:
		t.Fatalf("Serve returned: %v", err)
	default:
	}
	for _, f := range held {
		_ = f.Close()
	}
	_ = c.Close()
	normal(t, addr)
	select {
	case err := <-done:
		t.Fatalf("Serve returned: %v", err)
	default:
	}
	t.Log("served after exhaustion")
}

// serveWithDone is start, also returning what Serve returns.
func serveWithDone(t testing.TB, opts Options) (string, <-chan error) {
	t.Helper()
	if opts.Levels == nil {
		opts.Levels = policy.NewTable(policy.LevelDane)
	}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), done
}
