package openpgp

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/danemilter/danemilter/mimeentity"
)

// Options configure one call of [EncryptMIME]. The zero value encrypts with
// crypto/rand, checks keys at the current time, draws a fresh boundary and
// leaves the header fields alone.
type Options struct {
	// Rand is the source of the session key, the public-key encryption and
	// the boundary; nil means crypto/rand.Reader.
	Rand io.Reader
	// Now is the time at which the recipient keys must be valid; the zero
	// value means time.Now().
	Now time.Time
	// Boundary is the multipart boundary; "" means a fresh one from
	// NewBoundary. Set it (from NewBoundary) when the outer header fields
	// must be known before the body is written. See CheckBoundary.
	Boundary string
	// Protect, when not empty, turns on header protection (RFC 9788): the
	// message's header fields, as the MTA has them, of which EncryptMIME
	// copies the user-facing ones (Subject, From, To, Cc, Date, Message-ID,
	// ...; see the package documentation) into the encrypted entity. The
	// caller must then replace the outer Subject with ObscuredSubject. Nil,
	// the default, encrypts the entity exactly as given.
	Protect []Field
}

// Errors returned by [EncryptMIME], possibly wrapped; test with errors.Is.
var (
	// ErrNoRecipients: the key list is empty.
	ErrNoRecipients = errors.New("openpgp: no recipients")
	// ErrUnusableKey: a recipient key has no valid encryption key at
	// Options.Now, or one of an algorithm or size SelectKeys refuses. It
	// comes wrapped in a *RecipientError.
	ErrUnusableKey = errors.New("openpgp: unusable recipient key")
	// ErrBadBoundary: Options.Boundary fails CheckBoundary.
	ErrBadBoundary = errors.New("openpgp: bad MIME boundary")
	// ErrHeaderTooLong: with header protection, the entity's header section
	// exceeds 64 KiB.
	ErrHeaderTooLong = errors.New("openpgp: entity header section too long")
)

// RecipientError reports a recipient key that cannot be used.
type RecipientError struct {
	Index       int    // position in the keys slice
	Fingerprint string // primary key fingerprint, upper-case hex; "" for a nil key
	Err         error  // wraps ErrUnusableKey
}

func (e *RecipientError) Error() string {
	return fmt.Sprintf("openpgp: recipient %d (%s): %v", e.Index, e.Fingerprint, e.Err)
}

func (e *RecipientError) Unwrap() error { return e.Err }

// maxHeaderBytes bounds the entity header section read for header
// protection.
const maxHeaderBytes = 64 << 10

// Fixed text of the multipart/encrypted body (RFC 3156 §4, RFC 1847 §2.2).
const (
	// preamble is shown by agents that do not understand MIME (RFC 2046
	// §5.1.1); the wording is the one Enigmail and Thunderbird use.
	preamble = "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
	// versionPart is the first body part: RFC 3156 §4 requires
	// application/pgp-encrypted with the body "Version: 1".
	versionPart = "Content-Type: application/pgp-encrypted\r\n" +
		"Content-Description: PGP/MIME version identification\r\n" +
		"\r\n" +
		"Version: 1\r\n"
	// dataPartHeader heads the second body part: RFC 3156 §4 requires
	// application/octet-stream; the name, disposition and description are
	// what mail agents (Thunderbird, Mutt, K-9) write and expect.
	dataPartHeader = "Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n" +
		"Content-Description: OpenPGP encrypted message\r\n" +
		"Content-Disposition: inline; filename=\"encrypted.asc\"\r\n" +
		"\r\n"
)

