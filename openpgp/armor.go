package openpgp

import (
	"bufio"
	"encoding/base64"

	"github.com/danemilter/danemilter/mimeentity"
)

// armorWriter writes OpenPGP ASCII armor (RFC 9580 §6.2) of type "PGP
// MESSAGE" to a bufio.Writer, with CRLF line ends as mail needs (RFC 5322
// §2.1). Its output is, byte for byte, that of go-crypto's armor.Encode
// with no armor headers and LF turned into CRLF — the tests hold it to
// that — but the base64 lines come from mimeentity's table-driven line
// writer, and the CRC-24 is computed with a table: armor.Encode's bitwise
// CRC alone took a third of EncryptMIME's time.
//
// The checksum line is written although RFC 9580 §6.1 says it SHOULD NOT
// be, unless interoperability with readers that need it is a concern: mail
// is read by old agents (RFC 4880 §6 made the checksum part of the armor),
// and every reader accepts it.
type armorWriter struct {
	w     *bufio.Writer
	crc   uint32
	lines *mimeentity.Base64Writer
}

const (
	armorLineLen = 64        // RFC 9580 §6.3: at most 76; 64 is what everybody writes
	crc24Init    = 0xb704ce  // RFC 9580 §6.1.1
	crc24Poly    = 0x1864cfb // RFC 9580 §6.1.1
)

// crc24Table is the CRC-24 of RFC 9580 §6.1.1 for each octet value: a
// read-only table computed once, not state.
var crc24Table = func() *[256]uint32 {
	var t [256]uint32
	for i := range t {
		c := uint32(i) << 16
		for range 8 {
			c <<= 1
			if c&0x1000000 != 0 {
				c ^= crc24Poly
			}
		}
		t[i] = c & 0xffffff
	}
	return &t
}()

// crc24Update returns crc updated with p (RFC 9580 §6.1.1).
func crc24Update(crc uint32, p []byte) uint32 {
	t := crc24Table
	for _, b := range p {
		crc = (crc << 8) ^ t[byte(crc>>16)^b]
	}
	return crc & 0xffffff
}

// newArmorWriter writes the armor header line and the empty line that ends
// the (absent) armor headers (RFC 9580 §6.2). The line writer gets the
// smallest buffer (8 KiB of input): w buffers too.
func newArmorWriter(w *bufio.Writer) (*armorWriter, error) {
	a := &armorWriter{w: w, crc: crc24Init, lines: mimeentity.NewBase64Writer(w, armorLineLen, 0)}
	_, err := w.WriteString("-----BEGIN PGP MESSAGE-----\r\n\r\n")
	return a, err
}

func (a *armorWriter) Write(p []byte) (int, error) {
	a.crc = crc24Update(a.crc, p)
	return a.lines.Write(p)
}

// Close writes the last line, the checksum line and the armor tail line,
// the latter without a line end (as armor.Encode does).
func (a *armorWriter) Close() error {
	if err := a.lines.Close(); err != nil {
		return err
	}
	sum := [3]byte{byte(a.crc >> 16), byte(a.crc >> 8), byte(a.crc)}
	var enc [4]byte
	base64.StdEncoding.Encode(enc[:], sum[:])
	// RFC 9580 §6.2: "=" and the checksum, then the tail line.
	_, err := a.w.WriteString("=" + string(enc[:]) + "\r\n-----END PGP MESSAGE-----")
	return err
}
