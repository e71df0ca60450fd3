package miltertest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// scriptConn plays a milter: Reads return the scripted replies, Writes go
// nowhere.
type scriptConn struct {
	net.Conn
	r *bytes.Reader
}

func (s *scriptConn) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *scriptConn) Write(p []byte) (int, error) { return len(p), nil }

func pkt(code byte, data ...string) []byte {
	d := []byte(strings.Join(data, ""))
	b := binary.BigEndian.AppendUint32(nil, uint32(len(d)+1))
	return append(append(b, code), d...)
}

func optneg(actions uint32) []byte { return optnegProto(actions, 0) }

func optnegProto(actions, protocol uint32) []byte {
	d := binary.BigEndian.AppendUint32(nil, 6)
	d = binary.BigEndian.AppendUint32(d, actions)
	d = binary.BigEndian.AppendUint32(d, protocol)
	return pkt('O', string(d))
}

// TestStrictConn checks the Postfix rules one by one: each case sends MTA
// commands, then feeds the milter's replies and expects the violation (or
// none).
func TestStrictConn(t *testing.T) {
	allActions := uint32(0x1ff)
	eom := [][]byte{optneg(allActions), pkt('M', "<a@b>\x00"), pkt('E')}
	// MAIL, header, end of headers and body without replies (SMFIP_NR_MAIL,
	// _HDR, _EOH, _BODY), as danemilter negotiates them.
	nr := uint32(1<<14 | 1<<7 | 1<<18 | 1<<19)
	nrMsg := [][]byte{optnegProto(allActions, nr), pkt('M', "<a@b>\x00"), pkt('R', "<c@d>\x00"), pkt('L', "X-A\x00v\x00"), pkt('N'), pkt('B', "body"), pkt('E')}
	tests := []struct {
		name    string
		cmds    [][]byte
		replies [][]byte
		want    string // substring of the violation; "" = none
	}{
		{"accept", eom, [][]byte{optneg(allActions), pkt('c'), pkt('a')}, ""},
		{"headers then body then accept", eom, [][]byte{optneg(allActions), pkt('c'), pkt('m', "\x00\x00\x00\x01Content-Type\x00\x00"), pkt('h', "X-A\x00v\x00"), pkt('-', "<x@y>\x00"), pkt('b', "abc"), pkt('b', "def"), pkt('a')}, ""},
		{"progress before body replacement", eom, [][]byte{optneg(allActions), pkt('c'), pkt('p'), pkt('b', "abc"), pkt('b', "def"), pkt('a')}, ""},
		{"progress between body packets", eom, [][]byte{optneg(allActions), pkt('c'), pkt('b', "abc"), pkt('p'), pkt('b', "def"), pkt('a')}, "can't currently be mixed"},
		{"header change between body packets", eom, [][]byte{optneg(allActions), pkt('c'), pkt('b', "abc"), pkt('h', "X-A\x00v\x00"), pkt('b', "def"), pkt('a')}, "can't currently be mixed"},
		{"header change after body", eom, [][]byte{optneg(allActions), pkt('c'), pkt('b', "abc"), pkt('h', "X-A\x00v\x00"), pkt('a')}, ""},
		{"modification before end of message", eom, [][]byte{optneg(allActions), pkt('h', "X-A\x00v\x00")}, "only at end of message"},
		{"body without CHGBODY negotiated", [][]byte{optneg(0x01), pkt('M', "<a@b>\x00"), pkt('E')}, [][]byte{optneg(0x01), pkt('c'), pkt('b', "abc")}, "SMFIF_CHGBODY"},
		{"accept with data", eom, [][]byte{optneg(allActions), pkt('c', "x")}, "followed by data"},
		{"zero-length packet", eom, [][]byte{optneg(allActions), {0, 0, 0, 0}}, "bad packet length"},
		{"header without NUL", eom, [][]byte{optneg(allActions), pkt('c'), pkt('h', "X-A\x00v")}, "malformed header"},
		{"reply code good", eom, [][]byte{optneg(allActions), pkt('c'), pkt('y', "451 4.7.5 try later\x00")}, ""},
		{"reply code class mismatch", eom, [][]byte{optneg(allActions), pkt('c'), pkt('y', "451 5.7.5 try later\x00")}, "malformed reply"},
		{"reply code with a single percent", eom, [][]byte{optneg(allActions), pkt('c'), pkt('y', "451 4.7.5 100% busy\x00")}, "malformed reply"},
		{"reply code with a doubled percent", eom, [][]byte{optneg(allActions), pkt('c'), pkt('y', "451 4.7.5 100%% busy\x00")}, ""},
		{"reply code 2xx", eom, [][]byte{optneg(allActions), pkt('c'), pkt('y', "250 ok\x00")}, "malformed reply"},
		{"unsolicited reply", [][]byte{optneg(allActions)}, [][]byte{optneg(allActions), pkt('c')}, "without a command"},
		{"unknown reply", eom, [][]byte{optneg(allActions), pkt('c'), pkt('Z')}, "unknown filter reply"},
		{"no-reply events not answered", nrMsg, [][]byte{optnegProto(allActions, nr), pkt('c'), pkt('b', "abc"), pkt('a')}, ""},
		{"reply to a no-reply header", nrMsg, [][]byte{optnegProto(allActions, nr), pkt('c'), pkt('c'), pkt('b', "abc"), pkt('a')}, "negotiated without a reply"},
		{"reply to a no-reply MAIL", nrMsg[:3], [][]byte{optnegProto(allActions, nr), pkt('c'), pkt('c')}, "negotiated without a reply"},
		{"discard at connect", [][]byte{optneg(allActions), pkt('C', "h\x00")}, [][]byte{optneg(allActions), pkt('d')}, "DISCARD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &strictConn{Conn: &scriptConn{r: bytes.NewReader(bytes.Join(tc.replies, nil))}}
			for _, cmd := range tc.cmds {
				if _, err := c.Write(cmd); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			buf := make([]byte, 3) // small reads: packets arrive in pieces
			for err == nil {
				_, err = c.Read(buf)
			}
			var v *ProtocolViolation
			switch {
			case tc.want == "" && errors.Is(err, io.EOF):
			case tc.want == "":
				t.Fatalf("unexpected violation: %v", err)
			case !errors.As(err, &v):
				t.Fatalf("got %v, want a violation %q", err, tc.want)
			case !strings.Contains(v.Rule, tc.want):
				t.Fatalf("got %q, want %q", v.Rule, tc.want)
			}
		})
	}
}
