package milter

import (
	"github.com/d--j/go-milter"
)

// stage is how far the current message has come in the milter protocol.
type stage int

const (
	stageNone   stage = iota // no message: before MAIL FROM, after end of message or abort
	stageMail                // MAIL FROM
	stageRcpt                // RCPT TO
	stageHeader              // a header field
	stageEOH                 // end of headers
	stageBody                // a body chunk
)

var stageNames = [...]string{"none", "mail", "rcpt", "header", "eoh", "body"}

func (s stage) String() string { return stageNames[s] }

// ordered is the milter go-milter drives: it passes each command on to the
// handler only in the order of the milter protocol (MAIL FROM, RCPT TO...,
// header fields, end of headers, body chunks, end of message) and answers a
// command out of that order with a temporary failure. A broken MTA must never
// get "accept, unchanged" for a message danemilter has not seen whole, such
// as an end of message without MAIL FROM, or a header after the body.
type ordered struct {
	*handler
	stage stage
	// noReply are the events negotiated without a reply (noReplies). The
	// MTA reads nothing after them, so a failure there is kept in failed
	// and given at the next event that has a reply.
	noReply milter.OptProtocol
	failed  *milter.Response
}

// reply passes resp on for an event the MTA waits for. For an event
// negotiated without a reply, a response other than continue is kept for
// end of message (go-milter sends nothing either way).
func (o *ordered) reply(nr milter.OptProtocol, resp *milter.Response, err error) (*milter.Response, error) {
	if err != nil || o.noReply&nr == 0 || resp == nil || resp.Continue() {
		return resp, err
	}
	if o.failed == nil {
		o.failed = resp
	}
	return milter.RespContinue, nil
}

// allowed checks the command against the stages it may follow and moves
// the message on; out of order, it logs and ends the message.
func (o *ordered) allowed(cmd string, next stage, after ...stage) bool {
	for _, a := range after {
		if o.stage == a {
			o.stage = next
			return true
		}
	}
	o.opts.Logger.Warn("milter command out of order; answered with a temporary failure", "command", cmd, "after", o.stage.String())
	o.stage = stageNone
	o.end()
	return false
}

func (o *ordered) NewConnection(m milter.Modifier) error {
	o.stage = stageNone
	return o.handler.NewConnection(m)
}

func (o *ordered) MailFrom(from string, esmtpArgs string, m milter.Modifier) (*milter.Response, error) {
	// MAIL FROM starts a message whatever came before (go-milter sends an
	// abort first when the MTA did not).
	o.stage = stageMail
	o.failed = nil
	return o.handler.MailFrom(from, esmtpArgs, m)
}

func (o *ordered) RcptTo(addr string, esmtpArgs string, m milter.Modifier) (*milter.Response, error) {
	if !o.allowed("rcpt", stageRcpt, stageMail, stageRcpt) {
		return tempFail()
	}
	return o.handler.RcptTo(addr, esmtpArgs, m)
}

func (o *ordered) Header(name, value string, m milter.Modifier) (*milter.Response, error) {
	if !o.allowed("header", stageHeader, stageRcpt, stageHeader) {
		resp, err := tempFail()
		return o.reply(milter.OptNoHeaderReply, resp, err)
	}
	resp, err := o.handler.Header(name, value, m)
	return o.reply(milter.OptNoHeaderReply, resp, err)
}

func (o *ordered) Headers(m milter.Modifier) (*milter.Response, error) {
	if !o.allowed("eoh", stageEOH, stageRcpt, stageHeader) {
		resp, err := tempFail()
		return o.reply(milter.OptNoEOHReply, resp, err)
	}
	resp, err := o.handler.Headers(m)
	return o.reply(milter.OptNoEOHReply, resp, err)
}

func (o *ordered) BodyChunk(chunk []byte, m milter.Modifier) (*milter.Response, error) {
	if !o.allowed("body", stageBody, stageEOH, stageBody) {
		resp, err := tempFail()
		return o.reply(milter.OptNoBodyReply, resp, err)
	}
	resp, err := o.handler.BodyChunk(chunk, m)
	return o.reply(milter.OptNoBodyReply, resp, err)
}

func (o *ordered) EndOfMessage(m milter.Modifier) (*milter.Response, error) {
	if f := o.failed; f != nil { // an event without a reply failed (and logged)
		o.stage, o.failed = stageNone, nil
		o.end()
		return f, nil
	}
	if !o.allowed("eom", stageNone, stageEOH, stageBody) {
		return tempFail()
	}
	return o.handler.EndOfMessage(m)
}

func (o *ordered) Abort(m milter.Modifier) error {
	o.stage = stageNone
	o.failed = nil
	return o.handler.Abort(m)
}
