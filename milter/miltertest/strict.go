package miltertest

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"
)

// StrictDialer dials a milter for a test MTA (the go-milter client) and
// watches the conversation the way Postfix's milter client does
// (src/milter/milter8.c of Postfix 3.7, the rules in the package doc): the
// first reply Postfix would refuse ends the connection with a
// *ProtocolViolation, so a test fails where Postfix would defer the message
// with "451 4.3.5 Server configuration problem". go-milter's own client is
// more lenient than Postfix; [Simulate] and the load harness use this.
type StrictDialer struct {
	// Timeout bounds the connection set-up; zero means 10 s.
	Timeout time.Duration
}

// Dial implements go-milter's Dialer.
func (d StrictDialer) Dial(network, address string) (net.Conn, error) {
	t := d.Timeout
	if t == 0 {
		t = 10 * time.Second
	}
	c, err := net.DialTimeout(network, address, t)
	if err != nil {
		return nil, err
	}
	return &strictConn{Conn: c}, nil
}

// ProtocolViolation is a reply that Postfix (or Sendmail) would refuse.
type ProtocolViolation struct {
	Event byte   // the MTA command the reply answered, e.g. 'E' (end of message)
	Reply byte   // the reply code, e.g. 'b' (replace body)
	Rule  string // what the MTA says, e.g. Postfix's log text
}

func (e *ProtocolViolation) Error() string {
	return fmt.Sprintf("milter protocol: reply %q to command %q: %s", e.Reply, e.Event, e.Rule)
}

// Milter protocol command and reply codes (libmilter/mfdef.h).
const (
	cmdOptneg  = 'O'
	cmdMacro   = 'D'
	cmdAbort   = 'A'
	cmdQuit    = 'Q'
	cmdQuitNC  = 'K'
	cmdConnect = 'C'
	cmdHelo    = 'H'
	cmdBodyEOB = 'E'

	repAddRcpt    = '+'
	repDelRcpt    = '-'
	repAddRcptPar = '2'
	repShutdown   = '4'
	repAccept     = 'a'
	repReplBody   = 'b'
	repContinue   = 'c'
	repDiscard    = 'd'
	repChgFrom    = 'e'
	repConnFail   = 'f'
	repAddHeader  = 'h'
	repInsHeader  = 'i'
	repChgHeader  = 'm'
	repProgress   = 'p'
	repQuarantine = 'q'
	repReject     = 'r'
	repSkip       = 's'
	repTempFail   = 't'
	repReplyCode  = 'y'

	actAddHeaders = 0x01 // SMFIF_ADDHDRS
	actChangeBody = 0x02 // SMFIF_CHGBODY
	actChgHeaders = 0x10 // SMFIF_CHGHDRS
	actQuarantine = 0x20 // SMFIF_QUARANTINE
	maxPostfixPkt = 1<<31/2 - 1
)

// noReplyFlag is the protocol 6 option (SMFIP_NR_*, libmilter/mfapi.h) with
// which the milter asks the MTA not to wait for a reply to an event; the MTA
// then reads none, and a reply the milter sends anyway is taken as the reply
// to a later event (Postfix milter8_event, Sendmail milter_send_command).
var noReplyFlag = map[byte]uint32{
	'C': 1 << 12, // SMFIP_NR_CONN
	'H': 1 << 13, // SMFIP_NR_HELO
	'M': 1 << 14, // SMFIP_NR_MAIL
	'R': 1 << 15, // SMFIP_NR_RCPT
	'T': 1 << 16, // SMFIP_NR_DATA
	'U': 1 << 17, // SMFIP_NR_UNKN
	'N': 1 << 18, // SMFIP_NR_EOH
	'B': 1 << 19, // SMFIP_NR_BODY
	'L': 1 << 7,  // SMFIP_NR_HDR
}

// NoReplyFlag returns the SMFIP_NR_* protocol option for the MTA command
// cmd ('M' MAIL FROM, 'L' header, 'N' end of headers, 'B' body chunk, ...),
// or 0 for a command that has none.
func NoReplyFlag(cmd byte) uint32 { return noReplyFlag[cmd] }

