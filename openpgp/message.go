package openpgp

// Reading an encrypted message without a key: who is it for? A gateway that
// lets a PGP/MIME message pass as "already encrypted" must know that the
// label is true and that the recipient can read it, holding only the
// recipients' public keys. It checks what can be checked without a secret
// key:
//
//   - the body is exactly the two parts of RFC 3156 §4, the version part
//     saying "Version: 1" and the data part one ASCII-armored OpenPGP
//     message (RFC 9580 §6.2) with nothing but blank lines around it, its
//     checksum right when present;
//   - the message parses completely: public-key (and symmetric-key)
//     encrypted session key packets (RFC 9580 §5.1, §5.3), then exactly one
//     encrypted data packet (SEIPD §5.13, SED §5.7, or LibrePGP's OCB
//     packet 20), then nothing; the encrypted data does not read as text;
//   - the PKESKs name keys: a key ID (v3) or fingerprint (v6).
//
// [Message.Includes] then says whether a recipient's encryption key is
// among them; the wildcard key ID 0 (RFC 9580 §5.1.1, an anonymous
// recipient) proves nothing. Text outside the ciphertext is bounded: a
// preamble of 1 KiB, part and armor headers of 1 KiB each, less than the
// Subject field that no body encryption hides. What no check without the
// secret key can exclude is a sender who builds all of this by hand around
// plaintext that merely looks random; such a sender could as well encrypt to
// a key of its own. The checks stop labels, truncations and accidents.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
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

// Errors of [ParseMessage], [ParseArmored] and [ParseMIME], possibly
// wrapped; test with errors.Is.
var (
	// ErrMalformed: the input is not one complete encrypted OpenPGP
	// message (in armor, in an RFC 3156 body) as described above.
	ErrMalformed = errors.New("openpgp: malformed encrypted message")
	// ErrNotCiphertext: the encrypted data of an otherwise well-formed
	// message reads as text, which ciphertext practically never does.
	ErrNotCiphertext = errors.New("openpgp: encrypted data is not ciphertext")
)

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
}

// Limits on what the parsers hold or let pass outside the ciphertext.
const (
	maxESKPacket  = 8 << 10 // one session key packet (ML-KEM-768+X25519 is about 1.2 KiB)
	maxESKPackets = 10000   // session key packets in one message
	maxLine       = 4 << 10 // one line of the MIME body or the armor
	maxPreamble   = 1 << 10 // RFC 2046 §5.1.1 preamble
	maxHeader     = 1 << 10 // one part's header section; the armor headers
)

// Recipient is one public-key encrypted session key packet.
type Recipient struct {
	// KeyID is the key ID (v3 PKESK, or derived from the fingerprint of a
	// v6 PKESK); 0 is the anonymous recipient.
	KeyID uint64
	// Fingerprint is the key's fingerprint, in v6 PKESKs only.
	Fingerprint []byte
	Algorithm   packet.PublicKeyAlgorithm
}

// Message is what the parsers learn of an encrypted message.
type Message struct {
	Recipients  []Recipient
	Passphrases int    // symmetric-key encrypted session key packets
	Data        string // the encrypted data packet: "SEIPDv1", "SEIPDv2", "SED", "OCB"
	DataLength  int64  // octets of the encrypted data packet's body
}

// Includes reports whether a PKESK of the message is for one of e's keys
// valid for encryption at now (the primary key or a subkey flagged for
// encryption, neither expired nor revoked), with that key's algorithm.
// A wildcard key ID matches nothing.
func (m *Message) Includes(e *pgp.Entity, now time.Time) bool {
	if e == nil || e.PrimaryKey == nil {
		return false
	}
	keys := encryptionKeys(e, now)
	for _, r := range m.Recipients {
		if r.KeyID == 0 && len(r.Fingerprint) == 0 {
			continue
		}
		for _, pk := range keys {
			if r.Algorithm != pk.PubKeyAlgo {
				continue
			}
			if len(r.Fingerprint) > 0 {
				if bytes.Equal(r.Fingerprint, pk.Fingerprint) {
					return true
				}
			} else if r.KeyID == pk.KeyId {
				return true
			}
		}
	}
	return false
}

