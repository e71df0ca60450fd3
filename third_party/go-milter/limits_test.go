package milter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// captureWarnings collects LogWarning output for the test's duration. The
// tests that use it are not parallel (LogWarning is a package variable).
func captureWarnings(t *testing.T) func() string {
	t.Helper()
	var mu sync.Mutex
	var b strings.Builder
	old := LogWarning
	LogWarning = func(format string, v ...interface{}) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&b, format+"\n", v...)
	}
	t.Cleanup(func() { LogWarning = old })
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return b.String()
	}
}

func packet(code byte, data string) []byte {
	n := len(data) + 1
	return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), code}, data...)
}

// optneg is an MTA's negotiation packet: version 6, all actions, no protocol options.
var optneg = packet('O', "\x00\x00\x00\x06\x00\x00\x01\xff\x00\x00\x00\x00")

func startServer(t *testing.T, opts ...Option) (*Server, string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(append([]Option{WithMilter(func() Milter { return NoOpMilter{} })}, opts...)...)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return s, ln.Addr().String(), done
}

// normalMessage sends one message through the server and wants it accepted.
func normalMessage(t *testing.T, addr string) {
	t.Helper()
	c := NewClient("tcp", addr, WithReadTimeout(5*time.Second))
	s, err := c.Session(nil)
	if err != nil {
		t.Fatalf("normal message: %v", err)
	}
	defer s.Close()
	if _, err := s.Conn("localhost", FamilyInet, 25, "127.0.0.1"); err != nil {
		t.Fatalf("normal message: %v", err)
	}
	if _, err := s.Helo("localhost"); err != nil {
		t.Fatalf("normal message: %v", err)
	}
	if _, err := s.Mail("a@example.org", ""); err != nil {
		t.Fatalf("normal message: %v", err)
	}
	if _, err := s.Rcpt("b@example.net", ""); err != nil {
		t.Fatalf("normal message: %v", err)
	}
	if _, err := s.DataStart(); err != nil {
		t.Fatalf("normal message: %v", err)
	}
	if _, err := s.HeaderField("Subject", "hi", nil); err != nil {
		t.Fatalf("normal message: %v", err)
	}
	if _, err := s.HeaderEnd(); err != nil {
		t.Fatalf("normal message: %v", err)
	}
	_, act, err := s.BodyReadFrom(strings.NewReader("hello\r\n"))
	if err != nil || act.Type != ActionAccept {
		t.Fatalf("normal message: %+v, %v", act, err)
	}
}

// TestMalformedPackets: each malformed packet ends its connection with
// nothing answered after negotiation; no panic; the server serves on.
func TestMalformedPackets(t *testing.T) {
	warnings := captureWarnings(t)
	_, addr, done := startServer(t, WithMaxPacketSize(1<<20))
	tests := []struct {
		name      string
		negotiate bool
		in        []byte
	}{
		{"empty packet before negotiation", false, []byte{0, 0, 0, 0}},
		{"empty packet after negotiation", true, []byte{0, 0, 0, 0}},
		{"MAIL without NUL", true, packet('M', "<a@example.org>")},
		{"RCPT without NUL", true, packet('R', "<b@example.net>")},
		{"CONNECT with host only", true, packet('C', "host\x00")},
		{"CONNECT without NUL", true, packet('C', "host")},
		{"too large before negotiation", false, []byte{0x1f, 0xff, 0xff, 0xff, 'O'}},
		{"too large after negotiation", true, []byte{0x00, 0x10, 0x00, 0x01, 'B'}},
		{"negotiation too short", false, packet('O', "\x00\x00\x00\x06")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var in []byte
			if tt.negotiate {
				in = append(in, optneg...)
			}
			if _, err := c.Write(append(in, tt.in...)); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if errors.Is(err, syscall.ECONNRESET) {
				err = nil // closed with our bytes unread
			}
			if err != nil {
				t.Fatalf("connection not closed: %v", err)
			}
			if tt.negotiate && (len(got) < 5 || got[4] != 'O') {
				t.Errorf("no negotiation reply: %q", got)
			}
			if !tt.negotiate && len(got) != 0 {
				t.Errorf("answered %q", got)
			}
			if tt.negotiate && len(got) >= 5 {
				if n := int(binary.BigEndian.Uint32(got)); len(got) != 4+n {
					t.Errorf("answered more than the negotiation: %q", got)
				}
			}
			normalMessage(t, addr)
		})
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned: %v", err)
	default:
	}
	if w := warnings(); strings.Contains(w, "panic") {
		t.Errorf("a panic was recovered:\n%s", w)
	}
}

