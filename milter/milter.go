// Package milter connects danemilter to the MTA over the milter protocol
// (Sendmail's libmilter protocol, version 6, as spoken by Postfix and
// Sendmail) using github.com/d--j/go-milter.
//
// The layer is thin: it keeps per-message state in a handler made for each
// MTA connection, starts each remote recipient's SMIMEA and OPENPGPKEY
// lookups the moment RCPT TO arrives (so lookups run concurrently with the
// rest of the SMTP dialogue; a recipient whose answer is already known is
// refused alone, at RCPT TO, when its policy says so), spools the body, and at
// end of message asks package policy for a plan, groups the recipients into
// copies (one per encryption format, one in plaintext), re-injects every copy
// but one through a Reinjector, and has package smime or openpgp encrypt the
// copy that stays in the transaction. Every outcome becomes an explicit
// milter response; every failure inside the daemon becomes a temporary
// failure (4.x.x), so the MTA keeps the message and retries rather than
// passing it in clear. Panics in a callback are recovered and answered the
// same way. Package milter/miltertest plays an MTA for tests and the demo.
//
// # What the MTAs accept at end of message
//
// The replies to end of message follow the rules of both MTAs' milter
// clients (Postfix 3.7 src/milter/milter8.c, milter8_event; Sendmail 8.17
// sendmail/milter.c, milter_data and MILTER_CHECK_REPLYCODE), and
// miltertest.StrictDialer enforces them in every test that plays an MTA:
//
//   - Modification requests (header changes, recipient removal, body
//     replacement) only in reply to end of message; at any other stage
//     Postfix logs "unexpected filter response" and applies
//     milter_default_action.
//   - Body replacement packets are contiguous: once the first one is sent,
//     Postfix takes any other packet, a progress notification included, as
//     the end of the body and refuses a further replacement packet ("body
//     replacement requests can't currently be mixed with other requests",
//     451 4.3.5 to the client). So header changes and recipient removals
//     come first, then the body, then the final reply, and progress is sent
//     only before the body starts (each body packet resets the MTA's
//     milter_content_timeout by itself). Sendmail is laxer (it appends
//     every body packet to the replacement file) but needs the SMFIF_CHGBODY
//     action negotiated, or it tempfails the message.
//   - Body packets are at most 65,535 bytes (Sendmail's classic
//     MILTER_CHUNK_SIZE; Postfix takes up to INT_MAX/2).
//   - Data-less replies (continue, accept, reject, tempfail, progress) carry
//     no data; every string of a modification is NUL-terminated.
//   - A reply code is "4xx" or "5xx", a space or "-", and an enhanced status
//     code of the same class; Sendmail also replaces a text with a single
//     '%' by "554 5.7.1 Command rejected".
//   - Nothing is sent after the final reply.
//
// The encrypted copy is stored by the MTA: Postfix's cleanup refuses a queue
// file over message_size_limit ("552 5.3.4 Error: message file too big"), so
// the handler bounds each copy's encrypted size first and refuses a message
// that cannot fit before any copy leaves (Options.MaxEncryptedSize).
package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/address"
	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/reply"
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
	// Reinjector delivers the copies of a split message; nil turns
	// splitting off.
	Reinjector Reinjector
	// RcptWait is how long, in all, the RCPT TO commands of one message may
	// wait for their lookups so that a refusal can hit one recipient alone.
	// It is a budget per message, so that many uncached recipients do not
	// serialize their lookups; what does not finish in time is decided at
	// end of message. Zero decides at RCPT TO only when the answer is
	// already there (the cache).
	RcptWait time.Duration
	// IsLocal reports whether a recipient domain is delivered locally.
	IsLocal            func(domain string) bool
	LowercaseLocalPart bool
	MaxMessageSize     int64
	// MaxEncryptedSize bounds the queue file of an encrypted copy (the
	// MTA's message_size_limit): a message whose encrypted copy could be
	// larger is refused with 552 5.3.4 before any copy leaves. Zero means
	// DefaultMaxEncryptedSize (Postfix's default); negative turns the check
	// off.
	MaxEncryptedSize int64
	MemoryThreshold  int64
	SpoolDir         string
	MessageTimeout   time.Duration
	DryRun           bool
	// Selector turns SMIMEA records into certificates (trust anchors, the
	// certificate directory); nil: records only, system roots.
	Selector *dane.Selector
	// SMIME are the S/MIME settings: Cipher (the zero value is AES-256-CBC),
	// RSAOAEP, UseSKI. CipherFor, when set, overrides the cipher per
	// recipient domain.
	SMIME     smime.Options
	CipherFor func(domain string) (smime.Cipher, bool)
	// OpenPGP turns on OPENPGPKEY lookups and PGP/MIME encryption.
	OpenPGP bool
	// Prefer says which format a recipient with both kinds of key gets;
	// nil means S/MIME.
	Prefer func(addr string) Format
	// ProtectHeaders copies Subject and the other user-facing fields into
	// PGP/MIME-encrypted entities and hides the outer Subject (RFC 9788).
	ProtectHeaders bool
	Now            func() time.Time

	// Limits against a broken or hostile peer on the milter socket (README
	// "Limits and hostile peers"). MaxPacketSize is the largest milter
	// packet read (default 1 MiB, at most 512 MiB); a packet announcing
	// more ends its connection before anything is allocated. MaxConnections
	// is the most connections at once (default 512); more are closed as soon
	// as they are accepted. IdleTimeout bounds the wait for the MTA's next
	// packet (default 1h), PacketTimeout the rest of a packet once its length
	// has arrived (default 30s). MemoryBudget is the memory all in-memory
	// bodies may hold together (default 64 MiB); past it, bodies are
	// spooled to files.
	MaxPacketSize  int64
	MaxConnections int
	IdleTimeout    time.Duration
	PacketTimeout  time.Duration
	MemoryBudget   int64

	budget *memBudget
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
	if o.MaxEncryptedSize == 0 {
		o.MaxEncryptedSize = DefaultMaxEncryptedSize
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
	if o.Selector == nil {
		o.Selector = &dane.Selector{}
	}
	if o.Prefer == nil {
		o.Prefer = func(string) Format { return FormatSMIME }
	}
	if o.MaxPacketSize <= 0 {
		o.MaxPacketSize = 1 << 20
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 512
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = time.Hour
	}
	if o.PacketTimeout <= 0 {
		o.PacketTimeout = 30 * time.Second
	}
	if o.MemoryBudget <= 0 {
		o.MemoryBudget = 64 << 20
	}
}