// encryptionKeys are the keys of e that a sender may encrypt to at now.
func encryptionKeys(e *pgp.Entity, now time.Time) []*packet.PublicKey {
	var out []*packet.PublicKey
	// As Entity.EncryptionKey: the primary key and its self-signature
	// must be valid for any of its keys to be.
	sig, id := e.PrimarySelfSignature()
	if sig == nil || e.Revoked(now) || e.PrimaryKey.KeyExpired(sig, now) || sig.SigExpired(now) || (id != nil && id.Revoked(now)) {
		return nil
	}
	if sig.FlagsValid && (sig.FlagEncryptCommunications || sig.FlagEncryptStorage) &&
		e.PrimaryKey.PubKeyAlgo.CanEncrypt() && !e.PrimaryKey.KeyExpired(sig, now) {
		out = append(out, e.PrimaryKey)
	}
	for _, sk := range e.Subkeys {
		if sk.Sig == nil || sk.PublicKey == nil {
			continue
		}
		if sk.Sig.FlagsValid && (sk.Sig.FlagEncryptCommunications || sk.Sig.FlagEncryptStorage) && sk.PublicKey.PubKeyAlgo.CanEncrypt() &&
			!sk.PublicKey.KeyExpired(sk.Sig, now) && !sk.Sig.SigExpired(now) && !sk.Revoked(now) {
			out = append(out, sk.PublicKey)
		}
	}
	return out
}

// ParseMIME reads the body of a multipart/encrypted entity with
// protocol="application/pgp-encrypted" and the given boundary (RFC 3156
// §4, RFC 1847 §2.2) to its end: a preamble of at most 1 KiB, the version
// part (application/pgp-encrypted, "Version: 1"), the data part
// (application/octet-stream) holding one armored message as [ParseArmored]
// reads it, the closing delimiter, and nothing but blank lines after it. It
// streams. It returns ErrMalformed, ErrNotCiphertext, or r's errors.
func ParseMIME(r io.Reader, boundary string) (*Message, error) {
	if boundary == "" || len(boundary) > 70 { // RFC 2046 §5.1.1
		return nil, malformed("boundary of %d characters", len(boundary))
	}
	lr := &lines{r: bufio.NewReaderSize(r, maxLine)}
	dash, closing := "--"+boundary, "--"+boundary+"--"
	isDelim := func(l string) (delim, close bool) {
		l = strings.TrimRight(l, " \t") // RFC 2046 §5.1.1 transport padding
		return l == dash, l == closing
	}
	// Preamble.
	n := 0
	for {
		l, err := lr.next()
		if err != nil {
			return nil, noEOF(err, "no body part")
		}
		if d, c := isDelim(l); d {
			break
		} else if c {
			return nil, malformed("no body part")
		}
		if n += len(l) + 2; n > maxPreamble {
			return nil, malformed("preamble over %d octets", maxPreamble)
		}
	}
	// The version part.
	if err := partHeader(lr, "application/pgp-encrypted"); err != nil {
		return nil, err
	}
	version := false
	for {
		l, err := lr.next()
		if err != nil {
			return nil, noEOF(err, "version part")
		}
		if d, c := isDelim(l); d {
			break
		} else if c {
			return nil, malformed("only one body part")
		}
		switch strings.TrimSpace(l) {
		case "":
		case "Version: 1": // RFC 3156 §4
			if version {
				return nil, malformed("two version lines")
			}
			version = true
		default:
			return nil, malformed("version part holds more than \"Version: 1\"")
		}
	}
	if !version {
		return nil, malformed("version part without \"Version: 1\"")
	}
	// The data part.
	if err := partHeader(lr, "application/octet-stream"); err != nil {
		return nil, err
	}
	part := &partLines{lr: lr, isDelim: isDelim}
	m, err := parseArmoredLines(part)
	if err != nil {
		return nil, err
	}
	if !part.closed {
		return nil, malformed("more than two body parts")
	}
	// Epilogue: blank lines only.
	for {
		l, err := lr.next()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(l) != "" {
			return nil, malformed("text after the closing delimiter")
		}
	}
}