// EncryptMIME reads a MIME entity from entity — its Content-* header
// fields, an empty line and its body, in canonical CRLF form (RFC 3156 §3)
// — encrypts it to keys, and writes to w the body of the
// multipart/encrypted entity that replaces it (RFC 3156 §4):
//
//	preamble
//	--boundary
//	Content-Type: application/pgp-encrypted          (version part)
//	Version: 1
//	--boundary
//	Content-Type: application/octet-stream           (data part)
//	-----BEGIN PGP MESSAGE----- ... (ASCII armor, RFC 9580 §6)
//	--boundary--
//
// with CRLF line ends. It returns the boundary, for [OuterFields].
//
// The OpenPGP message is an encrypted session key packet per recipient
// and an encrypted data packet holding one binary literal data packet
// (RFC 9580 §10.3): no compression, no signature. The cipher is AES-256
// when every recipient lists it among its preferred algorithms, as GnuPG's
// and go-crypto's keys do, and otherwise AES-128, which RFC 9580 §9.3
// makes mandatory. The data packet is SEIPDv1 with its modification
// detection code (RFC 9580 §5.13.1), which every OpenPGP implementation
// reads; it is SEIPDv2 (AEAD, RFC 9580 §5.13.2) only when every recipient
// key advertises SEIPDv2 support in its features (RFC 9580 §5.2.3.32).
//
// Without Options.Protect the plaintext is exactly the bytes read from
// entity. EncryptMIME streams: its memory use does not depend on the size
// of the entity.
//
// Before writing anything, it checks every key as SelectKeys does for
// encryption (not the user ID) at Options.Now. It returns ErrNoRecipients,
// a *RecipientError wrapping ErrUnusableKey, an error wrapping
// ErrBadBoundary or ErrHeaderTooLong, or a wrapped error from entity, w or
// Options.Rand. On error, what was written to w is incomplete and must be
// discarded.
func EncryptMIME(w io.Writer, entity io.Reader, keys []*pgp.Entity, opts Options) (boundary string, err error) {
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if len(keys) == 0 {
		return "", ErrNoRecipients
	}
	for i, k := range keys {
		if err := checkRecipient(k, now); err != nil {
			fp := ""
			if k != nil && k.PrimaryKey != nil {
				fp = fingerprint(k)
			}
			return "", &RecipientError{Index: i, Fingerprint: fp, Err: err}
		}
	}
	boundary = opts.Boundary
	if boundary == "" {
		if boundary, err = NewBoundary(rnd); err != nil {
			return "", err
		}
	} else if err := CheckBoundary(boundary); err != nil {
		return "", err
	}

	bw := bufio.NewWriterSize(w, 32<<10)
	if _, err := bw.WriteString(preamble + "\r\n--" + boundary + "\r\n" + versionPart +
		"\r\n--" + boundary + "\r\n" + dataPartHeader); err != nil {
		return "", fmt.Errorf("openpgp: write: %w", err)
	}
	aw, err := newArmorWriter(bw)
	if err != nil {
		return "", fmt.Errorf("openpgp: write: %w", err)
	}
	cfg := &packet.Config{
		Rand:                   rnd,
		Time:                   func() time.Time { return now },
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone, // see the package documentation
		// Non-nil allows SEIPDv2; go-crypto uses it only when every
		// recipient's self-signature advertises it.
		AEADConfig: &packet.AEADConfig{DefaultMode: packet.AEADModeOCB},
	}
	pw, err := pgp.Encrypt(aw, keys, nil, &pgp.FileHints{IsBinary: true}, cfg)
	if err != nil {
		return "", fmt.Errorf("openpgp: encrypt: %w", err)
	}
	if len(opts.Protect) > 0 {
		entity, err = protectEntity(pw, entity, opts.Protect)
		if err != nil {
			return "", err
		}
	}
	if err := copyChunks(pw, entity); err != nil {
		return "", err
	}
	if err := pw.Close(); err != nil {
		return "", fmt.Errorf("openpgp: encrypt: %w", err)
	}
	if err := aw.Close(); err != nil {
		return "", fmt.Errorf("openpgp: armor: %w", err)
	}
	// The armor tail line has no line end of its own; the CRLF after it
	// ends it, and the next one belongs to the closing delimiter (RFC 2046
	// §5.1.1).
	if _, err := bw.WriteString("\r\n\r\n--" + boundary + "--\r\n"); err != nil {
		return "", fmt.Errorf("openpgp: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return "", fmt.Errorf("openpgp: write: %w", err)
	}
	return boundary, nil
}

// copyChunks copies r to w in chunks of 64 KiB. Unlike io.Copy it never
// lets a bytes.Reader hand w the whole message in one Write, for which the
// encryption layers would allocate buffers of the message's size.
func copyChunks(w io.Writer, r io.Reader) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return fmt.Errorf("openpgp: encrypt: %w", werr)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("openpgp: read entity: %w", err)
		}
	}
}

// checkRecipient returns nil when e has an encryption key at now of an
// algorithm SelectKeys accepts, and otherwise an error wrapping
// ErrUnusableKey.
func checkRecipient(e *pgp.Entity, now time.Time) error {
	if e == nil || e.PrimaryKey == nil {
		return fmt.Errorf("%w: nil key", ErrUnusableKey)
	}
	ek, ok := e.EncryptionKey(now)
	if !ok {
		sig, _ := e.PrimarySelfSignature()
		if sig == nil {
			return fmt.Errorf("%w: no valid self-signature", ErrUnusableKey)
		}
		return fmt.Errorf("%w: no valid encryption key at %s", ErrUnusableKey, stamp(now))
	}
	if _, reason := checkAlgorithm(ek.PublicKey); reason != "" {
		return fmt.Errorf("%w: %s", ErrUnusableKey, reason)
	}
	return nil
}

