package milter

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/address"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/reply"
	"github.com/danemilter/danemilter/smime"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
)

// Format is an encryption format.
type Format int

// The formats.
const (
	FormatSMIME   Format = iota // S/MIME, RFC 8551
	FormatOpenPGP               // PGP/MIME, RFC 3156
)

func (f Format) String() string {
	if f == FormatOpenPGP {
		return "pgp-mime"
	}
	return "smime"
}

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

// has reports which formats a recipient has usable keys for.
func (r *rcpt) has(f Format) bool {
	if f == FormatOpenPGP {
		return r.pgpOn && len(r.pgpUsable) > 0
	}
	return len(r.usable) > 0
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
	defer h.reset()
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

// encoder is how one encrypted copy is made.
type encoder struct {
	format  Format
	cipher  string // for logs and the trace header
	keys    int
	fields  []mimeentity.Field
	protect bool // replace the outer Subject (header protection)
	// write writes the encrypted body for the entity read from r (size
	// bytes).
	write func(w io.Writer, r io.Reader, size int64) error
}

func (e *encoder) trace(note string) string {
	if e.format == FormatOpenPGP {
		return fmt.Sprintf("encrypted; format=pgp-mime; keys=%d%s", e.keys, note)
	}
	return fmt.Sprintf("encrypted; format=smime; cipher=%s; keys=%d%s", e.cipher, e.keys, note)
}

// encoder prepares the encryption of one group's copy.
func (h *handler) encoder(g group, leadSpace bool) (*encoder, error) {
	if g.plain {
		return nil, errors.New("milter: internal error: encoder for a plaintext group")
	}
	if g.format == FormatOpenPGP {
		var keys []*pgp.Entity
		seen := map[string]bool{}
		for _, r := range g.rcpts {
			for _, k := range r.pgpUsable {
				if !seen[k.Fingerprint] {
					seen[k.Fingerprint] = true
					keys = append(keys, k.Entity)
				}
			}
		}
		if len(keys) == 0 {
			return nil, errors.New("no OpenPGP keys")
		}
		boundary, err := openpgp.NewBoundary(nil)
		if err != nil {
			return nil, err
		}
		opts := openpgp.Options{Boundary: boundary, Now: h.opts.Now()}
		if h.opts.ProtectHeaders {
			for _, f := range h.headers {
				opts.Protect = append(opts.Protect, openpgp.Field{Name: f.name, Value: strings.TrimPrefix(mimeentity.CRLF(f.value), " ")})
			}
		}
		return &encoder{format: FormatOpenPGP, cipher: "openpgp", keys: len(keys), fields: openpgp.OuterFields(boundary), protect: h.opts.ProtectHeaders,
			write: func(w io.Writer, r io.Reader, _ int64) error {
				_, err := openpgp.EncryptMIME(w, r, keys, opts)
				return err
			}}, nil
	}
	certs := h.certificates(g.addrs())
	if len(certs) == 0 {
		return nil, errors.New("no certificates")
	}
	opts := h.opts.SMIME
	opts.Cipher = h.cipherFor(g)
	return &encoder{format: FormatSMIME, cipher: opts.Cipher.String(), keys: len(certs), fields: smime.OuterFieldsFor(opts.Cipher),
		write: func(w io.Writer, r io.Reader, size int64) error {
			return smime.EncryptBase64(w, r, size, certs, opts)
		}}, nil
}

// cipherFor picks the content cipher of an S/MIME copy: the configured one,
// unless a recipient's domain has an override; every recipient must be able
// to read the copy, so an override to CBC (for readers without GCM) wins
// over GCM.
func (h *handler) cipherFor(g group) smime.Cipher {
	c := h.opts.SMIME.Cipher
	if h.opts.CipherFor == nil {
		return c
	}
	chosen, set := c, false
	for _, r := range g.rcpts {
		oc, ok := h.opts.CipherFor(address.Domain(r.addr))
		if !ok {
			oc = c
		}
		if !set || (isGCM(chosen) && !isGCM(oc)) {
			chosen, set = oc, true
		}
	}
	return chosen
}

func isGCM(c smime.Cipher) bool { return c == smime.AES128GCM || c == smime.AES256GCM }

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

// reinjectGroup sends one copy through the Reinjector: the message as
// received (plaintext group) or encrypted for the group.
func (h *handler) reinjectGroup(g group, leadSpace bool, note string) error {
	// Its own deadline: h.ctx started at MAIL FROM and has been eaten by
	// the client's upload; the copy deserves the full timeout.
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.MessageTimeout)
	defer cancel()
	if g.plain {
		body, err := h.body.Reader()
		if err != nil {
			return err
		}
		var hdr strings.Builder
		for _, f := range h.headers {
			if !strings.EqualFold(f.name, TraceHeader) {
				mimeentity.WriteField(&hdr, f.name, asSent(leadSpace, f.value))
			}
		}
		if h.dryRunNote != "" {
			hdr.WriteString(TraceHeader + ": " + h.dryRunNote + "\r\n")
		}
		hdr.WriteString(TraceHeader + ": plaintext copy; split from an encrypted message\r\n\r\n")
		return h.opts.Reinjector.Reinject(ctx, h.from, g.addrs(), io.MultiReader(strings.NewReader(hdr.String()), body))
	}
	enc, err := h.encoder(g, leadSpace)
	if err != nil {
		return err
	}
	entity, size, err := h.entity(leadSpace)
	if err != nil {
		return err
	}
	var hdr strings.Builder
	hasMIMEVersion := false
	for _, f := range h.headers {
		switch {
		case mimeentity.IsEntityField(f.name), strings.EqualFold(f.name, TraceHeader):
			continue
		case strings.EqualFold(f.name, "MIME-Version"):
			hasMIMEVersion = true
		case enc.protect && strings.EqualFold(f.name, "Subject"):
			mimeentity.WriteField(&hdr, f.name, " "+openpgp.ObscuredSubject)
			continue
		}
		mimeentity.WriteField(&hdr, f.name, asSent(leadSpace, f.value))
	}
	if !hasMIMEVersion {
		hdr.WriteString("MIME-Version: 1.0\r\n")
	}
	for _, f := range enc.fields {
		mimeentity.WriteField(&hdr, f.Name, " "+f.Value)
	}
	mimeentity.WriteField(&hdr, TraceHeader, " "+enc.trace(note))
	hdr.WriteString("\r\n")

	pr, wait := encryptPipe(enc, hdr.String(), entity, size)
	err = h.opts.Reinjector.Reinject(ctx, h.from, g.addrs(), pr)
	pr.CloseWithError(errors.New("re-injection ended"))
	wait()
	return err
}