// partHeader reads a body part's header section (RFC 2045, RFC 5322 §2.2
// folding) and checks its media type and that no transfer encoding other
// than 7bit or 8bit applies.
func partHeader(lr *lines, want string) error {
	var fields []string
	n := 0
	for {
		l, err := lr.next()
		if err != nil {
			return noEOF(err, "part header")
		}
		if l == "" {
			break
		}
		if n += len(l) + 2; n > maxHeader {
			return malformed("part header over %d octets", maxHeader)
		}
		if l[0] == ' ' || l[0] == '\t' {
			if len(fields) == 0 {
				return malformed("part header starts with a continuation line")
			}
			fields[len(fields)-1] += l
			continue
		}
		fields = append(fields, l)
	}
	ctype := ""
	for _, f := range fields {
		name, value, ok := strings.Cut(f, ":")
		if !ok {
			return malformed("part header line without a colon")
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-type":
			if ctype != "" {
				return malformed("two Content-Type fields in a part")
			}
			mt, _, err := mime.ParseMediaType(value)
			if err != nil {
				return malformed("part Content-Type: %v", err)
			}
			ctype = mt
		case "content-transfer-encoding":
			if cte := strings.ToLower(strings.TrimSpace(value)); cte != "7bit" && cte != "8bit" {
				return malformed("part Content-Transfer-Encoding %q", cte)
			}
		}
	}
	if ctype != want {
		return malformed("part is %q, not %s", ctype, want)
	}
	return nil
}

// ParseArmored reads one ASCII-armored OpenPGP message (RFC 9580 §6.2) from
// r, to its end: blank lines, "-----BEGIN PGP MESSAGE-----", armor headers
// (at most 1 KiB), an empty line, the base64 data, an optional checksum
// line that must be right (RFC 9580 §6.1), "-----END PGP MESSAGE-----",
// blank lines. The data must be what [ParseMessage] accepts. It streams.
// It returns ErrMalformed, ErrNotCiphertext, or r's errors.
func ParseArmored(r io.Reader) (*Message, error) {
	return parseArmoredLines(&lines{r: bufio.NewReaderSize(r, maxLine)})
}

