package milter

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the Read and Write calls on the connections it
// accepts.
type countingListener struct {
	net.Listener
	reads, writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.reads, l.writes}, nil
}

type countingConn struct {
	net.Conn
	reads, writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func (c countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// countingMilter counts the events it sees.
type countingMilter struct {
	NoOpMilter
	events *atomic.Int64
}

func (m countingMilter) MailFrom(string, string, Modifier) (*Response, error) {
	m.events.Add(1)
	return RespContinue, nil
}

func (m countingMilter) Header(string, string, Modifier) (*Response, error) {
	m.events.Add(1)
	return RespContinue, nil
}

func (m countingMilter) BodyChunk([]byte, Modifier) (*Response, error) {
	m.events.Add(1)
	return RespContinue, nil
}

// EndOfMessage makes three modifications before the final reply.
func (m countingMilter) EndOfMessage(mod Modifier) (*Response, error) {
	for _, err := range []error{mod.AddHeader("X-A", "1"), mod.ChangeHeader(1, "Subject", "x"), mod.ReplaceBody(strings.NewReader("new body\r\n"))} {
		if err != nil {
			return nil, err
		}
	}
	return RespAccept, nil
}

// TestBufferedReadsWrites: packets the MTA sends without waiting for
// replies (macros, events negotiated with OptNoReplies) are read through the
// session's buffer, not with two reads each, and all reach the Milter; the
// modifications at end of message and the final reply leave in one write.
func TestBufferedReadsWrites(t *testing.T) {
	var reads, writes, events atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(WithMilter(func() Milter { return countingMilter{events: &events} }),
		WithProtocols(OptNoMailReply|OptNoHeaderReply|OptNoEOHReply|OptNoBodyReply), WithActions(OptAddHeader|OptChangeHeader|OptChangeBody))
	go func() { _ = s.Serve(countingListener{ln, &reads, &writes}) }()
	t.Cleanup(func() { _ = s.Close() })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	read := func() byte {
		t.Helper()
		var n uint32
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			t.Fatal(err)
		}
		return b[0]
	}
	if _, err := c.Write(packet('O', "\x00\x00\x00\x06\x00\x00\x01\xff\x00\x0f\xf0\x80")); err != nil {
		t.Fatal(err)
	}
	if code := read(); code != 'O' {
		t.Fatalf("negotiation answered %c", code)
	}
	before, writesBefore := reads.Load(), writes.Load()
	var msg []byte
	msg = append(msg, packet('D', "M{i}\x00Q1\x00")...)
	msg = append(msg, packet('M', "<a@example.org>\x00")...)
	for range 20 {
		msg = append(msg, packet('L', "Subject\x00hi\x00")...)
	}
	msg = append(msg, packet('N', "")...)
	msg = append(msg, packet('B', "hello\r\n")...)
	msg = append(msg, packet('E', "")...)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []byte{'h', 'm', 'b', 'a'} {
		if code := read(); code != want {
			t.Fatalf("end of message answered %c, want %c", code, want)
		}
	}
	if got := writes.Load() - writesBefore; got != 1 {
		t.Errorf("%d writes for three modifications and the final reply, want 1", got)
	}
	if got := events.Load(); got != 22 {
		t.Errorf("milter saw %d events, want 22", got)
	}
	// 25 packets in one write: a few reads (the server reads what has
	// arrived), not 50.
	if got := reads.Load() - before; got > 5 {
		t.Errorf("%d reads for 25 packets sent at once", got)
	}
}
