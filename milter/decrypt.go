package milter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"strings"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/address"
	"github.com/danemilter/danemilter/keydir"
	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/reply"
	"github.com/danemilter/danemilter/smime"
)

// Inbound decryption (issue 15; README "Inbound decryption").
//
// An inbound message whose every recipient is local and chosen for
// decryption at the gateway (Options.Decrypt), whose top-level entity is
// labelled encrypted (application/pkcs7-mime enveloped-data or
// authEnveloped-data, RFC 8551 §3.2.2; multipart/encrypted PGP/MIME, RFC
// 3156 §4), and that is encrypted to a key the gateway holds for one of
// them (Options.Keys) is decrypted before verification: the inner entity's
// Content-* fields replace the outer ones, its body replaces the body, the
// other outer fields stay, and DecryptedHeader says so. Verification then
// runs on the decrypted message, so a signature inside is reported. One
// content-encryption key serves every recipient: any held key the envelope
// names decrypts the message once.
//
// Mail encrypted to no held key passes unchanged. A failure to decrypt
// (a wrong key, a tampered GCM tag or MDC, a malformed envelope) passes the
// message unchanged with a log line or refuses it (Options.DecryptReject);
// it is never delivered half-decrypted: nothing is sent to the MTA before
// the whole plaintext is held. The plaintext lives in a spool (memory
// within the budget, else an unlinked file) and never reaches the log.

// DecryptedHeader is the trace field of a decrypted message: the format
// and the cipher, never which key. An incoming copy, a forged claim, is
// removed from every message.
const DecryptedHeader = "X-Danemilter-Decrypted"

// DecryptList says which local recipients get their mail decrypted at the
// gateway: addresses ("user@example.org"), domains ("example.org") and
// ".parent" patterns (every domain below parent).
type DecryptList struct {
	addrs   map[string]bool
	domains []string
}

// ErrDecryptPattern is wrapped by NewDecryptList's errors.
var ErrDecryptPattern = errors.New("milter: invalid decrypt pattern")

// NewDecryptList checks and normalizes the patterns. It returns an error
// wrapping ErrDecryptPattern for one that is neither an address nor a
// domain pattern.
func NewDecryptList(patterns []string) (*DecryptList, error) {
	l := &DecryptList{addrs: map[string]bool{}}
	for _, p := range patterns {
		if local, domain, ok := address.Cut(p); ok {
			d, err := address.ParseDomain(domain)
			if local == "" || err != nil || strings.ContainsAny(p, " <>") {
				return nil, fmt.Errorf("%w: %q: want user@domain, domain or .parent", ErrDecryptPattern, p)
			}
			l.addrs[strings.ToLower(local)+"@"+d] = true
			continue
		}
		d, err := address.ParseDomainPattern(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: want user@domain, domain or .parent", ErrDecryptPattern, p)
		}
		l.domains = append(l.domains, d)
	}
	return l, nil
}

// Domains returns the domain patterns and the domains of the addresses.
func (l *DecryptList) Domains() []string {
	out := append([]string(nil), l.domains...)
	for a := range l.addrs {
		_, d, _ := address.Cut(a)
		out = append(out, d)
	}
	return out
}

// Contains reports whether mail to addr is decrypted at the gateway.
// Local parts compare without regard to case.
func (l *DecryptList) Contains(addr string) bool {
	if l == nil {
		return false
	}
	local, domain, ok := address.Cut(addr)
	if !ok {
		return false
	}
	domain = address.NormalizeDomain(domain)
	if l.addrs[strings.ToLower(local)+"@"+domain] {
		return true
	}
	for _, p := range l.domains {
		if address.MatchDomain(p, domain) {
			return true
		}
	}
	return false
}

// decryptFailed is the reply to a message that could not be decrypted
// when on_failure is reject: RFC 3463 X.7.5 "cryptographic failure", and
// permanent, since the same ciphertext fails the same way tomorrow.
func decryptFailed() reply.Reply {
	return reply.Reply{Code: reply.CodeMailboxUnav, Enhanced: "5.7.5", Text: "message could not be decrypted"}
}

// decrypted is a message decrypted in place of the received one: the
// header fields as received (for the MTA's indices) and the trace.
type decrypted struct {
	orig   []field
	format string
	cipher string
	size   int64
}

