package milter

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/recipient"
)

// group is the recipients that get one copy of the message: plaintext, or
// encrypted in one format.
type group struct {
	plain  bool
	format Format
	rcpts  []*recipient.Recipient
}

func (g group) addrs() []string {
	out := make([]string, len(g.rcpts))
	for i, e := range g.rcpts {
		out[i] = e.Address
	}
	return out
}

func (g group) String() string {
	if g.plain {
		return fmt.Sprintf("plain:%d", len(g.rcpts))
	}
	return fmt.Sprintf("%s:%d", g.format, len(g.rcpts))
}

// groups are the plan's copies with their recipients' evaluations.
func groups(copies []policy.Copy, vs []verdict) []group {
	byAddr := make(map[string]*recipient.Recipient, len(vs))
	for i := range vs {
		byAddr[vs[i].ev.Address] = &vs[i].ev
	}
	out := make([]group, len(copies))
	for i, c := range copies {
		out[i] = group{plain: c.Plain, format: c.Format}
		for _, a := range c.To {
			out[i].rcpts = append(out[i].rcpts, byAddr[a])
		}
	}
	return out
}

func (h *handler) EndOfMessage(m milter.Modifier) (resp *milter.Response, err error) {
	defer h.end()
	defer h.guard("eom", &resp, &err)
	h.begin()
	queueID := m.Get(milter.MacroQueueId)
	log := h.opts.Logger.With("queue_id", queueID)
	if log.Enabled(context.Background(), slog.LevelDebug) { // no work per message unless asked for
		log.Debug("mta view", "milter_protocol", m.Version(), "header_leading_space", m.Protocol()&milter.OptHeaderLeadingSpace != 0,
			"max_data_size", m.MaxDataSize(), "queue_id_at_mail", h.view.queueIDMail, "queue_id_at_rcpt", h.view.queueIDRcpt,
			"client_port", h.view.clientPort, "local_submission", h.localSubmission, "rcpt_args", strings.Join(h.view.rcptArgs, " "))
	}

	// Wait for every lookup; the message deadline bounds the wait, and a
	// lookup still running at the deadline counts as indeterminate.
	for _, r := range h.rcpts {
		select {
		case <-r.done:
		case <-h.ctx.Done():
		}
	}

	leadSpace := m.Protocol()&milter.OptHeaderLeadingSpace != 0
	// Decryption first (decrypt.go): it sends nothing, but verification
	// must see the decrypted message.
	dec, resp, err := h.decryptStep(log, leadSpace)
	if resp != nil || err != nil {
		return resp, err
	}
	// The inbound half (inbound.go): its refusal comes before any copy
	// leaves, and its header changes before the body's.
	if resp, err := h.inboundStep(m, log, leadSpace); resp != nil || err != nil {
		return resp, err
	}
	if err := h.removeForgedDecrypted(m); err != nil {
		log.Error("cannot remove a forged "+DecryptedHeader+" field; message deferred", "err", err)
		return tempFail()
	}
	if dec != nil {
		// Every recipient is local: no copy to encrypt or re-inject.
		return h.replaceDecrypted(m, log, leadSpace, dec)
	}
	vs := make([]verdict, len(h.rcpts))
	for i, r := range h.rcpts {
		vs[i] = h.evaluate(r)
	}
	// A body labelled encrypted passes untouched only when its encryption
	// demonstrably includes a usable key of every recipient it would
	// otherwise be encrypted to (README "Already-encrypted mail"); else it
	// is encrypted like any other message, again if it was already.
	sealedAll := false
	if ctype := h.headerValue("Content-Type"); mimeentity.IsEncrypted(ctype) && anyEncrypt(vs) {
		seal, err := h.inspectEncrypted(ctype)
		if err != nil {
			log.Warn("Content-Type says encrypted but the body is not one complete encrypted message; encrypting it like any other",
				"from", h.from, "content_type", clip(ctype, 200), "err", err)
		} else if missing := seal.missing(vs, h.opts.Now()); len(missing) > 0 {
			log.Info("already encrypted, but not to every recipient's key; encrypting it again", "from", h.from,
				"format", seal.format(), "without_key", summarizeAddrs(missing))
		} else {
			sealedAll = true
			for i := range vs {
				if vs[i].d.Action == policy.Encrypt {
					vs[i].d = policy.Decision{Action: policy.Plain, Reason: "already encrypted to the recipient's key"}
					vs[i].label = "already-encrypted"
				}
			}
		}
	}
	prs := make([]policy.Recipient, len(vs))
	var would []string
	for i, v := range vs {
		prs[i] = policy.Recipient{Address: v.ev.Address, Local: v.ev.Local, Decision: v.d, Formats: v.ev.Formats(h.opts.Prefer(v.ev.Address))}
		if w := v.ev.Would.Action.String(); v.ev.DryRun && !slices.Contains(would, w) {
			would = append(would, w)
		}
	}
	size := h.body.Size()
	attrs := []any{"direction", h.direction.String(), "rule", h.rule, "from", h.from, "size", size, "rcpt_count", len(vs), "recipients", h.summarize(vs)}
	if len(h.forgedAR) > 0 {
		attrs = append(attrs, "forged_auth_results_removed", len(h.forgedAR))
	}
	plan := policy.PlanMessage(policy.Message{
		Recipients: prs,
		CanSplit:   h.opts.Reinjector != nil,
		TooBig:     h.body.overflow || h.headersOverflow || h.headerBytes+size > h.opts.MaxMessageSize,
		TooBigEncrypted: func(c policy.Copy) bool {
			// Postfix would refuse the queue file after the other copies
			// had left (cleanup: "message file too big"); refuse it first.
			g := groups([]policy.Copy{c}, vs)[0]
			bound, over := h.tooBigOnceEncrypted(g, h.headerBytes+size+2)
			if over {
				attrs = append(attrs, "copy", g.String(), "encrypted_size_bound", bound, "max_encrypted_size", h.opts.MaxEncryptedSize)
			}
			return over
		},
		Sealed: sealedAll,
	})
	groups := groups(plan.Copies, vs)

	if h.opts.DryRun {
		what := plan.Action.String()
		if len(groups) > 0 {
			what += " (" + groupList(groups) + ")"
		}
		log.Info("message", append([]any{"action", "pass", "dry_run", true, "would", what, "reason", plan.Reason}, attrs...)...)
		if err := m.AddHeader(TraceHeader, h.hv(leadSpace, "dry-run; would "+plan.Action.String())); err != nil {
			log.Error("cannot add the trace header; message deferred", "err", err)
			return tempFail()
		}
		return milter.RespAccept, nil
	}
	if len(would) > 0 {
		h.dryRunNote = "dry-run; would " + strings.Join(would, ",")
		if err := m.AddHeader(TraceHeader, h.hv(leadSpace, h.dryRunNote)); err != nil {
			log.Error("cannot add the trace header; message deferred", "err", err)
			return tempFail()
		}
	}

	switch plan.Action {
	case policy.TempFail, policy.Reject:
		log.Info("message", append([]any{"action", plan.Action.String(), "status", plan.Reply.Enhanced, "reason", plan.Reason}, attrs...)...)
		return respond(plan.Reply)
	case policy.Plain:
		log.Info("message", append([]any{"action", "pass", "reason", plan.Reason}, attrs...)...)
		return milter.RespAccept, nil
	}

	// The first group stays in this transaction; every other group gets its
	// own copy through the re-injection listener, first, so that a failure
	// leaves the message untouched and deferred.
	keep, others := groups[0], groups[1:]
	if !h.held.IsZero() && (len(others) > 0 || h.localSubmission) {
		// A held message is held whole: a copy re-injected now would
		// escape the hold. Refuse as the hold would have.
		log.Info("message", append([]any{"action", "reject", "status", h.held.Enhanced, "reason", h.held.Text + "; held, and the plan splits the message"}, attrs...)...)
		return respond(h.held)
	}
	note := ""
	if len(others) > 0 {
		note = "; split=" + groupList(groups)
	}
	// Prepare this transaction's encryption before any copy leaves, so that
	// an error here cannot follow a successful re-injection.
	enc, err := h.encoder(keep, leadSpace)
	if err != nil {
		log.Error("message", append([]any{"action", "tempfail", "reason", "encryption failed", "err", err}, attrs...)...)
		return tempFail()
	}
	if len(others) > 0 && h.localSubmission {
		// Postfix's local submission: the recipients shown are rewritten
		// ones that DeleteRecipient cannot name (cleanup compares with the
		// original address), so every copy is re-injected, the one that
		// would stay too, and this transaction is discarded.
		for i, g := range groups {
			n := "; split copy"
			if i == 0 {
				n = note // the copy that would have stayed
			}
			if err := h.reinjectGroup(g, leadSpace, n); err != nil {
				log.Error("message", append([]any{"action", "tempfail", "reason", "re-injection of a copy failed", "copy", g.String(), "err", err}, attrs...)...)
				return tempFail()
			}
		}
		log.Info("message", append([]any{"action", plan.Action.String(), "format", keep.format.String(), "cipher", enc.cipher, "keys", enc.keys,
			"copies", groupList(groups), "reinjected", "all (local submission)", "reason", plan.Reason,
			"duration", time.Since(h.start).Round(time.Millisecond)}, attrs...)...)
		return milter.RespDiscard, nil
	}
	for _, g := range others {
		if err := h.reinjectGroup(g, leadSpace, "; split copy"); err != nil {
			log.Error("message", append([]any{"action", "tempfail", "reason", "re-injection of a copy failed", "copy", g.String(), "err", err}, attrs...)...)
			return tempFail()
		}
	}
	for _, g := range others {
		for _, a := range g.addrs() {
			if err := m.DeleteRecipient(a); err != nil {
				log.Error("message", append([]any{"action", "tempfail", "reason", "cannot remove recipient after re-injection; a copy may be delivered twice", "err", err}, attrs...)...)
				return tempFail()
			}
		}
	}
	if err := h.encryptInPlace(m, leadSpace, enc, note); err != nil {
		log.Error("message", append([]any{"action", "tempfail", "reason", "encryption failed", "err", err}, attrs...)...)
		return tempFail()
	}
	log.Info("message", append([]any{"action", plan.Action.String(), "format", keep.format.String(), "cipher", enc.cipher, "keys", enc.keys,
		"copies", groupList(groups), "reason", plan.Reason, "duration", time.Since(h.start).Round(time.Millisecond)}, attrs...)...)
	return milter.RespAccept, nil
}

func groupList(gs []group) string {
	var s []string
	for _, g := range gs {
		s = append(s, g.String())
	}
	return strings.Join(s, "+")
}

func anyEncrypt(vs []verdict) bool {
	for _, v := range vs {
		if v.d.Action == policy.Encrypt {
			return true
		}
	}
	return false
}
