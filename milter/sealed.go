package milter

import (
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/openpgp"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/recipient"
	"github.com/danemilter/danemilter/smime"
)

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
		if v.d.Action == policy.Encrypt && !s.includes(&v.ev, now) {
			out = append(out, v.ev.Address)
		}
	}
	return out
}

func (s *sealed) includes(e *recipient.Recipient, now time.Time) bool {
	if s.smime != nil {
		for _, k := range e.SMIMEA.Usable() {
			if s.smime.Includes(k.Cert) {
				return true
			}
		}
	}
	if s.pgp != nil {
		for _, k := range pgpKeys(e) {
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
