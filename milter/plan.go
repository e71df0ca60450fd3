package milter

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/reply"
)

// group is the recipients that get one copy of the message: plaintext, or
// encrypted in one format.
type group struct {
	plain  bool
	format Format
	rcpts  []*rcpt
}

func (g group) addrs() []string {
	out := make([]string, len(g.rcpts))
	for i, r := range g.rcpts {
		out[i] = r.addr
	}
	return out
}

func (g group) String() string {
	if g.plain {
		return fmt.Sprintf("plain:%d", len(g.rcpts))
	}
	return fmt.Sprintf("%s:%d", g.format, len(g.rcpts))
}

// groups turns a plan into copies: one encrypted group per format needed,
// largest first, then the plaintext group. One format for everyone beats
// the per-recipient preference: when every recipient to encrypt to has a
// key of one format, that format is used for all (the preferred one of the
// first recipient when both would do), so the message is not split.
func (h *handler) groups(plan policy.Plan) []group {
	want := map[string]bool{}
	for _, a := range plan.EncryptTo {
		want[a] = true
	}
	var enc []*rcpt
	plainG := group{plain: true}
	for _, r := range h.rcpts {
		if want[r.addr] {
			enc = append(enc, r)
		} else {
			plainG.rcpts = append(plainG.rcpts, r)
		}
	}
	var out []group
	if len(enc) > 0 {
		first := h.opts.Prefer(enc[0].addr)
		for _, f := range []Format{first, 1 - first} {
			all := true
			for _, r := range enc {
				all = all && r.has(f)
			}
			if all {
				out = append(out, group{format: f, rcpts: enc})
				break
			}
		}
		if out == nil {
			byFormat := map[Format]*group{}
			for _, r := range enc {
				f := h.opts.Prefer(r.addr)
				if !r.has(f) {
					f = 1 - f
				}
				if byFormat[f] == nil {
					byFormat[f] = &group{format: f}
				}
				byFormat[f].rcpts = append(byFormat[f].rcpts, r)
			}
			for _, f := range []Format{FormatSMIME, FormatOpenPGP} {
				if g := byFormat[f]; g != nil {
					out = append(out, *g)
				}
			}
			slices.SortStableFunc(out, func(a, b group) int { return len(b.rcpts) - len(a.rcpts) })
		}
	}
	if len(plainG.rcpts) > 0 {
		out = append(out, plainG)
	}
	return out
}

func (h *handler) EndOfMessage(m milter.Modifier) (resp *milter.Response, err error) {
	defer h.end()
	defer h.guard("eom", &resp, &err)
	h.begin()
	queueID := m.Get(milter.MacroQueueId)
	log := h.opts.Logger.With("queue_id", queueID)
	log.Debug("mta view", "milter_protocol", m.Version(), "header_leading_space", m.Protocol()&milter.OptHeaderLeadingSpace != 0,
		"max_data_size", m.MaxDataSize(), "queue_id_at_mail", h.view.queueIDMail, "queue_id_at_rcpt", h.view.queueIDRcpt,
		"client_port", h.view.clientPort, "local_submission", h.localSubmission, "rcpt_args", strings.Join(h.view.rcptArgs, " "))

	// Wait for every lookup; the message deadline bounds the wait, and a
	// lookup still running at the deadline counts as indeterminate.
	for _, r := range h.rcpts {
		select {
		case <-r.done:
		case <-h.ctx.Done():
		}
	}

	leadSpace := m.Protocol()&milter.OptHeaderLeadingSpace != 0
	vs := make([]verdict, len(h.rcpts))
	for i, r := range h.rcpts {
		vs[i] = h.evaluate(r)
	}
	// A body labelled encrypted passes untouched only when its encryption
	// demonstrably includes a usable key of every recipient it would
	// otherwise be encrypted to (README "Already-encrypted mail"); else it
	// is encrypted like any other message, again if it was already.
	sealedAll := false
	if ctype := h.headerValue("Content-Type", leadSpace); mimeentity.IsEncrypted(ctype) && anyEncrypt(vs) {
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
		prs[i] = policy.Recipient{Address: v.r.addr, Local: v.r.local, Decision: v.d}
		if v.would != "" && !slices.Contains(would, v.would) {
			would = append(would, v.would)
		}
	}
	plan := policy.Combine(prs, h.opts.Reinjector != nil)
	if sealedAll && plan.Action == policy.Plain {
		plan.Reason = "already encrypted to every recipient's key"
	}
	size := h.body.Size()
	attrs := []any{"from", h.from, "size", size, "rcpt_count", len(vs), "recipients", h.summarize(vs)}

	if (plan.Action == policy.Encrypt || plan.Action == policy.Split) && (h.body.overflow || h.headersOverflow || h.headerBytes+size > h.opts.MaxMessageSize) {
		plan = policy.Refusal(reply.TooBig())
	}
	var groups []group
	if plan.Action == policy.Encrypt || plan.Action == policy.Split {
		groups = h.groups(plan)
		if len(groups) > 1 && h.opts.Reinjector == nil {
			// Two formats and no way to send two copies.
			required := false
			for _, p := range prs {
				required = required || p.Decision.Required
			}
			if required {
				plan = policy.Refusal(reply.FormatsDiffer())
			} else {
				plan = policy.Plan{Action: policy.Plain, Reason: "recipients need different encryption formats and splitting is off; sent in clear"}
			}
		}
	}

	if plan.Action == policy.Encrypt || plan.Action == policy.Split {
		if g, bound, big := h.tooBigOnceEncrypted(groups, h.headerBytes+size+2); big {
			// Postfix would refuse the queue file after the other copies
			// had left (cleanup: "message file too big"); refuse it first.
			attrs = append(attrs, "copy", g.String(), "encrypted_size_bound", bound, "max_encrypted_size", h.opts.MaxEncryptedSize)
			plan = policy.Refusal(reply.TooBigEncrypted())
			groups = nil
		}
	}

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