// NewServer returns a go-milter server whose connections are handled by
// danemilter. Serve it on a listener; Shutdown drains it.
func NewServer(opts Options) (*milter.Server, error) {
	if opts.Resolver == nil || opts.Levels == nil {
		return nil, errors.New("milter: Options.Resolver and Options.Levels are required")
	}
	if opts.MaxPacketSize > 512<<20 {
		return nil, errors.New("milter: Options.MaxPacketSize is over 512 MiB")
	}
	opts.defaults()
	opts.budget = newMemBudget(opts.MemoryBudget)
	return milter.NewServer(
		milter.WithDynamicMilter(func(_ uint32, _ milter.OptAction, protocol milter.OptProtocol, _ milter.DataSize) milter.Milter {
			return &ordered{handler: &handler{opts: &opts}, noReply: protocol & noReplies}
		}),
		milter.WithProtocols(protocols),
		milter.WithNegotiationCallback(negotiate),
		milter.WithActions(milter.OptAddHeader|milter.OptChangeHeader|milter.OptChangeBody|milter.OptRemoveRcpt),
		// {client_port} is "0" for Postfix's local submissions (sendmail,
		// pickup), where cleanup shows the milter rewritten recipients.
		milter.WithMacroRequest(milter.StageMail, []milter.MacroName{milter.MacroQueueId, milter.MacroClientPort}),
		milter.WithMacroRequest(milter.StageRcpt, []milter.MacroName{milter.MacroQueueId}),
		milter.WithMacroRequest(milter.StageEOM, []milter.MacroName{milter.MacroQueueId}),
		// A malformed packet, one over MaxPacketSize or one that stalls ends
		// its connection; the MTA then applies milter_default_action.
		milter.WithMaxPacketSize(uint32(opts.MaxPacketSize)),
		milter.WithMaxConnections(opts.MaxConnections),
		milter.WithReadTimeout(opts.IdleTimeout),
		milter.WithPacketTimeout(opts.PacketTimeout),
		milter.WithWriteTimeout(time.Minute),
	), nil
}

