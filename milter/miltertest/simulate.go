// Package miltertest plays an MTA against a milter, for tests, the demo
// and the load harness: [Simulate] sends one message through a milter the
// way Postfix does and applies the changes it asks for, and [StrictDialer]
// checks every reply against what Postfix's and Sendmail's milter clients
// accept (the rules in package milter's doc). Nothing here is needed to run
// the daemon, and this package does not import package milter, so that the
// milter package's own tests can use it.
package miltertest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/d--j/go-milter"
)

// Result is what an MTA would do with a message after the milter ran.
type Result struct {
	// Rcpts holds the reply to each RCPT TO (nil when accepted).
	Rcpts []*milter.Action
	// Final is the reply at end of message.
	Final *milter.Action
	// Message is the message as the MTA would deliver it, with the milter's
	// header and body changes applied (only meaningful when Final accepts).
	Message []byte
	// Modifications are the raw changes the milter asked for.
	Modifications []milter.ModifyAction
	// Quarantine is the reason the milter gave to hold the message ("":
	// not held).
	Quarantine string
}

// Simulate plays an MTA: it sends one message (raw RFC 5322 bytes with CRLF
// line ends) through the milter at network/address, applies the changes the
// milter asks for the way Postfix does, and returns the outcome. The demo and
// the tests use it; it is not needed to run the daemon. It talks through a
// [StrictDialer], so a reply Postfix would refuse is an error here too.
func Simulate(network, address, queueID, from string, rcpts []string, msg []byte) (*Result, error) {
	return SimulateMacros(network, address, queueID, from, rcpts, msg, nil)
}

// SimulateMacros is [Simulate] with more macros for the milter, e.g.
// {client_port}.
func SimulateMacros(network, address, queueID, from string, rcpts []string, msg []byte, extra map[string]string) (*Result, error) {
	return MTA{Macros: extra}.Simulate(network, address, queueID, from, rcpts, msg)
}

// MTA describes the MTA that [MTA.Simulate] plays.
type MTA struct {
	// Macros are macros for the milter besides the queue ID, e.g.
	// {client_port}, {daemon_name}, {client_addr}, {auth_authen}.
	Macros map[string]string
	// Actions are the modification actions offered (SMFIF_*); zero offers
	// all that Postfix and Sendmail offer.
	Actions milter.OptAction
}

// Postfix returns an MTA with Postfix's macros for a message that came in
// through the master.cf service daemonName from addr.
func Postfix(daemonName, addr string) MTA {
	return MTA{Macros: map[string]string{"{daemon_name}": daemonName, "{client_addr}": addr, "{client_port}": "49152"}}
}

// Sendmail returns an MTA with Sendmail's macros for a message that came in
// through the DaemonPortOptions Name=daemonName from addr (IPv6 addresses
// as Sendmail writes them, "IPv6:...").
func Sendmail(daemonName, addr string) MTA {
	if strings.Contains(addr, ":") {
		addr = "IPv6:" + addr
	}
	return MTA{Macros: map[string]string{"{daemon_name}": daemonName, "{client_addr}": addr, "{client_port}": "49152"}}
}