// strictConn checks every reply packet the milter sends against the command
// it answers. Reads and writes come from the client's one goroutine, but the
// state is guarded anyway.
type strictConn struct {
	net.Conn
	mu       sync.Mutex
	out      []byte // MTA -> milter bytes not yet parsed into packets
	in       []byte // milter -> MTA bytes not yet parsed
	pending  []byte // commands sent and not answered, oldest first
	actions  uint32 // negotiated SMFIF_* flags
	protocol uint32 // negotiated SMFIP_* flags
	// skipped is the last command negotiated without a reply.
	skipped byte
	// Within one end-of-message exchange: body replacement has started,
	// and has been followed by another request (Postfix then refuses more).
	replStarted, replLocked bool
	err                     error
}

func (c *strictConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.out = append(c.out, p...)
	for len(c.out) >= 5 {
		n := binary.BigEndian.Uint32(c.out)
		if uint64(len(c.out)) < 4+uint64(n) {
			break
		}
		cmd := c.out[4]
		c.out = c.out[4+n:]
		switch cmd {
		case cmdMacro, cmdAbort, cmdQuit, cmdQuitNC:
			// No reply expected.
		default:
			c.pending = append(c.pending, cmd)
		}
		if cmd == cmdBodyEOB {
			c.replStarted, c.replLocked = false, false
		}
	}
	return c.Conn.Write(p)
}