// protocols are the protocol options danemilter needs: no connect, HELO or
// unknown-command events (it needs the envelope, the header and the body,
// not the connection data), and header values as sent. The DATA event is
// asked for although danemilter only answers it "continue": Postfix sends
// the DATA macros (SMFIC_MACRO 'T') even for a milter that declined the
// event, and with nothing to answer the milter's kernel delays its ACK
// (Linux: up to 40 ms) while Postfix's milter socket, which does not set
// TCP_NODELAY, holds the header and body back until that ACK comes (Nagle):
// 40 ms per message over inet sockets (measured, issue 10). A reply carries
// the ACK at once.
const protocols = milter.OptNoConnect | milter.OptNoHelo | milter.OptNoUnknown | milter.OptHeaderLeadingSpace

// noReplies are the events whose reply danemilter does not need (protocol 6
// SMFIP_NR_*, Postfix 2.6+, Sendmail 8.14+): each header field, end of
// headers and each body chunk are always "continue", so the MTA sends them
// in one burst without waiting, and a message costs three round trips
// (RCPT TO, which can refuse a recipient; DATA; end of message) instead of
// one per event. They are asked for only when the MTA offers them. A
// failure at one of them (a panic, a spool error, a command out of order) is
// given at end of message; see ordered.reply. MAIL FROM keeps its reply for
// the reason DATA does: without one, an SMTP client that does not pipeline
// stalls at RCPT TO for the delayed ACK. SMFIP_SKIP is not asked for: it
// lets a milter stop the body early, and danemilter needs all of it.
const noReplies = milter.OptNoHeaderReply | milter.OptNoEOHReply | milter.OptNoBodyReply

// negotiate is go-milter's default negotiation (the MTA's version; the
// actions and protocols danemilter needs, or no connection) plus noReplies
// where the MTA offers them.
func negotiate(mtaVersion, milterVersion uint32, mtaActions, milterActions milter.OptAction, mtaProtocol, milterProtocol milter.OptProtocol, offered milter.DataSize) (uint32, milter.OptAction, milter.OptProtocol, milter.DataSize, error) {
	if mtaVersion < 2 || mtaVersion > milterVersion {
		return 0, 0, 0, 0, fmt.Errorf("milter: negotiate: unsupported protocol version: %d", mtaVersion)
	}
	if milterActions&mtaActions != milterActions {
		return 0, 0, 0, 0, fmt.Errorf("milter: negotiate: MTA does not offer required actions. offered: %q requested: %q", mtaActions, milterActions)
	}
	if milterProtocol&mtaProtocol != milterProtocol {
		return 0, 0, 0, 0, fmt.Errorf("milter: negotiate: MTA does not offer required protocol options. offered: %q requested: %q", mtaProtocol, milterProtocol)
	}
	return mtaVersion, milterActions, milterProtocol | noReplies&mtaProtocol, offered, nil
}

// field is one header field as the MTA sent it.
type field struct{ name, value string }

// rcpt is one recipient and its lookup, started at RCPT TO.
type rcpt struct {
	addr   string
	local  bool
	exempt string // the exemption pattern that applies, or ""
	match  policy.Match

	done chan struct{}
	err  error // address could not be turned into an owner name

	// S/MIME: the SMIMEA lookup.
	name     string
	result   dane.Result
	usable   []dane.Key
	rejected []dane.Rejected

	// OpenPGP: the OPENPGPKEY lookup, when enabled.
	pgpOn       bool
	pgpName     string
	pgpResult   dane.Result
	pgpUsable   []openpgp.Key
	pgpRejected []openpgp.Rejected
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
}

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
	o.reset()
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
		o.reset()
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

