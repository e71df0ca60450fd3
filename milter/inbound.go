package milter

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/verify"
)

// The inbound half of end of message (README "Direction: inbound and
// outbound", "Inbound policy").
//
// Every message, whatever its direction, loses the Authentication-Results
// fields that carry our authserv-id (RFC 8601 §5: a forged one must never
// reach a user, and mail between local users over submission could carry
// one too); Header counts them as they arrive, so the deletion indices are
// right even past the header limit. An inbound message whose sender's level
// is not none is verified whole (header as received, body from the spool,
// up to MaxVerifySize), the fields of the report are inserted at the top of
// the header (RFC 8601 §5: before the fields they are about), and a sender
// whose level is require gets its message refused or held without a pass.
// Then the outbound plan runs as for any message: local recipients get the
// message as it is, remote ones are encrypted as their policy says, in both
// directions.

// Verifier verifies the signatures of a whole RFC 5322 message
// (*verify.Verifier).
type Verifier interface {
	Verify(ctx context.Context, message []byte) (*verify.Report, error)
}

// ourFields are the fields that carry an authserv-id and that we write:
// an incoming one that carries ours is removed.
var ourFields = []string{verify.FieldAuthenticationResults, verify.FieldOpenPGP}

// DefaultAuthservID is the authserv-id when Options.AuthservID is empty and
// the host name is unknown.
const DefaultAuthservID = "localhost"

// inbound is what the inbound half decided for one message.
type inbound struct {
	match      policy.InboundMatch
	headerFrom string
	verified   bool
	outcome    policy.InboundOutcome
	report     *verify.Report
	decision   policy.InboundDecision
	dryRun     bool   // the decision is only announced (global or entry dry run)
	would      string // with dryRun: what would have happened, "" if nothing
}

// forged is one received field to remove: its name and its index among
// the fields of that name (1-based, as go-milter's ChangeHeader and the
// MTAs count).
type forged struct {
	name  string
	index int
}

// countAuthResults notes an Authentication-Results or DANE-OpenPGP-Result
// field as it arrives, and remembers it when it carries our authserv-id.
func (h *handler) countAuthResults(name, value string) {
	for i, n := range ourFields {
		if strings.EqualFold(name, n) {
			h.arCount[i]++
			if verify.IsOurs(value, h.opts.AuthservID) {
				h.forgedAR = append(h.forgedAR, forged{n, h.arCount[i]})
			}
			return
		}
	}
}

// inboundStep runs the inbound half of end of message and sends its header
// changes. It returns a final response when the message ends here (refused,
// deferred, or a failure), nil when the outbound plan goes on.
func (h *handler) inboundStep(m milter.Modifier, log *slog.Logger, leadSpace bool) (*milter.Response, error) {
	if h.direction == Inbound && h.opts.Verifier != nil {
		in := h.decideInbound(log, leadSpace)
		if in.match.Level != policy.InboundNone {
			h.logInbound(log, in)
		}
		d := in.decision
		if !in.dryRun {
			if d.Action == policy.Reject || d.Action == policy.TempFail {
				return respond(d.Reply)
			}
			if d.Hold {
				if err := m.Quarantine(d.Reply.Text); err != nil {
					if errors.Is(err, milter.ErrModificationNotAllowed) {
						log.Error("require_action = hold, but the MTA did not offer quarantine (SMFIF_QUARANTINE); message deferred", "from", h.from)
					} else {
						log.Error("cannot hold the message; message deferred", "err", err)
					}
					return tempFail()
				}
				h.held = d.Reply
			}
		} else if in.would != "" {
			h.inboundTrace = "dry-run; would " + in.would + " (" + d.Reply.Text + ")"
		}
	}
	// Forged fields out, highest index first so the lower ones stay valid
	// (Postfix renumbers after a deletion, Sendmail keeps the deleted field
	// in its count: descending order is right for both).
	for i := len(h.forgedAR) - 1; i >= 0; i-- {
		if err := m.ChangeHeader(h.forgedAR[i].index, h.forgedAR[i].name, ""); err != nil {
			log.Error("cannot remove a forged Authentication-Results field; message deferred", "err", err)
			return tempFail()
		}
	}
	// Our fields at the very top, in the report's order: each insert at
	// index 0 goes above the one before, so insert the last first.
	for i := len(h.inboundAdd) - 1; i >= 0; i-- {
		f := h.inboundAdd[i]
		if err := m.InsertHeader(0, f.name, f.value); err != nil {
			log.Error("cannot add the verification results; message deferred", "err", err)
			return tempFail()
		}
	}
	if h.inboundTrace != "" {
		if err := m.AddHeader(TraceHeader, h.hv(leadSpace, h.inboundTrace)); err != nil {
			log.Error("cannot add the trace header; message deferred", "err", err)
			return tempFail()
		}
	}
	return nil, nil
}

