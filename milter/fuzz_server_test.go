package milter

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// FuzzServerBytes drives raw bytes into a running danemilter server — the
// real NewServer with the fake resolver, on loopback — after a valid
// negotiation or without one, and then checks that the server still
// encrypts a normal message: no input ends the process, or a connection other
// than its own, and no session panics (go-milter would recover it, so the
// panic counter is checked too). The seeds are the inputs that killed the
// daemon with go-milter v0.10.1 (issue 9) and commands out of order.
func FuzzServerBytes(f *testing.F) {
	mail := string(rawPkt('M', "<a@local.example>\x00"))
	rcpt := string(rawPkt('R', "<alice@partner.example>\x00"))
	hdr := string(rawPkt('L', "Subject\x00 hi\x00"))
	eoh := string(rawPkt('N', ""))
	body := string(rawPkt('B', "hello\r\n"))
	eom := string(rawPkt('E', ""))
	for _, seed := range []struct {
		negotiate bool
		in        string
	}{
		{false, "\x00\x00\x00\x00"},                          // empty packet before negotiation
		{true, "\x00\x00\x00\x00"},                           // empty packet after negotiation
		{true, string(rawPkt('M', "<a@local.example>"))},     // MAIL without NUL
		{true, mail + string(rawPkt('R', "<b@x.example>"))},  // RCPT without NUL
		{true, string(rawPkt('C', "host\x00"))},              // CONNECT with the host only
		{false, "\x20\x00\x00\x00O"},                         // announces 512 MiB
		{true, "\x00\x10\x00\x01B"},                          // announces one byte over 1 MiB
		{true, eom},                                          // end of message without MAIL
		{true, mail + rcpt + hdr + eoh + body + hdr + eom},   // a header after the body
		{true, mail + rcpt + hdr + body + eom},               // body before end of headers
		{true, mail + rcpt + hdr + eoh + body + eom},         // a whole message
		{true, string(rawPkt('D', "M{i}\x00Q1\x00")) + mail}, // macros
		{true, string(rawPkt('D', ""))},                      // empty macro packet
		{true, string(rawPkt('O', "\x00\x00\x00\x06"))},      // negotiation twice
		{true, string(rawPkt('A', "")) + string(rawPkt('K', "")) + string(rawPkt('Q', ""))},
	} {
		f.Add(seed.negotiate, []byte(seed.in))
	}
	callbackPanics := &panicCounter{}
	addr := start(f, Options{Resolver: keyedResolver(f), Logger: slog.New(callbackPanics), MessageTimeout: 5 * time.Second})
	f.Fuzz(func(t *testing.T, negotiate bool, in []byte) {
		panics, cbPanics := sessionPanics.Load(), callbackPanics.n.Load()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if negotiate {
			if _, err := c.Write(mtaOptneg); err != nil {
				t.Fatal(err)
			}
		}
		_, _ = c.Write(in) // the server may have closed already
		// End our side: the server sees EOF after the input (or has ended
		// the connection itself) and must close it.
		_ = c.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("server did not end the connection after the input: %v", err)
		}
		normal(t, addr)
		if sessionPanics.Load() != panics {
			t.Fatal("a milter session panicked (recovered by go-milter)")
		}
		if callbackPanics.n.Load() != cbPanics {
			t.Fatal("a milter callback panicked (recovered by the handler)")
		}
	})
}

// panicCounter is a slog.Handler that counts the records about a panic and
// drops the rest.
type panicCounter struct{ n atomic.Int64 }

func (p *panicCounter) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicCounter) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *panicCounter) WithGroup(string) slog.Handler            { return p }
func (p *panicCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		p.n.Add(1)
	}
	return nil
}