// ParseMessage reads the binary packets of an encrypted OpenPGP message
// (RFC 9580 §10.3) from r, to its end: one or more encrypted session key
// packets, at least one of them public-key, with Marker packets ignored;
// then exactly one encrypted data packet; nothing after it. Every session
// key packet must parse completely with go-crypto; the encrypted data
// packet is streamed, its header checked and its data tested for text. It
// returns ErrMalformed, ErrNotCiphertext, or r's errors.
func ParseMessage(r io.Reader) (*Message, error) {
	br := bufio.NewReader(r)
	m := &Message{}
	for {
		tag, body, err := readPacket(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if m.Data != "" {
			return nil, malformed("packet %d after the encrypted data", tag)
		}
		switch tag {
		case 1, 3: // PKESK, SKESK
			if len(m.Recipients)+m.Passphrases >= maxESKPackets {
				return nil, malformed("more than %d session key packets", maxESKPackets)
			}
			if err := m.sessionKey(tag, body); err != nil {
				return nil, err
			}
		case 10: // Marker, RFC 9580 §5.8: "PGP", ignored
			b, err := readAllLimit(body, 16)
			if err != nil {
				return nil, err
			}
			if string(b) != "PGP" {
				return nil, malformed("marker packet")
			}
		case 9, 18, 20: // SED, SEIPD, OCB encrypted data
			if len(m.Recipients) == 0 {
				return nil, malformed("encrypted data without a public-key encrypted session key")
			}
			if err := m.encryptedData(tag, body); err != nil {
				return nil, err
			}
		default:
			return nil, malformed("packet type %d in an encrypted message", tag)
		}
	}
	if m.Data == "" {
		return nil, malformed("no encrypted data packet")
	}
	return m, nil
}

// sessionKey parses a PKESK or SKESK with go-crypto and checks that it was
// read to its end.
func (m *Message) sessionKey(tag int, body io.Reader) error {
	b, err := readAllLimit(body, maxESKPacket)
	if err != nil {
		return err
	}
	p, err := readESK(tag, b)
	if err != nil {
		return malformed("session key packet: %v", err)
	}
	// go-crypto skips octets after the fields it reads; a packet that
	// still parses without its last octet had octets to spare.
	if len(b) > 0 {
		if _, err := readESK(tag, b[:len(b)-1]); err == nil {
			return malformed("octets after the session key packet's fields")
		}
	}
	switch p := p.(type) {
	case *packet.EncryptedKey:
		r := Recipient{KeyID: p.KeyId, Algorithm: p.Algo}
		if p.Version == 6 && len(p.KeyFingerprint) > 0 {
			r.Fingerprint = p.KeyFingerprint
		}
		m.Recipients = append(m.Recipients, r)
	case *packet.SymmetricKeyEncrypted:
		m.Passphrases++
	default:
		return malformed("session key packet parsed as %T", p)
	}
	return nil
}

// readESK parses a session key packet body with go-crypto, framed again as
// a new-format packet.
func readESK(tag int, b []byte) (packet.Packet, error) {
	framed := make([]byte, 0, len(b)+6)
	framed = append(framed, 0xc0|byte(tag), 0xff)
	framed = binary.BigEndian.AppendUint32(framed, uint32(len(b)))
	framed = append(framed, b...)
	return packet.Read(bytes.NewReader(framed))
}

// encryptedData checks the header of an encrypted data packet and streams
// its data through the text test.
func (m *Message) encryptedData(tag int, body io.Reader) error {
	var head []byte
	switch tag {
	case 9: // RFC 9580 §5.7: no header; data at least one block and 2 octets
		m.Data = "SED"
	case 18: // RFC 9580 §5.13
		v := make([]byte, 1)
		if _, err := io.ReadFull(body, v); err != nil {
			return noEOF(err, "SEIPD version")
		}
		switch v[0] {
		case 1: // §5.13.1
			m.Data = "SEIPDv1"
		case 2: // §5.13.2: cipher, AEAD mode, chunk size, 32 octets of salt
			m.Data = "SEIPDv2"
			head = make([]byte, 3+32)
		default:
			return malformed("SEIPD version %d", v[0])
		}
	case 20: // LibrePGP (GnuPG 2.3+) OCB encrypted data: version 1, cipher, mode, chunk size, IV
		m.Data = "OCB"
		head = make([]byte, 4)
	}
	if head != nil {
		if _, err := io.ReadFull(body, head); err != nil {
			return noEOF(err, m.Data+" header")
		}
		if tag == 20 && head[0] != 1 {
			return malformed("OCB packet version %d", head[0])
		}
		c, mode, chunk := head[0], head[1], head[2]
		if tag == 20 {
			c, mode, chunk = head[1], head[2], head[3]
		}
		if !packet.CipherFunction(c).IsSupported() {
			return malformed("%s cipher %d", m.Data, c)
		}
		if mode < 1 || mode > 3 || chunk > 16 { // §9.6 EAX, OCB, GCM; §5.13.2 chunk size octet
			return malformed("%s AEAD mode %d, chunk size octet %d", m.Data, mode, chunk)
		}
		if tag == 20 {
			iv := []int{1: 16, 2: 15, 3: 12}[mode]
			if _, err := io.CopyN(io.Discard, body, int64(iv)); err != nil {
				return noEOF(err, "OCB IV")
			}
			head = append(head, make([]byte, iv)...)
		}
	}
	var st mimeentity.ByteStats
	n, err := io.Copy(&st, body)
	if err != nil {
		return noEOF(err, m.Data)
	}
	m.DataLength = int64(len(head)) + n
	if tag == 18 {
		m.DataLength++
	}
	// The smallest data a reader decrypts: SED an 8-octet block and its
	// 2-octet check; SEIPDv1 that, a literal packet and the 22-octet MDC
	// packet; AEAD one tag of 16 octets and the final tag.
	minData := map[string]int64{"SED": 10, "SEIPDv1": 10 + 22, "SEIPDv2": 32, "OCB": 32}[m.Data]
	if n < minData {
		return malformed("%s of %d octets", m.Data, n)
	}
	if !st.Random() {
		return ErrNotCiphertext
	}
	return nil
}

// readPacket reads a packet header (RFC 9580 §4.2) and returns the tag and
// a reader of the body, which the caller must read to its end before the
// next call. It returns io.EOF at the clean end of r.
func readPacket(r *bufio.Reader) (tag int, body io.Reader, err error) {
	b, err := r.ReadByte()
	if err != nil {
		return 0, nil, err // io.EOF: no more packets
	}
	if b&0x80 == 0 {
		return 0, nil, malformed("packet header octet %#02x", b)
	}
	dataPacket := func(t int) bool { return t == 8 || t == 9 || t == 11 || t == 18 || t == 20 }
	if b&0x40 == 0 { // legacy format, §4.2.2
		tag = int(b>>2) & 0x0f
		var n int64
		switch b & 3 {
		case 0:
			n, err = readBE(r, 1)
		case 1:
			n, err = readBE(r, 2)
		case 2:
			n, err = readBE(r, 4)
		case 3: // indeterminate: to the end of the input, where a cut cannot be told
			return 0, nil, malformed("indeterminate length on packet %d", tag)
		}
		if err != nil {
			return 0, nil, err
		}
		return tag, &exactReader{r: r, n: n}, nil
	}
	tag = int(b & 0x3f)
	n, partial, err := readNewLength(r)
	if err != nil {
		return 0, nil, err
	}
	if partial {
		if !dataPacket(tag) {
			return 0, nil, malformed("partial length on packet %d", tag)
		}
		return tag, &partialReader{r: r, chunk: exactReader{r: r, n: n}}, nil
	}
	return tag, &exactReader{r: r, n: n}, nil
}

// readNewLength reads a new-format length (RFC 9580 §4.2.1).
func readNewLength(r *bufio.Reader) (n int64, partial bool, err error) {
	l, err := r.ReadByte()
	if err != nil {
		return 0, false, noEOF(err, "packet length")
	}
	switch {
	case l < 192:
		return int64(l), false, nil
	case l < 224:
		l2, err := r.ReadByte()
		if err != nil {
			return 0, false, noEOF(err, "packet length")
		}
		return (int64(l)-192)<<8 + int64(l2) + 192, false, nil
	case l < 255:
		return 1 << (l & 0x1f), true, nil
	}
	n, err = readBE(r, 4)
	return n, false, err
}

func readBE(r *bufio.Reader, k int) (int64, error) {
	var n int64
	for range k {
		c, err := r.ReadByte()
		if err != nil {
			return 0, noEOF(err, "packet length")
		}
		n = n<<8 | int64(c)
	}
	return n, nil
}

// exactReader reads n octets and reports a shorter input as malformed.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	k, err := e.r.Read(p)
	e.n -= int64(k)
	if err == io.EOF && e.n > 0 {
		err = malformed("truncated packet")
	} else if err == io.EOF {
		err = nil
	}
	return k, err
}

