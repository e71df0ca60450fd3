// Package milter connects danemilter to the MTA over the milter protocol
// (Sendmail's libmilter protocol, version 6, as spoken by Postfix and
// Sendmail) using github.com/d--j/go-milter.
//
// The layer is thin: it keeps per-message state in a handler made for each
// MTA connection, starts each remote recipient's key lookup the moment RCPT TO
// arrives (so lookups run concurrently with the rest of the SMTP dialogue),
// spools the body, and at end of message asks package policy for a plan and
// package smime for the ciphertext. Every outcome becomes an explicit milter
// response; every failure inside the daemon becomes a temporary failure
// (4.x.x), so the MTA keeps the message and retries rather than passing it in
// clear. Panics in a callback are recovered and answered the same way.
package milter

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/smime"
)

// TraceHeader is the header danemilter adds to every message it changes (or,
// in dry-run mode, would change). It never names keys.
const TraceHeader = "X-Danemilter"

// Options configure the milter. Zero values are the documented defaults
// (config package) except Resolver and Levels, which are required.
type Options struct {
	Logger   *slog.Logger
	Resolver dane.Resolver
	// Levels gives each recipient's policy: a *policy.Table, or a
	// *policy.Live that follows a map file.
	Levels policy.Source
	// Exemptions name senders and recipients to leave alone; nil: none.
	Exemptions *policy.Exemptions
	// Reinjector delivers the plaintext copy of a split message; nil turns
	// splitting off.
	Reinjector Reinjector
	// RcptWait is how long RCPT TO waits for the recipient's lookup to
	// decide at once (a refusal for that recipient alone). Zero decides at
	// RCPT TO only when the answer is already there (the cache).
	RcptWait time.Duration
	// IsLocal reports whether a recipient domain is delivered locally.
	IsLocal            func(domain string) bool
	LowercaseLocalPart bool
	MaxMessageSize     int64
	MemoryThreshold    int64
	SpoolDir           string
	MessageTimeout     time.Duration
	DryRun             bool
	Cipher             smime.Cipher
	Now                func() time.Time
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.IsLocal == nil {
		o.IsLocal = func(string) bool { return false }
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 64 << 20
	}
	if o.MemoryThreshold <= 0 {
		o.MemoryThreshold = 1 << 20
	}
	if o.MessageTimeout <= 0 {
		o.MessageTimeout = 120 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// NewServer returns a go-milter server whose connections are handled by
// danemilter. Serve it on a listener; Shutdown drains it.
func NewServer(opts Options) (*milter.Server, error) {
	if opts.Resolver == nil || opts.Levels == nil {
		return nil, errors.New("milter: Options.Resolver and Options.Levels are required")
	}
	opts.defaults()
	return milter.NewServer(
		milter.WithMilter(func() milter.Milter { return &handler{opts: &opts} }),
		// We need envelope, headers and body; not the connection data.
		milter.WithProtocols(milter.OptNoConnect|milter.OptNoHelo|milter.OptNoUnknown|milter.OptNoData|milter.OptHeaderLeadingSpace),
		milter.WithActions(milter.OptAddHeader|milter.OptChangeHeader|milter.OptChangeBody|milter.OptRemoveRcpt),
		milter.WithMacroRequest(milter.StageMail, []milter.MacroName{milter.MacroQueueId}),
		milter.WithMacroRequest(milter.StageRcpt, []milter.MacroName{milter.MacroQueueId}),
		milter.WithMacroRequest(milter.StageEOM, []milter.MacroName{milter.MacroQueueId}),
		milter.WithReadTimeout(10*time.Minute),
		milter.WithWriteTimeout(time.Minute),
	), nil
}

// field is one header field as the MTA sent it.
type field struct{ name, value string }

// rcpt is one recipient and its lookup, started at RCPT TO.
type rcpt struct {
	addr   string
	local  bool
	exempt string // the exemption pattern that applies, or ""
	match  policy.Match

	done     chan struct{}
	name     string
	result   dane.Result
	usable   []dane.Key
	rejected []dane.Rejected
	err      error // address could not be turned into an owner name
}

// handler is made per MTA connection; its message state is reset after every
// message, so nothing is shared between messages.
type handler struct {
	milter.NoOpMilter
	opts *Options

	ctx          context.Context
	cancel       context.CancelFunc
	start        time.Time
	from         string
	senderExempt string
	rcpts        []*rcpt
	headers      []field
	body         *spool
}

func (h *handler) begin() {
	if h.ctx != nil {
		return
	}
	h.start = time.Now()
	h.ctx, h.cancel = context.WithTimeout(context.Background(), h.opts.MessageTimeout)
	h.body = &spool{dir: h.opts.SpoolDir, threshold: h.opts.MemoryThreshold, limit: h.opts.MaxMessageSize}
}

func (h *handler) reset() {
	if h.cancel != nil {
		h.cancel()
	}
	if h.body != nil {
		h.body.Close()
	}
	h.ctx, h.cancel, h.from, h.senderExempt, h.rcpts, h.headers, h.body = nil, nil, "", "", nil, nil, nil
}

// tempFail is the reply for any failure inside the daemon: generic text, the
// detail goes to the log (STYLE 5).
func tempFail() (*milter.Response, error) {
	return milter.RejectWithCodeAndReason(451, "4.3.0 Temporary encryption gateway failure, try again later")
}

// guard recovers a panic in a callback and turns it into a temporary failure.
func (h *handler) guard(stage string, resp **milter.Response, err *error) {
	if r := recover(); r != nil {
		h.opts.Logger.Error("panic in milter callback; message deferred", "stage", stage, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*resp, *err = tempFail()
	}
}

func (h *handler) MailFrom(from string, _ string, m milter.Modifier) (resp *milter.Response, err error) {
	defer h.guard("mail", &resp, &err)
	h.reset()
	h.begin()
	h.from = milter.RemoveAngle(strings.TrimSpace(from))
	h.senderExempt = h.opts.Exemptions.Sender(h.from)
	return milter.RespContinue, nil
}

func (h *handler) RcptTo(addr string, _ string, m milter.Modifier) (resp *milter.Response, err error) {
	defer h.guard("rcpt", &resp, &err)
	h.begin()
	addr = milter.RemoveAngle(strings.TrimSpace(addr))
	for _, r := range h.rcpts {
		if r.addr == addr {
			return milter.RespContinue, nil
		}
	}
	r := &rcpt{addr: addr, done: make(chan struct{})}
	_, domain, _ := cutLast(addr, "@")
	r.local = h.opts.IsLocal(domain)
	r.match = h.opts.Levels.Lookup(addr)
	// An exemption never weakens level encrypt (README "Exemptions").
	if r.match.Level != policy.LevelEncrypt {
		if h.senderExempt != "" {
			r.exempt = "sender " + h.senderExempt
		} else if p := h.opts.Exemptions.Recipient(addr); p != "" {
			r.exempt = "recipient " + p
		}
	}
	if r.local || r.exempt != "" || r.match.Level == policy.LevelNone {
		close(r.done)
		h.rcpts = append(h.rcpts, r)
		return milter.RespContinue, nil
	}
	// Start the lookup now; it runs while the SMTP dialogue goes on.
	go h.lookup(h.ctx, r)

	// Levels none and may never refuse, so they never wait. For dane and
	// encrypt, wait a little: an answer that is already known (the cache)
	// or comes fast lets us refuse this recipient alone, now.
	if r.match.Level >= policy.LevelDane {
		if h.opts.RcptWait > 0 {
			t := time.NewTimer(h.opts.RcptWait)
			select {
			case <-r.done:
			case <-t.C:
			case <-h.ctx.Done():
			}
			t.Stop()
		} else {
			runtimeYield(r.done)
		}
		select {
		case <-r.done:
			d := policy.Decide(r.match.Level, r.outcome())
			if (d.Action == policy.Reject || d.Action == policy.TempFail) && !h.opts.DryRun && !r.match.DryRun {
				h.opts.Logger.Info("recipient refused", "queue_id", m.Get(milter.MacroQueueId), "from", h.from, "rcpt", h.describe(r, r.outcome(), d), "status", d.Status, "reason", d.Reason)
				return milter.RejectWithCodeAndReason(uint16(d.Code), d.Status+" "+d.Reason)
			}
		default:
		}
	}
	h.rcpts = append(h.rcpts, r)
	return milter.RespContinue, nil
}

// runtimeYield gives a lookup that can be answered from the cache the chance
// to finish before RCPT TO is answered: a few microseconds at most.
func runtimeYield(done <-chan struct{}) {
	t := time.NewTimer(2 * time.Millisecond)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

func (h *handler) lookup(ctx context.Context, r *rcpt) {
	defer close(r.done)
	defer func() {
		if p := recover(); p != nil {
			h.opts.Logger.Error("panic in lookup", "rcpt", r.addr, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			r.result = dane.Result{Status: dane.StatusIndeterminate, Err: fmt.Errorf("internal error: %v", p)}
		}
	}()
	r.name, r.err = dane.SMIMEAName(r.addr, h.opts.LowercaseLocalPart)
	if r.err != nil {
		return
	}
	r.result = h.opts.Resolver.Lookup(ctx, r.name, dns.TypeSMIMEA)
	if r.result.Status == dane.StatusSecure {
		r.usable, r.rejected = dane.SelectSMIMEA(r.addr, r.result.Records, h.opts.Now())
	}
}

// outcome maps a finished lookup onto the policy's outcomes.
func (r *rcpt) outcome() policy.Outcome {
	if r.err != nil {
		return policy.NoKey
	}
	switch r.result.Status {
	case dane.StatusSecure:
		if len(r.usable) > 0 {
			return policy.Usable
		}
		return policy.NoKey
	case dane.StatusSecureDenial:
		return policy.NoKey
	case dane.StatusInsecure:
		return policy.Insecure
	case dane.StatusBogus:
		return policy.Bogus
	}
	return policy.Indeterminate
}

func (h *handler) Header(name, value string, m milter.Modifier) (resp *milter.Response, err error) {
	defer h.guard("header", &resp, &err)
	h.begin()
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
	h.reset()
	return nil
}

func (h *handler) Cleanup(m milter.Modifier) {
	h.reset()
}

func (h *handler) EndOfMessage(m milter.Modifier) (resp *milter.Response, err error) {
	defer h.reset()
	defer h.guard("eom", &resp, &err)
	h.begin()
	queueID := m.Get(milter.MacroQueueId)
	log := h.opts.Logger.With("queue_id", queueID)

	// Wait for every lookup; the message deadline bounds the wait, and a
	// lookup still running at the deadline counts as indeterminate.
	for _, r := range h.rcpts {
		select {
		case <-r.done:
		case <-h.ctx.Done():
		}
	}

	leadSpace := m.Protocol()&milter.OptHeaderLeadingSpace != 0
	ctype := h.headerValue("Content-Type", leadSpace)
	if smime.IsEncrypted(ctype) {
		log.Info("message", "action", "pass", "reason", "already encrypted", "from", h.from, "recipients", len(h.rcpts))
		return milter.RespAccept, nil
	}

	var prs []policy.Recipient
	var details, would []string
	for _, r := range h.rcpts {
		var d policy.Decision
		var outcome policy.Outcome
		select {
		case <-r.done:
			outcome = r.outcome()
		default:
			outcome = policy.Indeterminate
		}
		switch {
		case r.local:
			d = policy.Decision{Action: policy.Plain, Reason: "local recipient"}
			details = append(details, r.addr+"=local")
		case r.exempt != "":
			d = policy.Decision{Action: policy.Plain, Reason: "exempt"}
			details = append(details, fmt.Sprintf("%s=plain(exempt %s)", r.addr, r.exempt))
		case r.match.Level == policy.LevelNone:
			d = policy.Decide(policy.LevelNone, outcome)
			details = append(details, r.addr+"=plain(policy none)")
		default:
			d = policy.Decide(r.match.Level, outcome)
			if r.match.DryRun && !h.opts.DryRun {
				// Per-entry dry run: say what would happen, then treat
				// the recipient as plaintext and never refuse it.
				would = append(would, d.Action.String())
				details = append(details, "dry-run:"+h.describe(r, outcome, d))
				d = policy.Decision{Action: policy.Plain, Reason: "dry run"}
			} else {
				details = append(details, h.describe(r, outcome, d))
			}
		}
		prs = append(prs, policy.Recipient{Address: r.addr, Local: r.local, Decision: d})
	}
	plan := policy.Combine(prs, h.opts.Reinjector != nil)
	size := h.body.Size()
	attrs := []any{"from", h.from, "size", size, "recipients", strings.Join(details, " ")}

	if (plan.Action == policy.Encrypt || plan.Action == policy.Split) && h.body.overflow {
		plan = policy.Plan{Action: policy.Reject, Code: 552, Status: "5.3.4", Reason: "message too big for the encryption gateway"}
	}

	if h.opts.DryRun {
		log.Info("message", append([]any{"action", "pass", "dry_run", true, "would", plan.Action.String(), "reason", plan.Reason}, attrs...)...)
		if err := m.AddHeader(TraceHeader, h.hv(leadSpace, "dry-run; would "+plan.Action.String())); err != nil {
			return nil, err
		}
		return milter.RespAccept, nil
	}
	if len(would) > 0 {
		if err := m.AddHeader(TraceHeader, h.hv(leadSpace, "dry-run; would "+strings.Join(uniq(would), ","))); err != nil {
			return nil, err
		}
	}

	switch plan.Action {
	case policy.TempFail, policy.Reject:
		log.Info("message", append([]any{"action", plan.Action.String(), "status", plan.Status, "reason", plan.Reason}, attrs...)...)
		return milter.RejectWithCodeAndReason(uint16(plan.Code), plan.Status+" "+plan.Reason)
	case policy.Plain:
		log.Info("message", append([]any{"action", "pass", "reason", plan.Reason}, attrs...)...)
		return milter.RespAccept, nil
	}

	certs := h.certificates(plan.EncryptTo)
	split := ""
	if plan.Action == policy.Split {
		// Re-inject the plaintext copy first: if that fails, nothing has
		// changed yet and the whole message is deferred.
		if err := h.reinject(plan.PlainTo, leadSpace); err != nil {
			log.Error("message", append([]any{"action", "tempfail", "reason", "re-injection of the plaintext copy failed", "err", err}, attrs...)...)
			return tempFail()
		}
		for _, a := range plan.PlainTo {
			if err := m.DeleteRecipient(a); err != nil {
				log.Error("message", append([]any{"action", "tempfail", "reason", "cannot remove recipient after re-injection; the plaintext copy may be delivered twice", "err", err}, attrs...)...)
				return tempFail()
			}
		}
		split = fmt.Sprintf("; split=%d+%d", len(plan.EncryptTo), len(plan.PlainTo))
	}
	if err := h.encrypt(m, leadSpace, certs, split); err != nil {
		log.Error("message", append([]any{"action", "tempfail", "reason", "encryption failed", "err", err}, attrs...)...)
		return tempFail()
	}
	log.Info("message", append([]any{"action", plan.Action.String(), "format", "smime", "cipher", h.opts.Cipher.String(), "keys", len(certs), "encrypted_to", len(plan.EncryptTo), "plaintext_to", len(plan.PlainTo), "reason", plan.Reason, "duration", time.Since(h.start).Round(time.Millisecond)}, attrs...)...)
	return milter.RespAccept, nil
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// reinject sends the message as received, with a trace header, to rcpts
// through the Reinjector.
func (h *handler) reinject(rcpts []string, leadSpace bool) error {
	body, err := h.body.Reader()
	if err != nil {
		return err
	}
	var hdr strings.Builder
	for _, f := range h.headers {
		if strings.EqualFold(f.name, TraceHeader) {
			continue
		}
		hdr.WriteString(f.name)
		hdr.WriteString(":")
		if !leadSpace {
			hdr.WriteString(" ")
		}
		hdr.WriteString(crlf(f.value))
		hdr.WriteString("\r\n")
	}
	hdr.WriteString(TraceHeader + ": plaintext copy; split from an encrypted message\r\n\r\n")
	ctx, cancel := context.WithTimeout(h.ctx, h.opts.MessageTimeout)
	defer cancel()
	return h.opts.Reinjector.Reinject(ctx, h.from, rcpts, io.MultiReader(strings.NewReader(hdr.String()), body))
}

// describe renders one recipient's lookup and decision for the log line.
func (h *handler) describe(r *rcpt, o policy.Outcome, d policy.Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s=%s(level=%s", r.addr, d.Action, r.match.Level)
	if r.err != nil {
		fmt.Fprintf(&b, ",error=%q", r.err.Error())
	} else {
		fmt.Fprintf(&b, ",dnssec=%s", r.result.Status)
		if len(r.result.EDE) > 0 {
			fmt.Fprintf(&b, ",ede=%d", r.result.EDE[0].Code)
		}
		if r.result.Status == dane.StatusSecure {
			fmt.Fprintf(&b, ",usable=%d", len(r.usable))
			for _, rj := range r.rejected {
				fmt.Fprintf(&b, ",skipped=%q", rj.Reason)
			}
		}
		if o == policy.Indeterminate && r.result.Err != nil {
			fmt.Fprintf(&b, ",error=%q", r.result.Err.Error())
		}
	}
	b.WriteString(")")
	return b.String()
}

// certificates collects every usable certificate of the recipients named,
// without duplicates.
func (h *handler) certificates(addrs []string) []*x509.Certificate {
	var certs []*x509.Certificate
	seen := map[string]bool{}
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	for _, r := range h.rcpts {
		if r.local || !want[r.addr] {
			continue
		}
		for _, k := range r.usable {
			if !seen[string(k.Cert.Raw)] {
				seen[string(k.Cert.Raw)] = true
				certs = append(certs, k.Cert)
			}
		}
	}
	return certs
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
		if !smime.IsEntityHeader(f.name) {
			continue
		}
		b.WriteString(f.name)
		b.WriteString(":")
		if !leadSpace {
			b.WriteString(" ")
		}
		b.WriteString(crlf(f.value))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// crlf turns the bare LF line breaks of folded header values, as MTAs pass
// them, into CRLF (RFC 5322 §2.2.3).
func crlf(v string) string {
	if !strings.Contains(v, "\n") {
		return v
	}
	v = strings.ReplaceAll(v, "\r\n", "\n")
	return strings.ReplaceAll(v, "\n", "\r\n")
}

// maxChunk is the largest body replacement packet we send (64 KiB - 1, the
// milter protocol's classic limit, which every MTA accepts).
const maxChunk = 65535

// encrypt replaces the entity headers and the body of the message with an
// application/pkcs7-mime entity (RFC 8551 §3.3). Nothing the MTA receives
// takes effect unless EndOfMessage accepts, so an error here leaves the
// message untouched.
func (h *handler) encrypt(m milter.Modifier, leadSpace bool, certs []*x509.Certificate, traceExtra string) error {
	if len(certs) == 0 {
		return errors.New("no certificates")
	}
	body, err := h.body.Reader()
	if err != nil {
		return err
	}
	hdr := h.entityHeader(leadSpace)
	entity := io.MultiReader(strings.NewReader(string(hdr)), body)
	size := int64(len(hdr)) + h.body.Size()

	// Delete the entity headers and our own trace header, highest index
	// first so earlier indices stay valid. Indices count per header name.
	type del struct {
		name  string
		index int
	}
	var dels []del
	count := map[string]int{}
	hasMIMEVersion := false
	for _, f := range h.headers {
		key := strings.ToLower(f.name)
		count[key]++
		if key == "mime-version" {
			hasMIMEVersion = true
		}
		if smime.IsEntityHeader(f.name) || strings.EqualFold(f.name, TraceHeader) {
			dels = append(dels, del{f.name, count[key]})
		}
	}
	for i := len(dels) - 1; i >= 0; i-- {
		if err := m.ChangeHeader(dels[i].index, dels[i].name, ""); err != nil {
			return fmt.Errorf("delete header %s: %w", dels[i].name, err)
		}
	}
	if !hasMIMEVersion {
		if err := m.AddHeader("MIME-Version", h.hv(leadSpace, "1.0")); err != nil {
			return err
		}
	}
	for _, f := range smime.OuterFields() {
		if err := m.AddHeader(f.Name, h.hv(leadSpace, f.Value)); err != nil {
			return err
		}
	}
	trace := fmt.Sprintf("encrypted; format=smime; cipher=%s; keys=%d%s", h.opts.Cipher, len(certs), traceExtra)
	if err := m.AddHeader(TraceHeader, h.hv(leadSpace, trace)); err != nil {
		return err
	}

	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			if p := recover(); p != nil {
				pw.CloseWithError(fmt.Errorf("panic in encryption: %v", p))
			}
		}()
		pw.CloseWithError(smime.EncryptBase64(pw, entity, size, certs, smime.Options{Cipher: h.opts.Cipher}))
	}()
	defer wg.Wait()
	defer pr.Close()

	chunk := maxChunk
	if ds := int(m.MaxDataSize()); ds > 0 && ds < chunk {
		chunk = ds
	}
	buf := make([]byte, chunk)
	sent := 0
	for {
		n, err := io.ReadFull(pr, buf)
		if n > 0 {
			if werr := m.ReplaceBodyRawChunk(buf[:n]); werr != nil {
				pr.CloseWithError(werr)
				return fmt.Errorf("replace body: %w", werr)
			}
			sent += n
			if sent%(64*maxChunk) < n { // about every 4 MiB
				_ = m.Progress()
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("encrypt: %w", err)
		}
	}
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], strings.ToLower(s[i+len(sep):]), true
}
