package smime

import (
	"bytes"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"testing"
)

// referenceBase64 is RFC 2045 §6.8 written the obvious way: encoding/base64
// of the whole input, cut into lines of 76 characters, each line (the last
// too) ended by CRLF.
func referenceBase64(data []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(data)
	var out bytes.Buffer
	for len(enc) > lineOut {
		out.WriteString(enc[:lineOut] + "\r\n")
		enc = enc[lineOut:]
	}
	if enc != "" {
		out.WriteString(enc + "\r\n")
	}
	return out.Bytes()
}

// TestBase64WriterReference compares the writer with referenceBase64 for
// every size from 0 to 4 KiB and random sizes up to 300 KiB, fed in random
// pieces, with random and all-zero and all-0xff input (every character of
// the alphabet and the table's extremes).
func TestBase64WriterReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 3))
	sizes := make([]int, 0, 4200)
	for n := 0; n <= 4096; n++ {
		sizes = append(sizes, n)
	}
	for range 100 {
		sizes = append(sizes, rng.IntN(300<<10))
	}
	for _, n := range sizes {
		data := make([]byte, n)
		switch n % 3 {
		case 0:
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
		case 1:
			for i := range data {
				data[i] = 0xff
			}
		}
		want := referenceBase64(data)
		var out bytes.Buffer
		bw := newBase64Writer(&out, int64(rng.IntN(n+1))) // any size hint: a small buffer flushes more often
		for rest := data; len(rest) > 0; {
			k := min(1+rng.IntN(3*lineIn), len(rest))
			if rng.IntN(8) == 0 {
				k = min(1+rng.IntN(200<<10), len(rest))
			}
			if m, err := bw.Write(rest[:k]); err != nil || m != k {
				t.Fatalf("n=%d: Write = %d, %v", n, m, err)
			}
			rest = rest[k:]
		}
		if err := bw.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("n=%d: output differs from the reference", n)
		}
	}
}

// TestBase64Alphabet encodes every 12-bit value in every position of a
// line, so each table entry is checked at each load offset.
func TestBase64Alphabet(t *testing.T) {
	var data []byte
	for v := range 4096 {
		// Two 12-bit values make three octets: v and its complement.
		w := 4095 - v
		data = append(data, byte(v>>4), byte(v<<4)|byte(w>>8), byte(w))
	}
	for shift := range lineIn {
		d := data[shift:]
		var out bytes.Buffer
		bw := newBase64Writer(&out, int64(len(data)))
		if _, err := bw.Write(d); err != nil {
			t.Fatal(err)
		}
		if err := bw.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), referenceBase64(d)) {
			t.Fatalf("shift %d: output differs", shift)
		}
	}
}

// TestBase64WriterError: an error of the underlying writer is returned and
// sticks.
func TestBase64WriterError(t *testing.T) {
	bw := newBase64Writer(&failWriter{limit: 100}, 1000)
	data := randomBytes(1000, 1)
	if _, err := bw.Write(data); err != errWrite {
		t.Fatalf("Write: %v, want errWrite", err)
	}
	if _, err := bw.Write(data); err != errWrite {
		t.Fatalf("second Write: %v", err)
	}
	if err := bw.Close(); err != errWrite {
		t.Fatalf("Close: %v", err)
	}
}

// BenchmarkBase64Writer measures the writer alone on 64 KiB writes (what
// the encryption gives it), against encoding/base64 one line per call.
func BenchmarkBase64Writer(b *testing.B) {
	data := randomBytes(chunkSize, 1)
	b.Run("writer", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		bw := newBase64Writer(io.Discard, chunkSize)
		for b.Loop() {
			if _, err := bw.Write(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stdlib-per-line", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		out := make([]byte, 0, outLines*lineCRLF)
		for b.Loop() {
			out = out[:0]
			for p := data; len(p) >= lineIn; p = p[lineIn:] {
				n := len(out)
				out = out[:n+lineOut]
				base64.StdEncoding.Encode(out[n:], p[:lineIn])
				out = append(out, '\r', '\n')
			}
		}
	})
}