// partialReader reads a body of partial lengths (RFC 9580 §4.2.1.4).
type partialReader struct {
	r     *bufio.Reader
	chunk exactReader
	last  bool
}

func (p *partialReader) Read(b []byte) (int, error) {
	for p.chunk.n == 0 {
		if p.last {
			return 0, io.EOF
		}
		n, partial, err := readNewLength(p.r)
		if err != nil {
			return 0, err
		}
		p.chunk, p.last = exactReader{r: p.r, n: n}, !partial
	}
	return p.chunk.Read(b)
}

func readAllLimit(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, malformed("packet over %d octets", max)
	}
	return b, nil
}

func noEOF(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return malformed("truncated: %s", what)
	}
	return err
}

// lineSource yields lines without their line end; io.EOF at the end.
type lineSource interface{ next() (string, error) }

// lines reads CRLF- or LF-terminated lines of at most maxLine octets.
type lines struct{ r *bufio.Reader }

func (l *lines) next() (string, error) {
	b, err := l.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return "", malformed("line over %d octets", maxLine)
	}
	if err == io.EOF && len(b) > 0 {
		err = nil // a last line without a line end
	}
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// partLines yields the lines of one body part, ending (io.EOF) at the next
// delimiter, and records whether it was the closing one.
type partLines struct {
	lr      *lines
	isDelim func(string) (bool, bool)
	done    bool
	closed  bool
}

func (p *partLines) next() (string, error) {
	if p.done {
		return "", io.EOF
	}
	l, err := p.lr.next()
	if err != nil {
		return "", noEOF(err, "no closing delimiter")
	}
	if d, c := p.isDelim(l); d || c {
		p.done, p.closed = true, c
		return "", io.EOF
	}
	return l, nil
}

