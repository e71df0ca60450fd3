package openpgp

import (
	"bufio"
	"encoding/base64"
)

// armorWriter writes OpenPGP ASCII armor (RFC 9580 §6.2) of type "PGP
// MESSAGE" to a bufio.Writer, with CRLF line ends as mail needs (RFC 5322
// §2.1). Its output is, byte for byte, that of go-crypto's armor.Encode
// with no armor headers and LF turned into CRLF — the tests hold it to
// that — but it writes straight into the buffer, without an allocation per
// line, and computes the CRC-24 with a table: armor.Encode's bitwise CRC
// alone took a third of EncryptMIME's time.
//
// The checksum line is written although RFC 9580 §6.1 says it SHOULD NOT
// be, unless interoperability with readers that need it is a concern: mail
// is read by old agents (RFC 4880 §6 made the checksum part of the armor),
// and every reader accepts it.
type armorWriter struct {
	w       *bufio.Writer
	crc     uint32
	pending [rawPerLine]byte // raw bytes not yet encoded
	n       int              // of pending
	line    [armorLineLen + 2]byte
	table   [256]uint32 // CRC-24 table, built per writer: the package keeps no state
}

const (
	armorLineLen = 64 // RFC 9580 §6.3: at most 76; 64 is what everybody writes
	rawPerLine   = armorLineLen / 4 * 3
	crc24Init    = 0xb704ce  // RFC 9580 §6.1.1
	crc24Poly    = 0x1864cfb // RFC 9580 §6.1.1
)

// newArmorWriter writes the armor header line and the empty line that ends
// the (absent) armor headers (RFC 9580 §6.2).
func newArmorWriter(w *bufio.Writer) (*armorWriter, error) {
	a := &armorWriter{w: w, crc: crc24Init}
	for i := range a.table {
		c := uint32(i) << 16
		for range 8 {
			c <<= 1
			if c&0x1000000 != 0 {
				c ^= crc24Poly
			}
		}
		a.table[i] = c & 0xffffff
	}
	a.line[armorLineLen], a.line[armorLineLen+1] = '\r', '\n'
	_, err := w.WriteString("-----BEGIN PGP MESSAGE-----\r\n\r\n")
	return a, err
}

func (a *armorWriter) Write(p []byte) (int, error) {
	crc := a.crc
	for _, b := range p {
		crc = (crc << 8) ^ a.table[byte(crc>>16)^b]
	}
	a.crc = crc & 0xffffff
	n := len(p)
	if a.n > 0 {
		c := copy(a.pending[a.n:], p)
		a.n += c
		p = p[c:]
		if a.n < rawPerLine {
			return n, nil
		}
		if err := a.writeLine(a.pending[:]); err != nil {
			return 0, err
		}
		a.n = 0
	}
	for len(p) >= rawPerLine {
		if err := a.writeLine(p[:rawPerLine]); err != nil {
			return 0, err
		}
		p = p[rawPerLine:]
	}
	a.n = copy(a.pending[:], p)
	return n, nil
}

func (a *armorWriter) writeLine(raw []byte) error {
	base64.StdEncoding.Encode(a.line[:armorLineLen], raw)
	_, err := a.w.Write(a.line[:])
	return err
}

// Close writes the last line, the checksum line and the armor tail line,
// the latter without a line end (as armor.Encode does).
func (a *armorWriter) Close() error {
	if a.n > 0 {
		m := base64.StdEncoding.EncodedLen(a.n)
		base64.StdEncoding.Encode(a.line[:m], a.pending[:a.n])
		if _, err := a.w.Write(a.line[:m]); err != nil {
			return err
		}
		if _, err := a.w.WriteString("\r\n"); err != nil {
			return err
		}
	}
	sum := [3]byte{byte(a.crc >> 16), byte(a.crc >> 8), byte(a.crc)}
	var enc [4]byte
	base64.StdEncoding.Encode(enc[:], sum[:])
	// RFC 9580 §6.2: "=" and the checksum, then the tail line.
	_, err := a.w.WriteString("=" + string(enc[:]) + "\r\n-----END PGP MESSAGE-----")
	return err
}