// decideInbound verifies an inbound message when its sender's level asks
// for it and applies the inbound policy. It sends nothing.
func (h *handler) decideInbound(log *slog.Logger, leadSpace bool) inbound {
	var in inbound
	var froms []string
	for _, f := range h.headers {
		if strings.EqualFold(f.name, "From") {
			froms = append(froms, f.value)
		}
	}
	in.match, in.headerFrom = h.opts.Inbound.Strictest(verify.FromAddresses(froms))
	in.dryRun = h.opts.DryRun || in.match.DryRun
	if in.match.Level == policy.InboundNone {
		in.decision = policy.DecideInbound(policy.InboundNone, policy.InboundNoPass, false)
		return in
	}
	in.report, in.outcome = h.verify(log, leadSpace, in.headerFrom)
	in.verified = true
	h.harvest(log, in.report)
	for _, f := range in.report.Fields(h.opts.AuthservID) {
		// Folded as any field we write (RFC 5322 §2.1.1), kept in the form
		// the MTA sent the others (asSent).
		v := strings.TrimSuffix(strings.TrimPrefix(mimeentity.FoldField(f.Name, f.Value), f.Name+":"), "\r\n")
		h.inboundAdd = append(h.inboundAdd, field{f.Name, h.hv(leadSpace, strings.TrimPrefix(v, " "))})
	}
	in.decision = policy.DecideInbound(in.match.Level, in.outcome, h.opts.RequireHold)
	if in.dryRun {
		in.would = in.decision.Effect()
	}
	return in
}

// verify runs the Verifier on the whole message, within MaxVerifySize and
// the memory budget. A message that is not verified gets a report that
// says why, in the verifier's own words for "not judged".
func (h *handler) verify(log *slog.Logger, leadSpace bool, policyAddr string) (*verify.Report, policy.InboundOutcome) {
	size := h.headerBytes + 2 + h.body.Size()
	if h.body.overflow || h.headersOverflow || size > h.opts.MaxVerifySize {
		return verify.NotVerified(verify.ResultNeutral, verify.ReasonTooBig), policy.InboundTooBig
	}
	if !h.opts.budget.take(size) {
		log.Warn("memory budget exhausted; message not verified", "size", size)
		return verify.NotVerified(verify.ResultTempError, "not verified: the gateway is short of memory"), policy.InboundError
	}
	defer h.opts.budget.give(size)
	msg, err := h.wholeMessage(leadSpace, size)
	if err != nil {
		log.Error("cannot read the spooled body; message not verified", "err", err)
		return verify.NotVerified(verify.ResultTempError, "not verified: internal error"), policy.InboundError
	}
	// Verification gets its own deadline from end of message: the
	// message's context started at MAIL FROM and a slow DATA may have used
	// it up, which must not read as "unsigned".
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.MessageTimeout)
	defer cancel()
	rep, err := h.opts.Verifier.Verify(ctx, msg)
	switch {
	case rep == nil:
		log.Error("verification failed", "err", err)
	case err != nil:
		log.Warn("verification did not finish", "err", err)
	}
	return verify.Conclude(rep, err, policyAddr)
}

