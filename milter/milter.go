// Package milter connects danemilter to the MTA over the milter protocol
// (Sendmail's libmilter protocol, version 6, as spoken by Postfix and
// Sendmail) using github.com/d--j/go-milter.
//
// The layer is thin: it keeps per-message state in a message made fresh for
// each MAIL FROM, held by a handler made for each MTA connection; starts
// each remote recipient's evaluation (package recipient: the SMIMEA and
// OPENPGPKEY lookups, key selection and the policy decision, the code
// `danemilter lookup` renders) the moment RCPT TO arrives, so lookups run
// concurrently with the rest of the SMTP dialogue (a recipient whose answer
// is already known is refused alone, at RCPT TO, when its policy says so);
// spools the body; and at end of message asks package policy for a plan,
// whose copies (one per encryption format, one in plaintext) it carries
// out: every copy but one is re-injected through a Reinjector, and package
// smime or openpgp encrypts the copy that stays in the transaction. Every
// outcome becomes an explicit milter response; every failure inside the
// daemon becomes a temporary failure (4.x.x), so the MTA keeps the message
// and retries rather than passing it in clear. Panics in a callback are
// recovered and answered the same way. Package milter/miltertest plays an
// MTA for tests and the demo.
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
// that cannot fit before any copy leaves (Options.MaxEncryptedSize). Every
// SMTP reply comes from package reply.
//
// # Files
//
// One file per role: milter.go (options, server, negotiation), ordered.go
// (the order of milter commands), handler.go (the callbacks), message.go
// (one message's state), recipient.go (a recipient's lookups and verdict),
// plan.go (the plan's execution at end of message), encode.go (encryption
// and body replacement), reinject.go (split delivery), sealed.go (bodies
// that arrive encrypted), size.go (encrypted size bounds), spool.go (the
// body), log.go (the log line), direction.go (inbound or outbound),
// inbound.go (verification and forged Authentication-Results), decrypt.go
// (inbound decryption with the gateway's keys).
//
// # Inbound mail
//
// Each message gets a direction at MAIL FROM (direction.go: {daemon_name},
// SMTP AUTH, local submission, the client address, a default). Direction
// decides only whether inbound verification runs: remote recipients are
// encrypted in both directions, so a message classified wrongly never
// leaves in clear. Every message, whatever its direction, loses the
// Authentication-Results fields that carry our authserv-id (RFC 8601 §5).
// An inbound message is verified by package verify and gets its
// Authentication-Results at the top of the header, and the inbound policy
// (package policy, inbound.go) may refuse or hold it; inbound.go here runs
// that half of end of message, before the outbound plan, so that header
// changes precede the body and one final reply ends the message.
// Decryption (decrypt.go) runs before verification, so that a signature
// inside an encrypted message is verified on the decrypted message.
package milter

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/keydir"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/recipient"
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
	// recipient domain. smime.CipherAuto, globally or for a domain, picks
	// the cipher from the recipients' stored capabilities (Store;
	// ChooseCipher).
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

	// Inbound mail (inbound.go; README "Direction: inbound and outbound",
	// "Inbound policy"). Direction classifies each message at MAIL FROM.
	// Verifier verifies inbound messages; nil turns verification off.
	// Inbound gives each sender's level; nil: report for every sender.
	// AuthservID names this host in Authentication-Results (RFC 8601
	// §2.5); default the host name. RequireHold holds a message that a
	// require sender sent without a pass instead of refusing it (the MTA
	// must offer SMFIF_QUARANTINE, or the message is deferred).
	// MaxVerifySize is the largest message verified (default
	// MaxMessageSize); a larger one is reported "not checked".
	Direction     DirectionRules
	Verifier      Verifier
	Inbound       *policy.InboundTable
	AuthservID    string
	RequireHold   bool
	MaxVerifySize int64

	// Store holds certificates harvested from verified signed mail
	// (package harvest); nil turns harvesting and its use off. Outbound,
	// the stored certificates of a recipient are candidates for its hashed
	// SMIMEA records (a stored certificate no DNSSEC-secure record matches
	// is never used) and their capabilities feed the cipher "auto"; a Get
	// that fails or takes longer than StoreTimeout (default
	// recipient.DefaultStoreTimeout) is "not known". Inbound, every S/MIME
	// signature that passes (valid and DANE-bound to From) is handed to
	// Harvester, which writes it in the background and never delays or
	// fails the message; nil Harvester: NewServer starts one over Store
	// with a queue of DefaultHarvestQueue entries (the oldest dropped,
	// with a log line, when full) that lives as long as the process.
	Store        harvest.Store
	StoreTimeout time.Duration
	Harvester    Harvester

	// Inbound decryption (decrypt.go; README "Inbound decryption"). Keys
	// holds the gateway's private keys (*keydir.Dir); nil turns decryption
	// off. Decrypt names the local recipients whose mail is decrypted at
	// the gateway (nil: none; the others keep end-to-end mail).
	// DecryptReject refuses a message that cannot be decrypted (550 5.7.5)
	// instead of passing it unchanged.
	Keys          keydir.Source
	Decrypt       *DecryptList
	DecryptReject bool

	budget     *memBudget
	recipients *recipient.Config // how a recipient is evaluated, from the fields above
}