func (d *decrypted) trace() string {
	if d.cipher == "" {
		return d.format
	}
	return d.format + "; cipher=" + d.cipher
}

// decryptFailure is why a message was not decrypted, and the reply when
// on_failure is reject (or always, for a temporary failure).
type decryptFailure struct {
	reason string
	err    error
	reply  reply.Reply
}

// decryptStep decrypts the message when it is one to decrypt (see above),
// replacing h.headers and h.body with the decrypted message. It sends
// nothing to the MTA. It returns the decryption, nil when the message
// stays as it is, or a final response.
func (h *handler) decryptStep(log *slog.Logger, leadSpace bool) (*decrypted, *milter.Response, error) {
	if h.opts.Keys == nil || h.direction != Inbound || len(h.rcpts) == 0 {
		return nil, nil, nil
	}
	ctype := h.headerValue("Content-Type")
	if !mimeentity.IsEncrypted(ctype) {
		return nil, nil, nil
	}
	addrs := make([]string, len(h.rcpts))
	for i, r := range h.rcpts {
		// Every recipient local and chosen: a copy for anyone else keeps
		// the ciphertext (end-to-end mail stays end to end).
		if !r.pre.Local || !h.opts.Decrypt.Contains(r.addr) {
			log.Debug("encrypted message not decrypted: a recipient keeps end-to-end mail", "from", h.from, "rcpt", r.addr)
			return nil, nil, nil
		}
		addrs[i] = r.addr
	}
	d, fail := h.decrypt(log, leadSpace, ctype, addrs)
	if fail == nil {
		return d, nil, nil
	}
	attrs := []any{"direction", h.direction.String(), "from", h.from, "rcpt", summarizeAddrs(addrs), "reason", fail.reason}
	if fail.err != nil {
		attrs = append(attrs, "err", fail.err)
	}
	switch {
	case fail.reply.Temporary():
		log.Error("decryption", append([]any{"action", "tempfail", "status", fail.reply.Enhanced}, attrs...)...)
		resp, err := respond(fail.reply)
		return nil, resp, err
	case h.opts.DecryptReject && !h.opts.DryRun:
		log.Warn("decryption", append([]any{"action", "reject", "status", fail.reply.Enhanced}, attrs...)...)
		resp, err := respond(fail.reply)
		return nil, resp, err
	}
	log.Warn("decryption", append([]any{"action", "pass", "status", "undecrypted"}, attrs...)...)
	return nil, nil, nil
}

