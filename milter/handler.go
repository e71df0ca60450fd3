package milter

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/reply"
)

// handler is made per MTA connection. Its message is made fresh for every
// message (begin) and dropped whole at its end (end), so nothing is shared
// between messages and no field needs resetting by hand.
type handler struct {
	milter.NoOpMilter
	opts *Options
	// *message is the current message; nil between messages. The
	// callbacks reach its fields directly (h.rcpts, h.body).
	*message
}

// respond is the milter response that gives the SMTP reply r.
func respond(r reply.Reply) (*milter.Response, error) {
	return milter.RejectWithCodeAndReason(uint16(r.Code), r.Enhanced+" "+r.Text)
}

// tempFail is the reply for any failure inside the daemon: generic text, the
// detail goes to the log (house style: replies stay generic).
func tempFail() (*milter.Response, error) { return respond(reply.TempFailure()) }

// guard recovers a panic in a callback and turns it into a temporary failure.
func (h *handler) guard(stage string, resp **milter.Response, err *error) {
	if r := recover(); r != nil {
		h.opts.Logger.Error("panic in milter callback; message deferred", "stage", stage, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*resp, *err = tempFail()
	}
}

func (h *handler) MailFrom(from string, _ string, m milter.Modifier) (resp *milter.Response, err error) {
	defer h.guard("mail", &resp, &err)
	h.end()
	h.begin()
	h.from = milter.RemoveAngle(strings.TrimSpace(from))
	h.senderExempt = h.opts.Exemptions.Sender(h.from)
	h.view.queueIDMail, h.view.clientPort = m.Get(milter.MacroQueueId), m.Get(milter.MacroClientPort)
	h.localSubmission = h.view.clientPort == "0"
	h.direction, h.rule = h.opts.Direction.classify(client{daemonName: m.Get(MacroDaemonName), addr: m.Get(MacroClientAddr),
		authAuthen: m.Get(MacroAuthAuthen), port: h.view.clientPort})
	return milter.RespContinue, nil
}

func (h *handler) RcptTo(addr string, _ string, m milter.Modifier) (resp *milter.Response, err error) {
	defer h.guard("rcpt", &resp, &err)
	h.begin()
	if len(h.view.rcptArgs) < 3 {
		h.view.rcptArgs = append(h.view.rcptArgs, addr)
		if h.view.queueIDRcpt == "" {
			h.view.queueIDRcpt = m.Get(milter.MacroQueueId)
		}
	}
	addr = milter.RemoveAngle(strings.TrimSpace(addr))
	for _, r := range h.rcpts {
		if r.addr == addr {
			return milter.RespContinue, nil
		}
	}
	r := &rcpt{addr: addr, pre: h.opts.recipients.Prepare(addr, h.senderExempt), done: make(chan struct{})}
	if !r.pre.NeedsLookup() {
		r.res = r.pre
		close(r.done)
		h.rcpts = append(h.rcpts, r)
		return milter.RespContinue, nil
	}
	// Start the lookup now; it runs while the SMTP dialogue goes on.
	go h.lookup(h.ctx, r)

	// Levels none and may never refuse, so they never wait. For dane and
	// encrypt, wait a little: an answer that is already known (the cache)
	// or comes fast lets us refuse this recipient alone, now.
	if r.pre.Match.Level >= policy.LevelDane {
		if !yieldTo(r.done) && h.rcptWaitLeft > 0 {
			t0 := time.Now()
			t := time.NewTimer(h.rcptWaitLeft)
			select {
			case <-r.done:
			case <-t.C:
			case <-h.ctx.Done():
			}
			t.Stop()
			h.rcptWaitLeft -= time.Since(t0)
		}
		select {
		case <-r.done:
			// A per-entry dry run is never refused (its decision is Plain).
			d := r.res.Decision
			if (d.Action == policy.Reject || d.Action == policy.TempFail) && !h.opts.DryRun {
				h.opts.Logger.Info("recipient refused", "queue_id", m.Get(milter.MacroQueueId), "from", h.from, "rcpt", describe(&r.res), "status", d.Reply.Enhanced, "reason", d.Reason)
				return respond(d.Reply)
			}
		default:
		}
	}
	h.rcpts = append(h.rcpts, r)
	return milter.RespContinue, nil
}

// yieldTo gives a lookup that was just started, and that the cache can
// answer, the chance to finish before RCPT TO is answered, without a timer
// or a sleep: the go statement made the lookup the next goroutine this
// thread runs, so yielding runs it (microseconds when cached); a lookup that
// waits for the network parks at once and hands the thread back. It reports
// whether the lookup is done.
func yieldTo(done <-chan struct{}) bool {
	for range 4 {
		select {
		case <-done:
			return true
		default:
			runtime.Gosched()
		}
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

func (h *handler) Header(name, value string, m milter.Modifier) (resp *milter.Response, err error) {
	defer h.guard("header", &resp, &err)
	h.begin()
	// Counted before the limit below: a forged Authentication-Results
	// field is removed wherever it is.
	h.countAuthResults(name, value)
	if strings.EqualFold(name, DecryptedHeader) {
		h.decryptedFields++
	}
	// Header bytes count toward max_message_size; past it they are not kept
	// (the message is then refused if it needs encryption, passed if not).
	h.headerBytes += int64(len(name) + len(value) + 4)
	if h.headerBytes > h.opts.MaxMessageSize {
		h.headersOverflow = true
		return milter.RespContinue, nil
	}
	h.headers = append(h.headers, field{name, value})
	return milter.RespContinue, nil
}

func (h *handler) BodyChunk(chunk []byte, m milter.Modifier) (resp *milter.Response, err error) {
	defer h.guard("body", &resp, &err)
	h.begin()
	if _, err := h.body.Write(chunk); err != nil {
		h.opts.Logger.Error("cannot spool body; message deferred", "err", err)
		return tempFail()
	}
	return milter.RespContinue, nil
}

func (h *handler) Abort(m milter.Modifier) error {
	h.end()
	return nil
}

func (h *handler) Cleanup(m milter.Modifier) {
	h.end()
}
