package milter

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/danemilter/danemilter/mimeentity"
)

// field is one header field as the MTA sent it.
type field struct{ name, value string }

// mtaView is what the MTA showed the milter of one message: the queue ID at
// each stage, the recipient arguments as sent.
type mtaView struct {
	queueIDMail, queueIDRcpt, clientPort string
	rcptArgs                             []string
}

func (h *handler) begin() {
	if h.ctx != nil {
		return
	}
	h.start = time.Now()
	h.ctx, h.cancel = context.WithTimeout(context.Background(), h.opts.MessageTimeout)
	h.rcptWaitLeft = h.opts.RcptWait
	h.body = &spool{dir: h.opts.SpoolDir, threshold: h.opts.MemoryThreshold, limit: h.opts.MaxMessageSize, budget: h.opts.budget}
}

func (h *handler) reset() {
	if h.cancel != nil {
		h.cancel()
	}
	if h.body != nil {
		h.body.Close()
	}
	h.ctx, h.cancel, h.from, h.senderExempt, h.rcpts, h.headers, h.body = nil, nil, "", "", nil, nil, nil
	h.headerBytes, h.headersOverflow, h.dryRunNote = 0, false, ""
	h.localSubmission, h.view = false, mtaView{}
}

// headerValue returns the first value of the named header, without the
// leading space.
func (h *handler) headerValue(name string, leadSpace bool) string {
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