func (h *handler) MailFrom(from string, _ string, m milter.Modifier) (resp *milter.Response, err error) {
	defer h.guard("mail", &resp, &err)
	h.reset()
	h.begin()
	h.from = milter.RemoveAngle(strings.TrimSpace(from))
	h.senderExempt = h.opts.Exemptions.Sender(h.from)
	h.view.queueIDMail, h.view.clientPort = m.Get(milter.MacroQueueId), m.Get(milter.MacroClientPort)
	h.localSubmission = h.view.clientPort == "0"
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
	r := &rcpt{addr: addr, done: make(chan struct{})}
	r.local = h.opts.IsLocal(address.Domain(addr))
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
			d := policy.Decide(r.match.Level, r.outcome())
			if (d.Action == policy.Reject || d.Action == policy.TempFail) && !h.opts.DryRun && !r.match.DryRun {
				h.opts.Logger.Info("recipient refused", "queue_id", m.Get(milter.MacroQueueId), "from", h.from, "rcpt", h.describe(r, r.outcome(), d), "status", d.Reply.Enhanced, "reason", d.Reason)
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

func (h *handler) lookup(ctx context.Context, r *rcpt) {
	defer close(r.done)
	defer func() {
		if p := recover(); p != nil {
			h.opts.Logger.Error("panic in lookup", "rcpt", r.addr, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			r.result = dane.Result{Status: dane.StatusIndeterminate, Err: fmt.Errorf("internal error: %v", p)}
			r.usable = nil
		}
	}()
	r.name, r.err = dane.SMIMEAName(r.addr, h.opts.LowercaseLocalPart)
	if r.err != nil {
		return
	}
	// Both record types are looked up at once.
	var wg sync.WaitGroup
	if h.opts.OpenPGP {
		r.pgpOn = true
		r.pgpName, _ = dane.OPENPGPKEYName(r.addr, h.opts.LowercaseLocalPart)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					h.opts.Logger.Error("panic in OPENPGPKEY lookup", "rcpt", r.addr, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
					r.pgpResult = dane.Result{Status: dane.StatusIndeterminate, Err: fmt.Errorf("internal error: %v", p)}
					r.pgpUsable = nil
				}
			}()
			r.pgpResult = h.opts.Resolver.Lookup(ctx, r.pgpName, dns.TypeOPENPGPKEY)
			if r.pgpResult.Status == dane.StatusSecure {
				r.pgpUsable, r.pgpRejected = openpgp.SelectKeys(r.addr, r.pgpResult.Records, h.opts.Now())
			}
		}()
	}
	defer wg.Wait()
	r.result = h.opts.Resolver.Lookup(ctx, r.name, dns.TypeSMIMEA)
	if r.result.Status == dane.StatusSecure {
		r.usable, r.rejected = h.opts.Selector.Select(r.addr, r.result.Records, h.opts.Now())
	}
}

// statusOutcome maps one lookup onto the policy's outcomes.
func statusOutcome(res dane.Result, usable int) policy.Outcome {
	switch res.Status {
	case dane.StatusSecure:
		if usable > 0 {
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

// severity orders the outcomes without a key: a forged answer for either
// record type must not be hidden by a clean "no record" for the other.
var severity = map[policy.Outcome]int{policy.NoKey: 0, policy.Insecure: 1, policy.Indeterminate: 2, policy.Bogus: 3}

// outcome maps a finished lookup (both record types) onto the policy's
// outcomes; see Outcome.
func (r *rcpt) outcome() policy.Outcome {
	if r.err != nil {
		return policy.NoKey
	}
	if !r.pgpOn {
		return Outcome(r.result, len(r.usable), nil, 0)
	}
	return Outcome(r.result, len(r.usable), &r.pgpResult, len(r.pgpUsable))
}

// Outcome is what the policy sees of a recipient's lookups: Usable when
// either the SMIMEA or the OPENPGPKEY lookup (pgp, nil when not made) yields
// a usable key; otherwise the gravest of the two outcomes (bogus before
// indeterminate before insecure before no key), so that a forged answer for
// one record type is never hidden by a clean denial for the other.
func Outcome(smimea dane.Result, smimeaUsable int, pgp *dane.Result, pgpUsable int) policy.Outcome {
	o := statusOutcome(smimea, smimeaUsable)
	if pgp == nil {
		return o
	}
	p := statusOutcome(*pgp, pgpUsable)
	if o == policy.Usable || p == policy.Usable {
		return policy.Usable
	}
	if severity[p] > severity[o] {
		return p
	}
	return o
}

func (h *handler) Header(name, value string, m milter.Modifier) (resp *milter.Response, err error) {
	defer h.guard("header", &resp, &err)
	h.begin()
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
	h.reset()
	return nil
}

func (h *handler) Cleanup(m milter.Modifier) {
	h.reset()
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
