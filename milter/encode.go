package milter

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/recipient"
	"github.com/danemilter/danemilter/smime"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
)

// Format is an encryption format (policy.Format).
type Format = policy.Format

// The formats.
const (
	FormatSMIME   = policy.FormatSMIME   // S/MIME, RFC 8551
	FormatOpenPGP = policy.FormatOpenPGP // PGP/MIME, RFC 3156
)

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
		for _, e := range g.rcpts {
			for _, k := range pgpKeys(e) {
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
			for _, f := range h.outHeaders() {
				opts.Protect = append(opts.Protect, openpgp.Field{Name: f.name, Value: strings.TrimPrefix(mimeentity.CRLF(f.value), " ")})
			}
		}
		return &encoder{format: FormatOpenPGP, cipher: "openpgp", keys: len(keys), fields: openpgp.OuterFields(boundary), protect: h.opts.ProtectHeaders,
			write: func(w io.Writer, r io.Reader, _ int64) error {
				_, err := openpgp.EncryptMIME(w, r, keys, opts)
				return err
			}}, nil
	}
	certs := certificates(g)
	if len(certs) == 0 {
		return nil, errors.New("no certificates")
	}
	opts := h.opts.SMIME
	opts.Cipher, opts.RSAOAEPFor = h.cipherFor(g)
	return &encoder{format: FormatSMIME, cipher: opts.Cipher.String(), keys: len(certs), fields: smime.OuterFieldsFor(opts.Cipher),
		write: func(w io.Writer, r io.Reader, size int64) error {
			return smime.EncryptBase64(w, r, size, certs, opts)
		}}, nil
}

// cipherFor picks the content cipher of an S/MIME copy, and the RSA-OAEP
// choice per recipient certificate (ChooseCipher).
func (h *handler) cipherFor(g group) (smime.Cipher, func(*x509.Certificate) bool) {
	return ChooseCipher(h.opts.SMIME.Cipher, h.opts.SMIME.RSAOAEP, h.opts.CipherFor, g.rcpts)
}

// ChooseCipher picks the content cipher of an S/MIME copy read by rcpts:
// the configured one, unless a recipient's domain has an override (cipherFor,
// may be nil); every recipient must be able to read the copy, so an
// override to CBC (for readers without GCM) wins over GCM.
//
// A recipient whose setting is smime.CipherAuto is read by the agents
// behind its usable certificates, and each announced what it can decrypt in
// the SMIMECapabilities stored with that certificate (recipient.Recipient
// .HarvestedCapabilities; RFC 8551 §2.5.2): when any recipient is auto, the
// copy gets the strongest GCM that every auto reader announced and every
// other recipient's setting allows, else AES-256-CBC (smime.AutoCipher);
// an RSA certificate of an auto recipient gets RSA-OAEP when its
// capabilities announce it (or rsaOAEP is set), the others rsaOAEP. The
// returned function, nil when no recipient is auto, is
// smime.Options.RSAOAEPFor. The daemon encrypts with this choice and
// `danemilter lookup` prints it.
func ChooseCipher(configured smime.Cipher, rsaOAEP bool, cipherFor func(string) (smime.Cipher, bool), rcpts []*recipient.Recipient) (smime.Cipher, func(*x509.Certificate) bool) {
	chosen, set := configured, false
	var readers [][]asn1.ObjectIdentifier
	var explicit []smime.Cipher
	oaep := map[string]bool{} // certificate DER → OAEP, for auto recipients
	auto := false
	for _, r := range rcpts {
		oc, ok := configured, false
		if cipherFor != nil {
			oc, ok = cipherFor(r.Domain)
		}
		if !ok {
			oc = configured
		}
		if oc == smime.CipherAuto {
			auto = true
			for _, k := range r.SMIMEA.Usable() {
				caps, err := harvest.ParseCapabilities(r.HarvestedCapabilities(k.Cert))
				if err != nil {
					caps = nil // malformed: nothing known
				}
				readers = append(readers, caps)
				oaep[string(k.Cert.Raw)] = rsaOAEP || smime.AnnouncesOAEP(caps)
			}
			continue
		}
		explicit = append(explicit, oc)
		if !set || (isGCM(chosen) && !isGCM(oc)) {
			chosen, set = oc, true
		}
	}
	if !auto {
		if chosen == smime.CipherAuto { // no recipients: nothing to read
			chosen = smime.AES256CBC
		}
		return chosen, nil
	}
	c := smime.AutoCipher(readers)
	for _, e := range explicit {
		switch {
		case !isGCM(e):
			c = e // a reader without GCM (first one, as above)
		case c == smime.AES256GCM && e == smime.AES128GCM:
			c = e
		}
		if !isGCM(c) {
			break
		}
	}
	return c, func(cert *x509.Certificate) bool {
		if o, ok := oaep[string(cert.Raw)]; ok {
			return o
		}
		return rsaOAEP
	}
}

func isGCM(c smime.Cipher) bool { return c == smime.AES128GCM || c == smime.AES256GCM }

// certificates collects every usable certificate of the group's
// recipients, without duplicates.
func certificates(g group) []*x509.Certificate {
	var certs []*x509.Certificate
	seen := map[string]bool{}
	for _, e := range g.rcpts {
		if e.Local {
			continue
		}
		for _, k := range e.SMIMEA.Usable() {
			if !seen[string(k.Cert.Raw)] {
				seen[string(k.Cert.Raw)] = true
				certs = append(certs, k.Cert)
			}
		}
	}
	return certs
}

// pgpKeys are e's usable OpenPGP keys.
func pgpKeys(e *recipient.Recipient) []openpgp.Key {
	if e.OPENPGPKEY == nil {
		return nil
	}
	return e.OPENPGPKEY.Usable()
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