// protectEntity writes to w the header section of the entity read from r
// with header protection added (RFC 9788): the user-facing fields of
// protect, an HP-Outer field for each as it stays outside (RFC 9788 §2.2),
// the Subject obscured, and the Content-Type marked with RFC 9788's
// hp="cipher" and protected-headers="v1" (the earlier draft, which
// Thunderbird and Enigmail read). It returns the reader of the rest: the
// body. An entity whose Content-Type already carries either parameter is
// left as it is.
func protectEntity(w io.Writer, r io.Reader, protect []Field) (io.Reader, error) {
	// The fields copied inside, and each as it stays outside.
	var inner, outer []Field
	for _, f := range protect {
		name := protectedName(f.Name)
		if name == "" || !mimeentity.ValidFieldName(f.Name) {
			continue
		}
		v := mimeentity.UnfoldValue(f.Value)
		inner = append(inner, Field{Name: name, Value: v})
		if name == "Subject" {
			v = ObscuredSubject // RFC 9788 hcp_baseline
		}
		outer = append(outer, Field{Name: name, Value: v})
	}
	if len(inner) == 0 {
		// Claiming protection with nothing inside would make readers
		// show an empty header.
		return r, nil
	}
	br := bufio.NewReaderSize(r, 4096)
	var head []byte
	lineStart := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if len(head)+len(chunk) > maxHeaderBytes {
			return nil, fmt.Errorf("%w (at most %d bytes)", ErrHeaderTooLong, maxHeaderBytes)
		}
		head = append(head, chunk...)
		if err == bufio.ErrBufferFull {
			continue // a line longer than the buffer
		}
		if err == io.EOF {
			break // an entity without a body
		}
		if err != nil {
			return nil, fmt.Errorf("openpgp: read entity: %w", err)
		}
		if line := string(head[lineStart:]); line == "\r\n" || line == "\n" {
			break
		}
		lineStart = len(head)
	}
	fields, sep := splitHeader(head)
	ctIndex := -1
	for i, f := range fields {
		if name, _, ok := strings.Cut(f, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "Content-Type") {
			ctIndex = i
			break
		}
	}
	ct := "text/plain; charset=us-ascii" // RFC 2045 §5.2: the default
	if ctIndex >= 0 {
		_, v, _ := strings.Cut(fields[ctIndex], ":")
		ct = mimeentity.UnfoldValue(v)
		if _, params, err := mime.ParseMediaType(ct); err == nil {
			if _, ok := params["hp"]; ok {
				return io.MultiReader(bytes.NewReader(head), br), nil
			}
			if _, ok := params["protected-headers"]; ok {
				return io.MultiReader(bytes.NewReader(head), br), nil
			}
		}
	}
	var out strings.Builder
	for _, f := range inner {
		out.WriteString(mimeentity.FoldField(f.Name, f.Value))
	}
	for _, f := range outer {
		// RFC 9788 §2.2: HP-Outer records each field as it appears
		// outside, so that the reader knows what was hidden.
		out.WriteString(mimeentity.FoldField("HP-Outer", f.Name+": "+f.Value))
	}
	out.WriteString(mimeentity.FoldField("Content-Type", ct+`; protected-headers="v1"; hp="cipher"`))
	for i, f := range fields {
		if i != ctIndex {
			out.WriteString(f)
		}
	}
	out.WriteString(sep)
	if _, err := io.WriteString(w, out.String()); err != nil {
		return nil, fmt.Errorf("openpgp: encrypt: %w", err)
	}
	return br, nil
}

// splitHeader splits a header section into its fields (each with its
// continuation lines and line ends) and the empty line that ends it ("" if
// none). Lines before the first field that start with white space are kept
// as a field of their own.
func splitHeader(head []byte) (fields []string, sep string) {
	s := string(head)
	for len(s) > 0 {
		end := strings.IndexByte(s, '\n') + 1
		if end == 0 {
			end = len(s)
		}
		line := s[:end]
		s = s[end:]
		if line == "\r\n" || line == "\n" {
			sep = line
			break
		}
		if len(fields) > 0 && (line[0] == ' ' || line[0] == '\t') {
			fields[len(fields)-1] += line
			continue
		}
		fields = append(fields, line)
	}
	// A last field without a line end (an entity without a body) gets one,
	// and the header section its terminating empty line.
	if n := len(fields); n > 0 && !strings.HasSuffix(fields[n-1], "\n") {
		fields[n-1] += "\r\n"
	}
	if sep == "" {
		sep = "\r\n"
	}
	return fields, sep
}