// Simulate is [Simulate] played by this MTA.
func (mta MTA) Simulate(network, address, queueID, from string, rcpts []string, msg []byte) (*Result, error) {
	hdrs, body, err := SplitMessage(msg)
	if err != nil {
		return nil, err
	}
	opts := []milter.Option{milter.WithDialer(StrictDialer{}),
		milter.WithMacroRequest(milter.StageEOM, []milter.MacroName{milter.MacroQueueId})}
	if mta.Actions != 0 {
		opts = append(opts, milter.WithActions(mta.Actions))
	}
	client := milter.NewClient(network, address, opts...)
	extra := mta.Macros
	macros := milter.NewMacroBag()
	macros.Set(milter.MacroQueueId, queueID)
	for k, v := range extra {
		macros.Set(k, v)
	}
	s, err := client.Session(macros)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	res := &Result{}
	check := func(act *milter.Action, err error) (bool, error) {
		if err != nil {
			return false, err
		}
		if act.StopProcessing() {
			res.Final = act
			return false, nil
		}
		return true, nil
	}
	if ok, err := check(s.Conn("localhost", milter.FamilyInet, 25, "127.0.0.1")); !ok {
		return res, err
	}
	if ok, err := check(s.Helo("localhost")); !ok {
		return res, err
	}
	if ok, err := check(s.Mail(from, "")); !ok {
		return res, err
	}
	accepted := 0
	for _, r := range rcpts {
		act, err := s.Rcpt(r, "")
		if err != nil {
			return nil, err
		}
		if act.StopProcessing() {
			res.Rcpts = append(res.Rcpts, act)
			continue
		}
		res.Rcpts = append(res.Rcpts, nil)
		accepted++
	}
	if accepted == 0 {
		return res, nil
	}
	if ok, err := check(s.DataStart()); !ok {
		return res, err
	}
	lead := s.ProtocolOption(milter.OptHeaderLeadingSpace)
	for _, h := range hdrs {
		v := h.Value
		if !lead {
			v = strings.TrimPrefix(v, " ")
		}
		if ok, err := check(s.HeaderField(h.Name, strings.ReplaceAll(v, "\r\n", "\n"), nil)); !ok {
			return res, err
		}
	}
	if ok, err := check(s.HeaderEnd()); !ok {
		return res, err
	}
	mods, act, err := s.BodyReadFrom(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	res.Final, res.Modifications = act, mods
	for _, m := range mods {
		if m.Type == milter.ActionQuarantine {
			res.Quarantine = m.Reason
		}
	}
	res.Message = apply(hdrs, body, mods, lead)
	return res, nil
}

// Field is one header field: the name, and the value as written after the
// colon (folding included, without the final CRLF).
type Field struct{ Name, Value string }

// SplitMessage splits raw message bytes into header fields and body.
func SplitMessage(msg []byte) ([]Field, []byte, error) {
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	var head, body []byte
	if i < 0 {
		if !bytes.HasSuffix(msg, []byte("\r\n")) {
			return nil, nil, errors.New("message has no header/body separator")
		}
		head = msg
	} else {
		head, body = msg[:i+2], msg[i+4:]
	}
	var fields []Field
	for _, line := range strings.SplitAfter(string(head), "\r\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1].Value += line
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, nil, fmt.Errorf("malformed header line %q", strings.TrimSpace(line))
		}
		fields = append(fields, Field{name, value})
	}
	for i := range fields {
		fields[i].Value = strings.TrimSuffix(fields[i].Value, "\r\n")
	}
	return fields, body, nil
}

// apply performs header and body modifications as Postfix does: deletions
// remove the field (shifting later indices), additions append.
func apply(hdrs []Field, body []byte, mods []milter.ModifyAction, lead bool) []byte {
	hs := append([]Field(nil), hdrs...)
	var newBody []byte
	replaced := false
	for _, m := range mods {
		switch m.Type {
		case milter.ActionAddHeader:
			hs = append(hs, Field{m.HeaderName, addLead(m.HeaderValue, lead)})
		case milter.ActionChangeHeader:
			n := 0
			for i := range hs {
				if strings.EqualFold(hs[i].Name, m.HeaderName) {
					n++
					if n == int(m.HeaderIndex) {
						if m.HeaderValue == "" {
							hs = append(hs[:i], hs[i+1:]...)
						} else {
							hs[i].Value = addLead(m.HeaderValue, lead)
						}
						break
					}
				}
			}
		case milter.ActionInsertHeader:
			// Index 0 is the top (Sendmail; Postfix's milter8 adds one
			// and counts from 1); past the end appends.
			i := min(int(m.HeaderIndex), len(hs))
			hs = append(hs[:i], append([]Field{{m.HeaderName, addLead(m.HeaderValue, lead)}}, hs[i:]...)...)
		case milter.ActionReplaceBody:
			replaced = true
			newBody = append(newBody, m.Body...)
		}
	}
	if replaced {
		body = newBody
	}
	var b bytes.Buffer
	for _, h := range hs {
		b.WriteString(h.Name + ":" + strings.ReplaceAll(strings.ReplaceAll(h.Value, "\r\n", "\n"), "\n", "\r\n") + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

func addLead(v string, lead bool) string {
	if lead {
		return v
	}
	return " " + v
}
