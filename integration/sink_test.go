package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// delivery is one message the sink accepted.
type delivery struct {
	from  string
	rcpts []string
	data  []byte // as received, CRLF line ends, dot-unstuffed, without the final "."
}

// sink is a minimal ESMTP server that accepts every message and records it.
// It is what Postfix relays to (relayhost), standing for the Internet.
type sink struct {
	ln net.Listener
	mu sync.Mutex
	// got holds deliveries not yet taken by a test; cond signals new ones.
	got   []delivery
	cond  *sync.Cond
	all   int
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// startSink listens on a free port of 127.0.0.1 and serves until the test
// ends.
func startSink(t *testing.T) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln, conns: map[net.Conn]bool{}}
	s.cond = sync.NewCond(&s.mu)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns { // e.g. one Postfix keeps for reuse
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *sink) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// serve speaks enough ESMTP (RFC 5321) for Postfix's smtp client: EHLO/HELO,
// MAIL, RCPT, DATA with dot-unstuffing (RFC 5321 §4.5.2), RSET, NOOP, QUIT.
func (s *sink) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(format string, args ...any) bool {
		fmt.Fprintf(w, format+"\r\n", args...)
		return w.Flush() == nil
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	if !reply("220 sink.test ESMTP test sink") {
		return
	}
	var cur delivery
	inMail := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(cmd)
		if i := strings.IndexByte(verb, ' '); i >= 0 {
			verb = verb[:i]
		}
		switch verb {
		case "EHLO":
			if !reply("250-sink.test\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 104857600") {
				return
			}
		case "HELO":
			reply("250 sink.test")
		case "MAIL":
			cur, inMail = delivery{from: addrArg(cmd)}, true
			reply("250 2.1.0 Ok")
		case "RCPT":
			if !inMail {
				reply("503 5.5.1 MAIL first")
				continue
			}
			cur.rcpts = append(cur.rcpts, addrArg(cmd))
			reply("250 2.1.5 Ok")
		case "DATA":
			if !inMail || len(cur.rcpts) == 0 {
				reply("503 5.5.1 RCPT first")
				continue
			}
			if !reply("354 End data with <CR><LF>.<CR><LF>") {
				return
			}
			var data bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				if strings.HasPrefix(l, ".") {
					l = l[1:] // RFC 5321 §4.5.2
				}
				data.WriteString(l)
			}
			cur.data = data.Bytes()
			s.mu.Lock()
			s.got = append(s.got, cur)
			s.all++
			s.cond.Broadcast()
			s.mu.Unlock()
			cur, inMail = delivery{}, false
			reply("250 2.0.0 Ok: queued")
		case "RSET":
			cur, inMail = delivery{}, false
			reply("250 2.0.0 Ok")
		case "NOOP":
			reply("250 2.0.0 Ok")
		case "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			reply("502 5.5.2 Command not implemented")
		}
	}
}

// addrArg returns the address in "MAIL FROM:<a> ..." or "RCPT TO:<a> ...".
func addrArg(cmd string) string {
	i := strings.IndexByte(cmd, '<')
	j := strings.IndexByte(cmd, '>')
	if i < 0 || j < i {
		return ""
	}
	return cmd[i+1 : j]
}

// take waits up to timeout for deliveries whose data contains the marker
// until every address in rcpts was delivered to, removes them from the sink
// and returns them.
func (s *sink) take(marker string, rcpts []string, timeout time.Duration) ([]delivery, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer timer.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	var taken []delivery
	want := map[string]bool{}
	for _, r := range rcpts {
		want[strings.ToLower(r)] = true
	}
	for {
		rest := s.got[:0]
		for _, d := range s.got {
			if bytes.Contains(d.data, []byte(marker)) {
				taken = append(taken, d)
				for _, r := range d.rcpts {
					delete(want, strings.ToLower(r))
				}
				continue
			}
			rest = append(rest, d)
		}
		s.got = rest
		if len(want) == 0 {
			return taken, nil
		}
		if time.Now().After(deadline) {
			var missing []string
			for r := range want {
				missing = append(missing, r)
			}
			return taken, fmt.Errorf("no delivery to %s with %q at the sink within %v", strings.Join(missing, ", "), marker, timeout)
		}
		s.cond.Wait()
	}
}

// count is the number of deliveries the sink accepted so far.
func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.all
}

// rest waits for wait, then removes and returns every delivery whose data
// contains marker that is still at the sink: copies that should not exist
// (duplicates, or mail for a refused recipient). With marker "" it takes
// every delivery not taken yet.
func (s *sink) rest(marker string, wait time.Duration) []delivery {
	time.Sleep(wait)
	s.mu.Lock()
	defer s.mu.Unlock()
	var taken []delivery
	keep := s.got[:0]
	for _, d := range s.got {
		if bytes.Contains(d.data, []byte(marker)) {
			taken = append(taken, d)
			continue
		}
		keep = append(keep, d)
	}
	s.got = keep
	return taken
}