func (c *strictConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil {
		defer c.mu.Unlock()
		return 0, c.err
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.in = append(c.in, p[:n]...)
	for len(c.in) >= 4 {
		size := binary.BigEndian.Uint32(c.in)
		if size < 1 {
			return c.fail(0, 0, fmt.Sprintf("bad packet length: %d", size))
		}
		if size > maxPostfixPkt {
			return c.fail(0, 0, fmt.Sprintf("unreasonable packet length: %d", size))
		}
		if uint64(len(c.in)) < 4+uint64(size) {
			break
		}
		reply, data := c.in[4], c.in[5:4+size]
		if v := c.check(reply, data); v != nil {
			c.err = v
			return 0, v
		}
		c.in = c.in[4+size:]
	}
	return n, err
}

func (c *strictConn) fail(event, reply byte, rule string) (int, error) {
	c.err = &ProtocolViolation{Event: event, Reply: reply, Rule: rule}
	return 0, c.err
}

// check applies Postfix's milter8_event rules (and Sendmail's where they are
// stricter) to one reply packet.
func (c *strictConn) check(reply byte, data []byte) *ProtocolViolation {
	// The MTA reads nothing for events negotiated without a reply: skip
	// them. A reply too many then shows up as a reply without a command,
	// however it was meant.
	for len(c.pending) > 0 && c.protocol&noReplyFlag[c.pending[0]] != 0 {
		c.skipped = c.pending[0]
		c.pending = c.pending[1:]
	}
	if len(c.pending) == 0 {
		if c.skipped != 0 {
			return &ProtocolViolation{Event: c.skipped, Reply: reply, Rule: "a reply too many: a reply to an event negotiated without a reply (SMFIP_NR_*)?"}
		}
		return &ProtocolViolation{Reply: reply, Rule: "reply without a command to answer"}
	}
	event := c.pending[0]
	bad := func(rule string) *ProtocolViolation {
		return &ProtocolViolation{Event: event, Reply: reply, Rule: rule}
	}
	final := func() { c.pending = c.pending[1:] }

	if event == cmdOptneg {
		if reply != cmdOptneg || len(data) < 12 {
			return bad("option negotiation answered with something else")
		}
		c.actions = binary.BigEndian.Uint32(data[4:8])
		c.protocol = binary.BigEndian.Uint32(data[8:12])
		final()
		return nil
	}
	// milter8.c: a body replacement ends at the first other reply; a later
	// one is refused.
	if c.replStarted && reply != repReplBody {
		c.replLocked = true
	}
	switch reply {
	case repProgress:
		if len(data) != 0 {
			return bad("reply was followed by data bytes")
		}
		return nil
	case repContinue, repAccept, repReject, repTempFail, repShutdown, repSkip:
		if len(data) != 0 {
			return bad("reply was followed by data bytes")
		}
		final()
		return nil
	case repDiscard:
		if len(data) != 0 {
			return bad("reply was followed by data bytes")
		}
		if event == cmdConnect || event == cmdHelo {
			return bad("DISCARD action is not allowed for connect or helo")
		}
		final()
		return nil
	case repReplyCode:
		if !validReplyCode(data) {
			return bad(fmt.Sprintf("malformed reply: %q", data))
		}
		final()
		return nil
	case repQuarantine:
		// Sendmail takes it at end of message only (smfi_quarantine from
		// xxfi_eom) and with SMFIF_QUARANTINE negotiated; it is not final.
		if event != cmdBodyEOB {
			return bad("quarantine is allowed only at end of message (Sendmail)")
		}
		if c.actions&actQuarantine == 0 {
			return bad("quarantine without the negotiated SMFIF_QUARANTINE action")
		}
		if !cstrings(data, 1) {
			return bad("malformed quarantine request")
		}
		return nil
	case repChgHeader, repAddHeader, repInsHeader, repChgFrom, repAddRcpt, repAddRcptPar, repDelRcpt, repReplBody:
		if event != cmdBodyEOB {
			return bad("unexpected filter response (modifications are allowed only at end of message)")
		}
	default:
		return bad("unknown filter reply")
	}
	// A modification request at end of message.
	switch reply {
	case repReplBody:
		if c.replLocked {
			return bad("body replacement requests can't currently be mixed with other requests")
		}
		if c.actions&actChangeBody == 0 {
			return bad("body replacement without the negotiated SMFIF_CHGBODY action (Sendmail tempfails)")
		}
		c.replStarted = true
	case repChgHeader:
		if len(data) < 4 || !cstrings(data[4:], 2) {
			return bad("malformed header change request")
		}
		if c.actions&actChgHeaders == 0 {
			return bad("header change without the negotiated SMFIF_CHGHDRS action")
		}
	case repInsHeader:
		if len(data) < 4 || !cstrings(data[4:], 2) {
			return bad("malformed header change request")
		}
		if c.actions&actAddHeaders == 0 {
			return bad("header insertion without the negotiated SMFIF_ADDHDRS action")
		}
	case repAddHeader:
		if !cstrings(data, 2) {
			return bad("malformed header request")
		}
		if c.actions&actAddHeaders == 0 {
			return bad("header addition without the negotiated SMFIF_ADDHDRS action")
		}
	case repAddRcpt, repDelRcpt:
		if !cstrings(data, 1) {
			return bad("malformed recipient request")
		}
	case repAddRcptPar:
		if !cstrings(data, 2) {
			return bad("malformed recipient request")
		}
	case repChgFrom:
		if !cstrings(data, 1) && !cstrings(data, 2) {
			return bad("malformed sender request")
		}
	}
	return nil
}

// cstrings reports whether data is exactly n NUL-terminated strings.
func cstrings(data []byte, n int) bool {
	for i := 0; i < n; i++ {
		j := indexNUL(data)
		if j < 0 {
			return false
		}
		data = data[j+1:]
	}
	return len(data) == 0
}

func indexNUL(b []byte) int {
	for i, x := range b {
		if x == 0 {
			return i
		}
	}
	return -1
}

// validReplyCode is Postfix's check of SMFIR_REPLYCODE text (milter8.c):
// "4xx " or "5xx " (or "-" for a multi-line reply), an enhanced status code,
// if any, of the same class, NUL-terminated; and Sendmail's: no other NUL,
// no single '%'.
func validReplyCode(data []byte) bool {
	if len(data) < 5 || data[len(data)-1] != 0 {
		return false
	}
	s := data[:len(data)-1]
	digit := func(b byte) bool { return b >= '0' && b <= '9' }
	if (s[0] != '4' && s[0] != '5') || !digit(s[1]) || !digit(s[2]) || (s[3] != ' ' && s[3] != '-') {
		return false
	}
	if digit(s[4]) && s[4] != s[0] {
		return false
	}
	// Sendmail (milter.c MILTER_CHECK_REPLYCODE): one string, and every
	// '%' doubled, else it answers "554 5.7.1 Command rejected" instead.
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == 0:
			return false
		case s[i] == '%' && (i+1 == len(s) || s[i+1] != '%'):
			return false
		case s[i] == '%':
			i++
		}
	}
	return true
}