// encryptPipe runs the encryption in its own goroutine and returns the
// reader of prefix followed by the encrypted body, and a function that waits
// for the goroutine. A panic in the encryption becomes a read error.
func encryptPipe(enc *encoder, prefix string, entity io.Reader, size int64) (*io.PipeReader, func()) {
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
		if _, err := io.WriteString(pw, prefix); err != nil {
			pw.CloseWithError(err)
			return
		}
		pw.CloseWithError(enc.write(pw, entity, size))
	}()
	return pr, wg.Wait
}

// maxChunk is the largest body replacement packet we send (64 KiB - 1, the
// milter protocol's classic limit, which every MTA accepts).
const maxChunk = 65535

// encryptInPlace replaces the entity headers and the body of the message in
// this transaction with the encrypted entity (RFC 8551 §3.3 or RFC 3156 §4).
// Nothing the MTA receives takes effect unless EndOfMessage accepts, so an
// error here leaves the message untouched.
func (h *handler) encryptInPlace(m milter.Modifier, leadSpace bool, enc *encoder, note string) error {
	entity, size, err := h.entity(leadSpace)
	if err != nil {
		return err
	}
	// Delete the entity headers and our own trace header, highest index
	// first so earlier indices stay valid. Indices count per header name.
	type del struct {
		name  string
		index int
		value string
	}
	var dels []del
	count := map[string]int{}
	hasMIMEVersion := false
	for _, f := range h.headers {
		key := strings.ToLower(f.name)
		count[key]++
		switch {
		case key == "mime-version":
			hasMIMEVersion = true
		case mimeentity.IsEntityField(f.name) || strings.EqualFold(f.name, TraceHeader):
			dels = append(dels, del{f.name, count[key], ""})
		case enc.protect && key == "subject":
			dels = append(dels, del{f.name, count[key], h.hv(leadSpace, openpgp.ObscuredSubject)})
		}
	}
	for i := len(dels) - 1; i >= 0; i-- {
		if err := m.ChangeHeader(dels[i].index, dels[i].name, dels[i].value); err != nil {
			return fmt.Errorf("change header %s: %w", dels[i].name, err)
		}
	}
	if !hasMIMEVersion {
		if err := m.AddHeader("MIME-Version", h.hv(leadSpace, "1.0")); err != nil {
			return err
		}
	}
	for _, f := range enc.fields {
		if err := m.AddHeader(f.Name, h.hv(leadSpace, f.Value)); err != nil {
			return err
		}
	}
	if err := m.AddHeader(TraceHeader, h.hv(leadSpace, enc.trace(note))); err != nil {
		return err
	}

	chunk := maxChunk
	if ds := int(m.MaxDataSize()); ds > 0 && ds < chunk {
		chunk = ds
	}
	// Once the first body replacement packet is sent, Postfix's cleanup
	// accepts nothing but further body replacement packets and the final
	// reply (milter8.c: "body replacement requests can't currently be mixed
	// with other requests"), so no progress notification may be sent from
	// here on; each packet resets the MTA's timeout by itself. The
	// encryption writes straight into the packets, in this goroutine: no
	// pipe and no goroutine per message (a panic reaches the callback's
	// guard, and the message is deferred).
	w := &chunkWriter{m: m, buf: make([]byte, 0, min(int64(chunk), size*3/2+8192))}
	if err := enc.write(w, entity, size); err != nil {
		if w.err != nil {
			return fmt.Errorf("replace body: %w", w.err)
		}
		return fmt.Errorf("encrypt: %w", err)
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("replace body: %w", err)
	}
	return nil
}