// harvest hands the signer certificate of every S/MIME signature that
// passes (valid, and bound to From by a DNSSEC-secure SMIMEA record) to the
// Harvester (issue 14). A signature that does not pass teaches nothing:
// harvesting grants no trust, but it must not let a stranger fill the
// store either. The Harvester never blocks, so the message is not delayed.
func (h *handler) harvest(log *slog.Logger, rep *verify.Report) {
	if h.opts.Harvester == nil || rep == nil || rep.From == "" {
		return
	}
	for _, s := range rep.Signatures {
		if s.Method != verify.MethodSMIME || s.Result != verify.ResultPass || len(s.Certificate) == 0 {
			continue
		}
		// Seen when it was signed (a signed attribute, so only the key's
		// holder sets it; never later than now): a replayed old message
		// then cannot replace the capabilities a newer one announced.
		seen := h.opts.Now()
		if t := s.SigningTime; !t.IsZero() && t.Before(seen) {
			seen = t
		}
		h.opts.Harvester.Harvest(harvest.Entry{Address: harvest.NormalizeAddress(rep.From), Certificate: s.Certificate,
			Capabilities: s.Capabilities, LastSeen: seen})
		log.Debug("harvested the signer certificate", "header_from", rep.From, "serial", s.Serial)
	}
}

// wholeMessage renders the message as received: the header fields as the
// MTA sent them, the empty line, the body.
func (h *handler) wholeMessage(leadSpace bool, size int64) ([]byte, error) {
	var hdr strings.Builder
	for _, f := range h.headers {
		mimeentity.WriteField(&hdr, f.name, asSent(leadSpace, f.value))
	}
	hdr.WriteString("\r\n")
	body, err := h.body.Reader()
	if err != nil {
		return nil, err
	}
	// Exactly the size charged to the memory budget: a bytes.Buffer grown
	// by ReadFrom may double its capacity at the end.
	b := make([]byte, hdr.Len()+int(h.body.Size()))
	n := copy(b, hdr.String())
	if _, err := io.ReadFull(body, b[n:]); err != nil {
		return nil, err
	}
	return b, nil
}

// logInbound writes the one log line of an inbound message.
func (h *handler) logInbound(log *slog.Logger, in inbound) {
	d := in.decision
	action := "pass"
	if e := d.Effect(); e != "" && in.would == "" {
		action = e
	}
	attrs := []any{"direction", h.direction.String(), "rule", h.rule, "from", h.from, "header_from", in.headerFrom,
		"level", in.match.Level.String()}
	if in.match.Entry != "" {
		attrs = append(attrs, "entry", in.match.Entry)
	}
	if in.verified {
		attrs = append(attrs, "outcome", in.outcome.String(), "results", clip(in.report.Summary(), maxDetail))
	}
	attrs = append(attrs, "action", action)
	if !d.Reply.IsZero() {
		attrs = append(attrs, "status", d.Reply.Enhanced)
	}
	if in.dryRun {
		attrs = append(attrs, "dry_run", true)
		if in.would != "" {
			attrs = append(attrs, "would", in.would)
		}
	}
	attrs = append(attrs, "reason", d.Reason, "duration", time.Since(h.start).Round(time.Millisecond))
	log.Info("inbound", attrs...)
}

// outHeaders are the received header fields as the message leaves this
// transaction's inbound half: our fields first, the forged
// Authentication-Results fields left out. Copies that are re-injected are
// written from them.
func (h *handler) outHeaders() []field {
	if len(h.inboundAdd) == 0 && len(h.forgedAR) == 0 && h.decryptedFields == 0 {
		return h.headers
	}
	out := append([]field(nil), h.inboundAdd...)
	var n [2]int
	for _, f := range h.headers {
		if strings.EqualFold(f.name, DecryptedHeader) { // a forged claim (decrypt.go)
			continue
		}
		if i := slices.IndexFunc(ourFields, func(n string) bool { return strings.EqualFold(n, f.name) }); i >= 0 {
			n[i]++
			if slices.Contains(h.forgedAR, forged{ourFields[i], n[i]}) {
				continue
			}
		}
		out = append(out, f)
	}
	return out
}