// decrypt does decryptStep's work once the message is one to decrypt. A
// nil failure and a nil decryption mean "not for a key we hold".
func (h *handler) decrypt(log *slog.Logger, leadSpace bool, ctype string, addrs []string) (*decrypted, *decryptFailure) {
	permanent := func(reason string, err error) *decryptFailure {
		return &decryptFailure{reason: reason, err: err, reply: decryptFailed()}
	}
	if h.body.overflow || h.headersOverflow || h.headerBytes+h.body.Size() > h.opts.MaxMessageSize {
		return nil, &decryptFailure{reason: "message larger than max_message_size", reply: reply.TooBig()}
	}
	seal, err := h.inspectEncrypted(ctype)
	if err != nil {
		return nil, permanent("not one complete encrypted message", err)
	}
	d := &decrypted{orig: h.headers}
	now := h.opts.Now()
	var smimeKey *keydir.SMIMEKey
	var pgpKeys pgp.EntityList
	for _, a := range addrs {
		if seal.smime != nil && smimeKey == nil {
			for _, k := range h.opts.Keys.SMIME(a) {
				if k.Cert != nil && k.Key != nil && seal.smime.Includes(k.Cert) {
					smimeKey = &k
					break
				}
			}
		}
		if seal.pgp != nil {
			for _, e := range h.opts.Keys.OpenPGP(a) {
				if seal.pgp.Includes(e, now) {
					pgpKeys = append(pgpKeys, e)
				}
			}
		}
	}
	if smimeKey == nil && len(pgpKeys) == 0 {
		log.Info("decryption", "action", "pass", "from", h.from, "rcpt", summarizeAddrs(addrs), "format", seal.format(),
			"reason", "not encrypted to a key the gateway holds")
		return nil, nil
	}
	if h.opts.DryRun {
		log.Info("decryption", "action", "pass", "dry_run", true, "would", "decrypt", "from", h.from, "format", seal.format())
		return nil, nil
	}
	// The body and the plaintext (never longer than the ciphertext for
	// CMS; bounded by max_message_size for OpenPGP) in memory at once.
	size := h.body.Size()
	charge := 2*size + 4096
	if !h.opts.budget.take(charge) {
		return nil, &decryptFailure{reason: "memory budget exhausted", reply: reply.TempFailure()}
	}
	defer h.opts.budget.give(charge)
	var plain []byte
	if smimeKey != nil {
		d.format, d.cipher = "smime", smime.ContentEncryptionName(seal.smime.ContentEncryption)
		entity, _, err := h.entity(leadSpace)
		if err != nil {
			return nil, &decryptFailure{reason: "cannot read the spooled body", err: err, reply: reply.TempFailure()}
		}
		plain, err = smime.DecryptMIME(entity, smimeKey.Key, smimeKey.Cert)
		if err != nil {
			return nil, permanent("S/MIME decryption failed", err)
		}
	} else {
		d.format = "pgp-mime"
		_, params, _ := mime.ParseMediaType(strings.TrimSpace(mimeentity.CRLF(ctype))) // inspectEncrypted parsed it
		body, err := h.body.Reader()
		if err != nil {
			return nil, &decryptFailure{reason: "cannot read the spooled body", err: err, reply: reply.TempFailure()}
		}
		plain, err = openpgp.DecryptMIME(body, params["boundary"], pgpKeys, h.opts.MaxMessageSize)
		if err != nil {
			if errors.Is(err, openpgp.ErrTooLarge) {
				return nil, &decryptFailure{reason: "decrypted message larger than max_message_size", err: err, reply: reply.TooBig()}
			}
			return nil, permanent("PGP/MIME decryption failed", err)
		}
	}
	defer clear(plain) // the plaintext is copied to the spool; drop it now
	inner, body, err := splitEntity(plain)
	if err != nil {
		return nil, permanent("the decrypted content is not a MIME entity", err)
	}
	// The new header: the outer fields but Content-* and a forged trace,
	// then the inner Content-* fields, in the form the MTA sends them.
	var hdr []field
	var hb int64
	for _, f := range h.headers {
		if mimeentity.IsEntityField(f.name) || strings.EqualFold(f.name, DecryptedHeader) {
			continue
		}
		hdr = append(hdr, f)
		hb += int64(len(f.name) + len(f.value) + 4)
	}
	for _, f := range inner {
		v := f.value
		if !leadSpace {
			v = strings.TrimPrefix(v, " ")
		}
		hdr = append(hdr, field{f.name, v})
		hb += int64(len(f.name) + len(v) + 4)
	}
	sp := &spool{dir: h.opts.SpoolDir, threshold: h.opts.MemoryThreshold, limit: h.opts.MaxMessageSize, budget: h.opts.budget}
	if _, err := sp.Write(body); err != nil {
		sp.Close()
		return nil, &decryptFailure{reason: "cannot spool the decrypted body", err: err, reply: reply.TempFailure()}
	}
	if sp.overflow || hb+sp.Size() > h.opts.MaxMessageSize {
		sp.Close()
		return nil, &decryptFailure{reason: "decrypted message larger than max_message_size", reply: reply.TooBig()}
	}
	h.body.Close()
	h.body, h.headers, h.headerBytes = sp, hdr, hb
	d.size = sp.Size()
	return d, nil
}

// splitEntity cuts a MIME entity into its header fields (name, and the
// value as it follows the colon with line breaks made CRLF) and its body,
// which is returned as it is. Only Content-* fields are kept (RFC 2045 §9:
// other fields in a body part's header may be ignored).
func splitEntity(b []byte) ([]field, []byte, error) {
	end := entityHeaderEnd(b)
	if end < 0 {
		return nil, nil, errors.New("no empty line after the header")
	}
	var fields []field
	lines := strings.SplitAfter(string(b[:end]), "\n")
	for _, l := range lines {
		t := strings.TrimRight(l, "\r\n")
		if t == "" {
			continue
		}
		if t[0] == ' ' || t[0] == '\t' { // RFC 5322 §2.2.3 folding
			if len(fields) == 0 {
				return nil, nil, errors.New("continuation line first")
			}
			fields[len(fields)-1].value += "\r\n" + t
			continue
		}
		name, value, ok := strings.Cut(t, ":")
		if !ok || !mimeentity.ValidFieldName(name) {
			return nil, nil, errors.New("a header line that is not a field")
		}
		fields = append(fields, field{name, value})
	}
	out := fields[:0]
	for _, f := range fields {
		if mimeentity.IsEntityField(f.name) {
			out = append(out, f)
		}
	}
	return out, b[end:], nil
}