// chunkWriter sends what is written to it as body replacement packets of
// cap(buf) bytes, the last one shorter (flush).
type chunkWriter struct {
	m   milter.Modifier
	buf []byte
	err error // the first error sending a packet
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for w.err == nil && n < len(p) {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p[n:])
		w.buf, n = w.buf[:len(w.buf)+k], n+k
		if len(w.buf) == cap(w.buf) {
			w.err = w.flush()
		}
	}
	return n, w.err
}

// flush sends what is buffered, if anything.
func (w *chunkWriter) flush() error {
	if w.err != nil || len(w.buf) == 0 {
		return w.err
	}
	err := w.m.ReplaceBodyRawChunk(w.buf)
	w.buf = w.buf[:0]
	return err
}

// describe renders one recipient's lookups and decision for a log line.
func (h *handler) describe(r *rcpt, _ policy.Outcome, d policy.Decision) string {
	return clip(h.describeAs(r, d.Action.String()), maxDetail)
}

// describeAs renders one recipient's lookups for a log line, with label
// for what happens to it. Rejected records are named up to maxSkipped per
// lookup, then counted.
func (h *handler) describeAs(r *rcpt, label string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s=%s(level=%s", r.addr, label, r.match.Level)
	select {
	case <-r.done:
	default:
		// The lookup goroutine still owns the fields: read none of them.
		b.WriteString(",lookup=unfinished)")
		return b.String()
	}
	if r.err != nil {
		fmt.Fprintf(&b, ",error=%q)", r.err.Error())
		return b.String()
	}
	one := func(prefix string, res dane.Result, usable int, rejected []string) {
		fmt.Fprintf(&b, ",%sdnssec=%s", prefix, res.Status)
		if len(res.EDE) > 0 {
			fmt.Fprintf(&b, ",%sede=%d", prefix, res.EDE[0].Code)
		}
		if res.Status == dane.StatusSecure {
			fmt.Fprintf(&b, ",%susable=%d", prefix, usable)
			for i, rj := range rejected {
				if i == maxSkipped {
					fmt.Fprintf(&b, ",%sskipped_more=%d", prefix, len(rejected)-maxSkipped)
					break
				}
				fmt.Fprintf(&b, ",%sskipped=%q", prefix, clip(rj, 200))
			}
		}
		if (res.Status == dane.StatusIndeterminate || res.Status == dane.StatusBogus) && res.Err != nil {
			fmt.Fprintf(&b, ",%serror=%q", prefix, res.Err.Error())
		}
	}
	var rj []string
	for _, x := range r.rejected {
		rj = append(rj, x.Reason)
	}
	one("", r.result, len(r.usable), rj)
	if r.pgpOn {
		rj = nil
		for _, x := range r.pgpRejected {
			rj = append(rj, x.Reason)
		}
		one("pgp_", r.pgpResult, len(r.pgpUsable), rj)
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

// verdict is one recipient's decision at end of message.
type verdict struct {
	r       *rcpt
	outcome policy.Outcome
	d       policy.Decision // what happens to the recipient
	label   string          // for the log: the action, or local, exempt, already-encrypted
	would   string          // per-entry dry run: the action that would have been taken
}

// evaluate decides for one recipient whose lookups have finished or been
// given up on.
func (h *handler) evaluate(r *rcpt) verdict {
	v := verdict{r: r, outcome: policy.Indeterminate}
	select {
	case <-r.done:
		v.outcome = r.outcome()
	default:
	}
	switch {
	case r.local:
		v.d, v.label = policy.Decision{Action: policy.Plain, Reason: "local recipient"}, "local"
	case r.exempt != "":
		v.d, v.label = policy.Decision{Action: policy.Plain, Reason: "exempt"}, "exempt"
	case r.match.Level == policy.LevelNone:
		v.d, v.label = policy.Decide(policy.LevelNone, v.outcome), "plain"
	default:
		v.d = policy.Decide(r.match.Level, v.outcome)
		v.label = v.d.Action.String()
		if r.match.DryRun && !h.opts.DryRun {
			// Per-entry dry run: say what would happen, then treat the
			// recipient as plaintext and never refuse it.
			v.would = v.d.Action.String()
			v.d, v.label = policy.Decision{Action: policy.Plain, Reason: "dry run"}, "dry-run"
		}
	}
	return v
}

// detail renders one recipient for the log line.
func (h *handler) detail(v verdict) string {
	r := v.r
	switch {
	case r.local:
		return r.addr + "=local"
	case r.exempt != "":
		return fmt.Sprintf("%s=plain(exempt %s)", r.addr, r.exempt)
	case r.match.Level == policy.LevelNone:
		return r.addr + "=plain(policy none)"
	case v.would != "":
		return "dry-run:" + h.describeAs(r, v.would)
	}
	return h.describeAs(r, v.label)
}

// Bounds of the per-message log line, whatever the number of recipients
// and of the records each one's zone publishes.
const (
	maxLoggedRecipients = 50   // recipients described one by one
	maxDetail           = 1024 // octets of one recipient's description
	maxSkipped          = 5    // rejected records named per lookup
	maxLoggedAddrs      = 10   // addresses listed in other log lines
)

// summarize renders the recipients for the log line: the first
// maxLoggedRecipients described, the rest counted by what happens to them
// ("and 9950 more: 9000 encrypt, 950 plain").
func (h *handler) summarize(vs []verdict) string {
	var b strings.Builder
	counts := map[string]int{}
	for i, v := range vs {
		if i < maxLoggedRecipients {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(clip(h.detail(v), maxDetail))
			continue
		}
		counts[v.label]++
	}
	if rest := len(vs) - maxLoggedRecipients; rest > 0 {
		fmt.Fprintf(&b, " and %d more:", rest)
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " %d %s", counts[k], k)
		}
	}
	return b.String()
}

// summarizeAddrs lists at most maxLoggedAddrs addresses and counts the rest.
func summarizeAddrs(addrs []string) string {
	if len(addrs) <= maxLoggedAddrs {
		return strings.Join(addrs, " ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(addrs[:maxLoggedAddrs], " "), len(addrs)-maxLoggedAddrs)
}

// clip cuts s to at most n octets, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func anyEncrypt(vs []verdict) bool {
	for _, v := range vs {
		if v.d.Action == policy.Encrypt {
			return true
		}
	}
	return false
}

// sealed is what a body labelled encrypted proved to be: one complete
// S/MIME envelope or PGP/MIME message, and whom it names.
type sealed struct {
	smime *smime.Envelope
	pgp   *openpgp.Message
}

func (s *sealed) format() string {
	if s.pgp != nil {
		return "pgp-mime"
	}
	return "smime"
}

// missing lists the recipients to be encrypted to whose usable keys (the
// certificates and OpenPGP keys their lookups selected) the existing
// encryption does not include.
func (s *sealed) missing(vs []verdict, now time.Time) []string {
	var out []string
	for _, v := range vs {
		if v.d.Action == policy.Encrypt && !s.includes(v.r, now) {
			out = append(out, v.r.addr)
		}
	}
	return out
}

func (s *sealed) includes(r *rcpt, now time.Time) bool {
	if s.smime != nil {
		for _, k := range r.usable {
			if s.smime.Includes(k.Cert) {
				return true
			}
		}
	}
	if s.pgp != nil {
		for _, k := range r.pgpUsable {
			if s.pgp.Includes(k.Entity, now) {
				return true
			}
		}
	}
	return false
}

// inspectEncrypted reads a body labelled encrypted (ctype is its
// Content-Type) to its end and returns what it proves, or why it proves
// nothing:
//   - application/pkcs7-mime (or x-pkcs7-mime): a base64 body that is one
//     complete CMS EnvelopedData or AuthEnvelopedData (smime.ParseEnvelopeBase64);
//   - multipart/encrypted with protocol application/pgp-encrypted: exactly
//     the RFC 3156 §4 body with one complete encrypted OpenPGP message
//     (openpgp.ParseMIME).
//
// A message with more than one Content-Type field, or whose body was not
// kept whole (past max_message_size), proves nothing.
func (h *handler) inspectEncrypted(ctype string) (*sealed, error) {
	n := 0
	var cte []string
	for _, f := range h.headers {
		switch {
		case strings.EqualFold(f.name, "Content-Type"):
			n++
		case strings.EqualFold(f.name, "Content-Transfer-Encoding"):
			cte = append(cte, strings.ToLower(strings.TrimSpace(f.value)))
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%d Content-Type fields", n)
	}
	if h.body.overflow || h.headersOverflow {
		return nil, errors.New("message larger than max_message_size")
	}
	mt, params, err := mime.ParseMediaType(strings.TrimSpace(mimeentity.CRLF(ctype)))
	if err != nil {
		return nil, fmt.Errorf("Content-Type: %w", err)
	}
	body, err := h.body.Reader()
	if err != nil {
		return nil, err
	}
	switch mt {
	case "multipart/encrypted":
		// RFC 3156 §4; RFC 1847 §2.2 forbids a transfer encoding other
		// than 7bit, 8bit or binary on a multipart.
		if !strings.EqualFold(params["protocol"], "application/pgp-encrypted") {
			return nil, fmt.Errorf("multipart/encrypted with protocol %q", params["protocol"])
		}
		if len(cte) > 1 || (len(cte) == 1 && cte[0] != "7bit" && cte[0] != "8bit") {
			return nil, fmt.Errorf("multipart/encrypted with Content-Transfer-Encoding %v", cte)
		}
		msg, err := openpgp.ParseMIME(body, params["boundary"])
		if err != nil {
			return nil, err
		}
		return &sealed{pgp: msg}, nil
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		// RFC 8551 §3.3 (and §3.1.3 for 7-bit transports): base64.
		if len(cte) != 1 || cte[0] != "base64" {
			return nil, fmt.Errorf("application/pkcs7-mime with Content-Transfer-Encoding %v", cte)
		}
		env, err := smime.ParseEnvelopeBase64(body)
		if err != nil {
			return nil, err
		}
		return &sealed{smime: env}, nil
	}
	return nil, fmt.Errorf("media type %s", mt)
}
