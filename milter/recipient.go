package milter

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/recipient"
)

// rcpt is one recipient of the message: its evaluation (package recipient)
// prepared at RCPT TO, and its lookups, started then.
type rcpt struct {
	addr string
	pre  recipient.Recipient // Prepare's: read-only once the lookup starts
	done chan struct{}       // closed when res is written
	res  recipient.Recipient // the lookup's; read only after done
}

// lookup runs r's lookups (recipient.Config.Lookup) and closes r.done.
func (h *handler) lookup(ctx context.Context, r *rcpt) {
	defer close(r.done)
	defer func() {
		if p := recover(); p != nil {
			h.opts.Logger.Error("panic in lookup", "rcpt", r.addr, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			r.res = h.opts.recipients.Unfinished(r.pre)
		}
	}()
	r.res = h.opts.recipients.Lookup(ctx, r.pre)
}

// result is r's evaluation: the lookup's once it is done, else decided as
// unfinished (indeterminate).
func (h *handler) result(r *rcpt) recipient.Recipient {
	select {
	case <-r.done:
		return r.res
	default:
		return h.opts.recipients.Unfinished(r.pre)
	}
}

// verdict is one recipient's evaluation at end of message, and what
// happens to it.
type verdict struct {
	ev    recipient.Recipient
	d     policy.Decision // ev.Decision, or Plain when already encrypted to its key
	label string          // for the log: ev.Label, or already-encrypted
}

func (h *handler) evaluate(r *rcpt) verdict {
	ev := h.result(r)
	return verdict{ev: ev, d: ev.Decision, label: ev.Label}
}