// The defaults of Options, which the config package's documented defaults
// are (one place for each number).
const (
	DefaultMaxMessageSize  = 64 << 20
	DefaultMemoryThreshold = 1 << 20
	DefaultMessageTimeout  = 120 * time.Second
	DefaultMaxPacket       = 1 << 20
	DefaultMaxConnections  = 512
	DefaultIdleTimeout     = time.Hour
	DefaultPacketTimeout   = 30 * time.Second
	DefaultMemoryBudget    = 64 << 20
)

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.IsLocal == nil {
		o.IsLocal = func(string) bool { return false }
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxEncryptedSize == 0 {
		o.MaxEncryptedSize = DefaultMaxEncryptedSize
	}
	if o.MemoryThreshold <= 0 {
		o.MemoryThreshold = DefaultMemoryThreshold
	}
	if o.MessageTimeout <= 0 {
		o.MessageTimeout = DefaultMessageTimeout
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
		o.MaxPacketSize = DefaultMaxPacket
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.PacketTimeout <= 0 {
		o.PacketTimeout = DefaultPacketTimeout
	}
	if o.MemoryBudget <= 0 {
		o.MemoryBudget = DefaultMemoryBudget
	}
	if o.Inbound == nil {
		o.Inbound = policy.NewInboundTable(policy.InboundReport)
	}
	if o.AuthservID == "" {
		o.AuthservID = DefaultAuthservID
		if h, err := os.Hostname(); err == nil && h != "" {
			o.AuthservID = h
		}
	}
	if o.MaxVerifySize <= 0 {
		o.MaxVerifySize = o.MaxMessageSize
	}
	o.recipients = &recipient.Config{Logger: o.Logger, Resolver: o.Resolver, Selector: o.Selector, Levels: o.Levels,
		Exemptions: o.Exemptions, IsLocal: o.IsLocal, LowercaseLocalPart: o.LowercaseLocalPart, OpenPGP: o.OpenPGP,
		DryRun: o.DryRun, Now: o.Now, Store: o.Store, StoreTimeout: o.StoreTimeout}
	if o.Store != nil && o.Harvester == nil {
		o.Harvester = harvest.NewHarvester(o.Store, o.Logger, harvest.HarvesterOptions{QueueSize: DefaultHarvestQueue})
	}
}

// Harvester takes harvested entries to store without blocking
// (*harvest.Harvester).
type Harvester interface {
	Harvest(harvest.Entry)
}

// DefaultHarvestQueue is the queue of the Harvester NewServer starts.
const DefaultHarvestQueue = 64

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
		// pickup), where cleanup shows the milter rewritten recipients;
		// it and the others decide the direction (direction.go).
		milter.WithMacroRequest(milter.StageMail, []milter.MacroName{milter.MacroQueueId, milter.MacroClientPort,
			MacroDaemonName, MacroClientAddr, MacroAuthAuthen}),
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
// and the quarantine action (require_action = hold) where the MTA offers
// them.
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
	// Quarantine (require_action = hold) only where offered; without it a
	// hold defers the message (inbound.go).
	return mtaVersion, milterActions | milter.OptQuarantine&mtaActions, milterProtocol | noReplies&mtaProtocol, offered, nil
}
