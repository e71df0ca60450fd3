package milter

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/reply"
)

// field is one header field as the MTA sent it.
type field struct{ name, value string }

// mtaView is what the MTA showed the milter of one message: the queue ID at
// each stage, the recipient arguments as sent.
type mtaView struct {
	queueIDMail, queueIDRcpt, clientPort string
	rcptArgs                             []string
}

// message is the state of one message (one SMTP transaction), made fresh
// at MAIL FROM, or at the first event of a message the MTA began without
// one, and dropped at end of message or abort.
type message struct {
	ctx          context.Context // the message's deadline (Options.MessageTimeout)
	cancel       context.CancelFunc
	start        time.Time
	from         string
	senderExempt string
	rcpts        []*rcpt
	headers      []field
	body         *spool
	// headerBytes counts the header section toward MaxMessageSize;
	// headersOverflow is set when it passed the limit.
	headerBytes     int64
	headersOverflow bool
	// rcptWaitLeft is what remains of Options.RcptWait for this message.
	rcptWaitLeft time.Duration
	// dryRunNote is the trace header value of per-entry dry runs, for the
	// re-injected plaintext copy too.
	dryRunNote string
	// localSubmission: Postfix's cleanup emulates the SMTP session of mail
	// submitted with sendmail(1) ({client_port} "0") and shows the milter
	// recipients after canonical rewriting, while a DeleteRecipient must
	// name the original address. A split then re-injects every copy and
	// discards this transaction instead of deleting recipients.
	localSubmission bool
	// view is what the MTA showed of this message, for the debug log.
	view mtaView

	// direction is the message's, decided at MAIL FROM by rule.
	direction Direction
	rule      string
	// arCount counts the Authentication-Results and DANE-OpenPGP-Result
	// fields received; forgedAR are those that carry our authserv-id, to
	// be removed (inbound.go).
	arCount  [2]int // per ourFields
	forgedAR []forged
	// inboundAdd are the fields of the verification report, inserted at
	// the top of the header; inboundTrace is the trace header value of an
	// inbound dry run ("" for none).
	inboundAdd   []field
	inboundTrace string
	// decryptedFields counts the DecryptedHeader fields received: forged
	// claims, removed (decrypt.go).
	decryptedFields int
	// held is the refusal a hold replaced (zero: not held).
	held reply.Reply
}

func newMessage(opts *Options) *message {
	ctx, cancel := context.WithTimeout(context.Background(), opts.MessageTimeout)
	return &message{
		ctx: ctx, cancel: cancel, start: time.Now(),
		rcptWaitLeft: opts.RcptWait,
		direction:    opts.Direction.Default, rule: RuleDefault,
		body: &spool{dir: opts.SpoolDir, threshold: opts.MemoryThreshold, limit: opts.MaxMessageSize, budget: opts.budget},
	}
}

// close ends the message's lookups and frees its body.
func (m *message) close() {
	m.cancel()
	m.body.Close()
}

// begin makes the message if there is none.
func (h *handler) begin() {
	if h.message == nil {
		h.message = newMessage(h.opts)
	}
}

// end drops the message, if any.
func (h *handler) end() {
	if h.message != nil {
		h.message.close()
		h.message = nil
	}
}

// headerValue returns the first value of the named header, without the
// leading space.
func (h *handler) headerValue(name string) string {
	for _, f := range h.headers {
		if strings.EqualFold(f.name, name) {
			return strings.TrimSpace(f.value)
		}
	}
	return ""
}

// hv formats a header value for the MTA: with OptHeaderLeadingSpace the MTA
// inserts nothing after the colon, so we do.
func (h *handler) hv(leadSpace bool, v string) string {
	if leadSpace {
		return " " + v
	}
	return v
}

// entityHeader renders the MIME entity's own header fields (Content-*) in
// their original order and form, CRLF-terminated, followed by the empty line.
func (h *handler) entityHeader(leadSpace bool) []byte {
	var b strings.Builder
	for _, f := range h.headers {
		if mimeentity.IsEntityField(f.name) {
			mimeentity.WriteField(&b, f.name, asSent(leadSpace, f.value))
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// asSent is a header value as it follows the colon: with
// OptHeaderLeadingSpace the MTA passes the leading space, without it the
// MTA dropped one, which is put back.
func asSent(leadSpace bool, v string) string {
	if leadSpace {
		return v
	}
	return " " + v
}

// entity returns a reader of the MIME entity (Content-* fields, empty line,
// body) and its size.
func (h *handler) entity(leadSpace bool) (io.Reader, int64, error) {
	body, err := h.body.Reader()
	if err != nil {
		return nil, 0, err
	}
	hdr := h.entityHeader(leadSpace)
	return io.MultiReader(strings.NewReader(string(hdr)), body), int64(len(hdr)) + h.body.Size(), nil
}