// entityHeaderEnd returns the offset just past the empty line that ends
// the header section at the start of b (CRLF or bare LF), -1 if none.
func entityHeaderEnd(b []byte) int {
	switch {
	case bytes.HasPrefix(b, []byte("\r\n")):
		return 2
	case bytes.HasPrefix(b, []byte("\n")):
		return 1
	}
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case bytes.HasPrefix(b[i:], []byte("\r\n")):
			return i + 2
		case bytes.HasPrefix(b[i:], []byte("\n")):
			return i + 1
		}
	}
	return -1
}

// removeForgedDecrypted removes every received DecryptedHeader field,
// highest index first.
func (h *handler) removeForgedDecrypted(m milter.Modifier) error {
	for i := h.decryptedFields; i > 0; i-- {
		if err := m.ChangeHeader(i, DecryptedHeader, ""); err != nil {
			return err
		}
	}
	return nil
}

// replaceDecrypted sends the decrypted message to the MTA: the outer
// Content-* fields out, the inner ones and the trace in, then the body.
// Header changes come first: once the body starts nothing else may be sent
// (milter.go). It returns the final response.
func (h *handler) replaceDecrypted(m milter.Modifier, log *slog.Logger, leadSpace bool, d *decrypted) (*milter.Response, error) {
	fail := func(what string, err error) (*milter.Response, error) {
		log.Error("decryption", "action", "tempfail", "from", h.from, "reason", what, "err", err)
		return tempFail()
	}
	count := map[string]int{}
	type del struct {
		name  string
		index int
	}
	var dels []del
	hasMIMEVersion := false
	for _, f := range d.orig {
		key := strings.ToLower(f.name)
		count[key]++
		if key == "mime-version" {
			hasMIMEVersion = true
		}
		if mimeentity.IsEntityField(f.name) {
			dels = append(dels, del{f.name, count[key]})
		}
	}
	for i := len(dels) - 1; i >= 0; i-- {
		if err := m.ChangeHeader(dels[i].index, dels[i].name, ""); err != nil {
			return fail("cannot remove the outer Content-* fields", err)
		}
	}
	if !hasMIMEVersion {
		if err := m.AddHeader("MIME-Version", h.hv(leadSpace, "1.0")); err != nil {
			return fail("cannot add MIME-Version", err)
		}
	}
	for _, f := range h.headers {
		if mimeentity.IsEntityField(f.name) {
			if err := m.AddHeader(f.name, h.hv(leadSpace, strings.TrimPrefix(f.value, " "))); err != nil {
				return fail("cannot add the inner Content-* fields", err)
			}
		}
	}
	if err := m.AddHeader(DecryptedHeader, h.hv(leadSpace, d.trace())); err != nil {
		return fail("cannot add the trace header", err)
	}
	body, err := h.body.Reader()
	if err != nil {
		return fail("cannot read the decrypted body", err)
	}
	chunk := maxChunk
	if ds := int(m.MaxDataSize()); ds > 0 && ds < chunk {
		chunk = ds
	}
	w := &chunkWriter{m: m, buf: make([]byte, 0, min(int64(chunk), d.size+1))}
	if _, err := io.Copy(w, body); err != nil {
		return fail("cannot replace the body", err)
	}
	if err := w.flush(); err != nil {
		return fail("cannot replace the body", err)
	}
	attrs := []any{"action", "decrypted", "direction", h.direction.String(), "from", h.from, "format", d.format}
	if d.cipher != "" { // OpenPGP: the session key's cipher is not reported
		attrs = append(attrs, "cipher", d.cipher)
	}
	log.Info("decryption", append(attrs, "size", d.size, "duration", time.Since(h.start).Round(time.Millisecond))...)
	return milter.RespAccept, nil
}