// parseArmoredLines reads one armored message from src, to its end.
func parseArmoredLines(src lineSource) (*Message, error) {
	const begin, end = "-----BEGIN PGP MESSAGE-----", "-----END PGP MESSAGE-----"
	for { // blank lines, then the header line
		l, err := src.next()
		if err != nil {
			return nil, noEOF(err, "no armor")
		}
		l = strings.TrimRight(l, " \t")
		if l == begin {
			break
		}
		if strings.TrimSpace(l) != "" {
			return nil, malformed("text before the armor")
		}
	}
	n := 0
	for { // armor headers, RFC 9580 §6.2.2: "Key: Value" lines, then an empty line
		l, err := src.next()
		if err != nil {
			return nil, noEOF(err, "armor headers")
		}
		if strings.TrimSpace(l) == "" {
			break
		}
		if k, _, ok := strings.Cut(l, ": "); !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, malformed("armor header line")
		}
		if n += len(l); n > maxHeader {
			return nil, malformed("armor headers over %d octets", maxHeader)
		}
	}
	ar := &armorReader{src: src, end: end, crc: crc24Init}
	m, err := ParseMessage(ar)
	if err != nil {
		return nil, err
	}
	// ParseMessage read to io.EOF, so the tail line has been seen; the
	// checksum, when present, must match (RFC 9580 §6.1).
	if ar.sum != nil && *ar.sum != ar.crc {
		return nil, malformed("armor checksum %06x, data gives %06x", *ar.sum, ar.crc)
	}
	for { // blank lines to the end
		l, err := src.next()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(l) != "" {
			return nil, malformed("text after the armor")
		}
	}
}

// armorReader decodes the base64 lines of an armor body up to the
// checksum or tail line, computing the CRC-24 of what it yields.
type armorReader struct {
	src    lineSource
	end    string
	buf    []byte // decoded, not yet read
	dec    [maxLine]byte
	carry  string // base64 characters short of a quad
	padded bool   // a quad with "=" has been seen: no more data
	eof    bool
	sum    *uint32
	crc    uint32
}

func (a *armorReader) Read(p []byte) (int, error) {
	for len(a.buf) == 0 {
		if a.eof {
			return 0, io.EOF
		}
		if err := a.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, a.buf)
	a.buf = a.buf[n:]
	return n, nil
}

func (a *armorReader) fill() error {
	l, err := a.src.next()
	if err != nil {
		return noEOF(err, "no armor tail line")
	}
	l = strings.TrimRight(l, " \t")
	switch {
	case l == a.end:
		a.eof = true
		if a.carry != "" {
			return malformed("armor data is not whole base64 quads")
		}
		return nil
	case a.sum == nil && len(l) == 5 && l[0] == '=':
		b, err := base64.StdEncoding.DecodeString(l[1:])
		if err != nil || len(b) != 3 {
			return malformed("armor checksum line")
		}
		s := uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
		a.sum = &s
		// The tail line must come next.
		t, err := a.src.next()
		if err != nil {
			return noEOF(err, "no armor tail line")
		}
		if strings.TrimRight(t, " \t") != a.end {
			return malformed("text after the armor checksum")
		}
		a.eof = true
		if a.carry != "" {
			return malformed("armor data is not whole base64 quads")
		}
		return nil
	case l == "":
		return malformed("empty line in the armor data")
	}
	if a.padded {
		return malformed("armor data after base64 padding")
	}
	q := a.carry + l
	whole := len(q) / 4 * 4
	a.carry = q[whole:]
	n, err := base64.StdEncoding.Decode(a.dec[:], []byte(q[:whole]))
	if err != nil {
		return malformed("armor base64: %v", err)
	}
	if strings.Contains(q[:whole], "=") {
		a.padded = true
		if a.carry != "" {
			return malformed("armor data after base64 padding")
		}
	}
	a.buf = a.dec[:n]
	a.update(a.buf)
	return nil
}

// update adds p to the CRC-24 (RFC 9580 §6.1.1).
func (a *armorReader) update(p []byte) {
	a.crc = crc24Update(a.crc, p)
}
