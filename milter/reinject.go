package milter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"strings"
	"sync"
	"time"

	"github.com/danemilter/danemilter/mimeentity"
	"github.com/danemilter/danemilter/openpgp"
)

// Reinjector delivers a copy of a message to some of its recipients outside
// the current milter transaction. It must hand the message to a path that
// does not call danemilter again (a milter-less listener of the MTA), or
// every split would loop.
type Reinjector interface {
	// Reinject submits msg (header and body, CRLF line ends) from the
	// envelope sender from ("" for the null sender) to rcpts. It returns nil
	// only when the MTA has accepted responsibility for every recipient.
	Reinject(ctx context.Context, from string, rcpts []string, msg io.Reader) error
}

// SMTPReinjector submits over SMTP to the MTA's milter-less listener, e.g. a
// Postfix master.cf smtpd service with -o smtpd_milters= (README "Mixed
// recipients").
type SMTPReinjector struct {
	// Addr is host:port of the listener.
	Addr string
	// Helo is the EHLO name.
	Helo string
	// Timeout bounds one re-injection; default 60s.
	Timeout time.Duration
}

// ErrReinject is wrapped by every error of SMTPReinjector.Reinject.
var ErrReinject = errors.New("milter: re-injection failed")

// Reinject implements Reinjector. Any refusal, even of one recipient, is an
// error: the caller then defers the whole message. (A copy accepted for the
// other recipients before that may be delivered again on retry: a duplicate,
// never a loss.)
func (s *SMTPReinjector) Reinject(ctx context.Context, from string, rcpts []string, msg io.Reader) (err error) {
	if len(rcpts) == 0 {
		return nil
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrReinject, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fmt.Errorf("%w: %w", ErrReinject, err)
		}
	}
	// Closing the connection when ctx ends unblocks any read or write.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	host, _, _ := net.SplitHostPort(s.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("%w: greeting: %w", ErrReinject, err)
	}
	helo := s.Helo
	if helo == "" {
		helo = "localhost"
	}
	if err := c.Hello(helo); err != nil {
		return fmt.Errorf("%w: EHLO: %w", ErrReinject, err)
	}
	// net/smtp adds BODY=8BITMIME (and SMTPUTF8) when the server offers
	// them. MAIL FROM:<> for the null sender.
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("%w: MAIL FROM: %w", ErrReinject, err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			return fmt.Errorf("%w: RCPT TO <%s>: %w", ErrReinject, r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("%w: DATA: %w", ErrReinject, err)
	}
	if _, err := io.Copy(w, msg); err != nil {
		// Never end the DATA with "." after a failed copy: the MTA would
		// accept a truncated message. Dropping the connection makes it
		// discard the transaction (RFC 5321 §3.8).
		_ = conn.Close()
		return fmt.Errorf("%w: sending message: %w", ErrReinject, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("%w: end of data: %w", ErrReinject, err)
	}
	// The message is accepted; a failing QUIT does not change that.
	_ = c.Quit()
	return nil
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
		for _, f := range h.outHeaders() {
			if !strings.EqualFold(f.name, TraceHeader) {
				mimeentity.WriteField(&hdr, f.name, asSent(leadSpace, f.value))
			}
		}
		if h.dryRunNote != "" {
			hdr.WriteString(TraceHeader + ": " + h.dryRunNote + "\r\n")
		}
		if h.inboundTrace != "" {
			hdr.WriteString(TraceHeader + ": " + h.inboundTrace + "\r\n")
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
	for _, f := range h.outHeaders() {
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
