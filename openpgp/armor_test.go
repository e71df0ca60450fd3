package openpgp

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// armorWriter writes what go-crypto's armor.Encode writes, with CRLF line
// ends, for every length around the line and base64 group boundaries and
// for writes of every size; and armor.Decode reads it back.
func TestArmorWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lengths := []int{1, 2, 3, 4, 47, 48, 49, 95, 96, 97, 1000, 4801, 65536}
	for _, n := range lengths {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		var want bytes.Buffer
		w, err := armor.Encode(&want, "PGP MESSAGE", nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
		wantCRLF := strings.ReplaceAll(want.String(), "\n", "\r\n")
		for _, chunk := range []int{1, 7, 48, 1 << 20} {
			var got bytes.Buffer
			bw := bufio.NewWriter(&got)
			a, err := newArmorWriter(bw)
			if err != nil {
				t.Fatal(err)
			}
			for p := data; len(p) > 0; {
				c := min(chunk, len(p))
				if m, err := a.Write(p[:c]); err != nil || m != c {
					t.Fatalf("Write: %d %v", m, err)
				}
				p = p[c:]
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			bw.Flush()
			if got.String() != wantCRLF {
				t.Fatalf("length %d, writes of %d:\n%q\nwant\n%q", n, chunk, got.String(), wantCRLF)
			}
			block, err := armor.Decode(bytes.NewReader(got.Bytes()))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var back bytes.Buffer
			if _, err := back.ReadFrom(block.Body); err != nil || !bytes.Equal(back.Bytes(), data) {
				t.Fatalf("length %d: decoded %d bytes, %v", n, back.Len(), err)
			}
		}
	}
}