type panicMilter struct{ NoOpMilter }

func (panicMilter) MailFrom(string, string, Modifier) (*Response, error) {
	panic("boom")
}

// TestSessionPanicRecovered: a panic in a session ends that connection only.
func TestSessionPanicRecovered(t *testing.T) {
	warnings := captureWarnings(t)
	var n int
	var mu sync.Mutex
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(WithMilter(func() Milter {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n == 1 {
			return panicMilter{}
		}
		return NoOpMilter{}
	}))
	defer s.Close()
	go func() { _ = s.Serve(ln) }()
	c := NewClient("tcp", ln.Addr().String(), WithReadTimeout(5*time.Second))
	sess, err := c.Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Conn("localhost", FamilyInet, 25, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Helo("localhost"); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Mail("a@example.org", ""); err == nil {
		t.Error("MAIL answered although the milter panicked")
	}
	_ = sess.Close()
	normalMessage(t, ln.Addr().String())
	if w := warnings(); !strings.Contains(w, "panic in milter session") || !strings.Contains(w, "boom") {
		t.Errorf("panic not logged:\n%s", w)
	}
}

// errListener returns the queued errors from Accept, then accepts for real.
type errListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *errListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		if err == nil {
			return l.Listener.Accept()
		}
		return nil, err
	}
	l.mu.Unlock()
	return nil, errors.New("listener exhausted") // permanent
}

// TestAcceptErrorsRetried: temporary accept errors (EMFILE, ENFILE,
// ECONNABORTED, ...) are retried with a growing delay; a permanent one ends
// Serve.
func TestAcceptErrorsRetried(t *testing.T) {
	warnings := captureWarnings(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
	}
	ln := &errListener{Listener: inner, errs: []error{
		opErr(syscall.EMFILE), opErr(syscall.ENFILE), opErr(syscall.ECONNABORTED), opErr(syscall.ENOBUFS), nil,
	}}
	s := NewServer(WithMilter(func() Milter { return NoOpMilter{} }))
	defer s.Close()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Serve(ln) }()
	normalMessage(t, inner.Addr().String())
	select {
	case err := <-done:
		if err == nil || err.Error() != "listener exhausted" {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return on a permanent error")
	}
	// 5+10+20+40 ms of back-off.
	if d := time.Since(start); d < 75*time.Millisecond {
		t.Errorf("no back-off: %v", d)
	}
	if w := warnings(); strings.Count(w, "accept error") != 4 || !strings.Contains(w, "retrying in 40ms") {
		t.Errorf("warnings:\n%s", w)
	}
}

// TestMaxConnections: a connection over the limit is closed at once; a slot
// freed is used again.
func TestMaxConnections(t *testing.T) {
	warnings := captureWarnings(t)
	_, addr, _ := startServer(t, WithMaxConnections(2))
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Negotiate, so the server has surely counted it.
		if _, err := c.Write(optneg); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(c); err != nil || len(got) != 0 {
		t.Fatalf("third connection: %q, %v; want closed at once", got, err)
	}
	_ = c.Close()
	_ = held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := NewClient("tcp", addr, WithReadTimeout(time.Second))
		s, err := c.Session(nil)
		if err == nil {
			_ = s.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("freed slot not reused: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if w := warnings(); !strings.Contains(w, "connection limit of 2 reached") {
		t.Errorf("warnings:\n%s", w)
	}
}
