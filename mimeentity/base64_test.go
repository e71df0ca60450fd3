package mimeentity

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// randomBytes returns n reproducible pseudo-random octets.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

var errWrite = errors.New("write failed")

// failWriter accepts limit octets, then fails.
type failWriter struct{ limit int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.limit {
		n := f.limit
		f.limit = 0
		return n, errWrite
	}
	f.limit -= len(p)
	return len(p), nil
}

// referenceBase64 is RFC 2045 §6.8 written the obvious way: encoding/base64
// of the whole input, cut into lines of lineLen characters, each line (the
// last too) ended by CRLF.
func referenceBase64(data []byte, lineLen int) []byte {
	enc := base64.StdEncoding.EncodeToString(data)
	var out bytes.Buffer
	for len(enc) > lineLen {
		out.WriteString(enc[:lineLen] + "\r\n")
		enc = enc[lineLen:]
	}
	if enc != "" {
		out.WriteString(enc + "\r\n")
	}
	return out.Bytes()
}

// TestBase64WriterReference compares the writer with referenceBase64 for
// every size from 0 to 4 KiB and random sizes up to 300 KiB, fed in random
// pieces, with random and all-zero and all-0xff input (every character of
// the alphabet and the table's extremes), at the MIME line length and at
// the OpenPGP armor's.
func TestBase64WriterReference(t *testing.T) {
	for _, lineLen := range []int{MaxLineLen, 64} {
		in := lineLen / 4 * 3
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
			want := referenceBase64(data, lineLen)
			var out bytes.Buffer
			bw := NewBase64Writer(&out, lineLen, int64(rng.IntN(n+1))) // any size hint: a small buffer flushes more often
			for rest := data; len(rest) > 0; {
				k := min(1+rng.IntN(3*in), len(rest))
				if rng.IntN(8) == 0 {
					k = min(1+rng.IntN(200<<10), len(rest))
				}
				if m, err := bw.Write(rest[:k]); err != nil || m != k {
					t.Fatalf("line %d, n=%d: Write = %d, %v", lineLen, n, m, err)
				}
				rest = rest[k:]
			}
			if err := bw.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("line %d, n=%d: output differs from the reference", lineLen, n)
			}
		}
	}
}

// TestBase64Writer feeds the writer in many split patterns, at sizes
// around the lines and the 64 KiB chunks smime writes, and compares with
// encoding/base64 cut into 76-character CRLF lines.
func TestBase64Writer(t *testing.T) {
	for _, n := range []int{0, 1, 56, 57, 58, 113, 114, 115, 1000, 64<<10 + 8<<10 + 1, 3*64<<10 + 7} {
		data := randomBytes(n, byte(n))
		enc := base64.StdEncoding.EncodeToString(data)
		var want strings.Builder
		for len(enc) > 76 {
			want.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		if enc != "" {
			want.WriteString(enc + "\r\n")
		}
		for _, split := range []int{1, 3, 56, 57, 58, 4096, 64<<10 + 1, n + 1} {
			var out bytes.Buffer
			bw := NewBase64Writer(&out, 0, int64(len(data)))
			for rest := data; len(rest) > 0; {
				k := min(split, len(rest))
				if m, err := bw.Write(rest[:k]); err != nil || m != k {
					t.Fatalf("Write = %d, %v", m, err)
				}
				rest = rest[k:]
			}
			if err := bw.Close(); err != nil {
				t.Fatal(err)
			}
			if out.String() != want.String() {
				t.Fatalf("n=%d split=%d: output differs", n, split)
			}
		}
	}
}

// TestBase64Alphabet encodes every 12-bit value in every position of a
// line, so each table entry is checked at each load offset, for every line
// length the writer accepts.
func TestBase64Alphabet(t *testing.T) {
	var data []byte
	for v := range 4096 {
		// Two 12-bit values make three octets: v and its complement.
		w := 4095 - v
		data = append(data, byte(v>>4), byte(v<<4)|byte(w>>8), byte(w))
	}
	for lineLen := 4; lineLen <= MaxLineLen; lineLen += 4 {
		for shift := range lineLen / 4 * 3 {
			d := data[shift:]
			var out bytes.Buffer
			bw := NewBase64Writer(&out, lineLen, int64(len(data)))
			if _, err := bw.Write(d); err != nil {
				t.Fatal(err)
			}
			if err := bw.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), referenceBase64(d, lineLen)) {
				t.Fatalf("line %d, shift %d: output differs", lineLen, shift)
			}
		}
	}
}

// TestBase64WriterLineLen: the line length argument is the MIME maximum at
// 0 and beyond it, rounded down to a multiple of 4 and at least 4.
func TestBase64WriterLineLen(t *testing.T) {
	data := randomBytes(1000, 3)
	for _, tt := range []struct{ arg, want int }{
		{0, 76}, {-1, 76}, {76, 76}, {77, 76}, {1000, 76}, {64, 64}, {65, 64}, {67, 64}, {3, 4}, {1, 4}, {4, 4},
	} {
		var out bytes.Buffer
		bw := NewBase64Writer(&out, tt.arg, 0)
		bw.Write(data)
		bw.Close()
		if !bytes.Equal(out.Bytes(), referenceBase64(data, tt.want)) {
			t.Errorf("NewBase64Writer(lineLen %d): lines are not %d long", tt.arg, tt.want)
		}
	}
}

// TestBase64WriterError: an error of the underlying writer is returned and
// sticks.
func TestBase64WriterError(t *testing.T) {
	bw := NewBase64Writer(&failWriter{limit: 100}, 0, 1000)
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

func TestBase64Reader(t *testing.T) {
	data := randomBytes(1000, 2)
	enc := string(referenceBase64(data, MaxLineLen))
	for _, tt := range []struct {
		name, in string
		want     []byte
		corrupt  bool
	}{
		{"CRLF lines", enc, data, false},
		{"LF lines", strings.ReplaceAll(enc, "\r\n", "\n"), data, false},
		{"spaces and tabs", strings.ReplaceAll(enc, "\r\n", " \t\r\n\t "), data, false},
		{"empty", "", nil, false},
		{"only white space", " \t\r\n", nil, false},
		{"not base64", "ab*d", nil, true},
		{"padding inside", "YQ=a", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := io.ReadAll(NewBase64Reader(iotest.OneByteReader(strings.NewReader(tt.in))))
			var ce base64.CorruptInputError
			if tt.corrupt {
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v, want a CorruptInputError", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d octets, %v", len(got), err)
			}
		})
	}
}

// BenchmarkBase64Writer measures the writer alone on 64 KiB writes (what
// the encryption gives it), against encoding/base64 one line per call, at
// the MIME and the armor line length.
func BenchmarkBase64Writer(b *testing.B) {
	data := randomBytes(64<<10, 1)
	for _, lineLen := range []int{76, 64} {
		name := map[int]string{76: "mime", 64: "armor"}[lineLen]
		b.Run("writer-"+name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			bw := NewBase64Writer(io.Discard, lineLen, int64(len(data)))
			for b.Loop() {
				if _, err := bw.Write(data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("stdlib-per-line-"+name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			in := lineLen / 4 * 3
			out := make([]byte, 0, (len(data)/in+1)*(lineLen+2))
			for b.Loop() {
				out = out[:0]
				for p := data; len(p) >= in; p = p[in:] {
					n := len(out)
					out = out[:n+lineLen]
					base64.StdEncoding.Encode(out[n:], p[:in])
					out = append(out, '\r', '\n')
				}
			}
		})
	}
}
