package milter

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// TestSpoolMemory: whatever the chunk sizes, the body reads back whole, the
// memory held is at most the body plus one block, all of it taken from the
// budget and given back at Close; past the threshold the body is in its
// file.
func TestSpoolMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name      string
		size      int
		chunk     func() int
		threshold int64
		wantFile  bool
	}{
		{"one 10 KB chunk", 10 << 10, func() int { return 10 << 10 }, 1 << 20, false},
		{"64 KiB chunks, 1 MB", 1_000_000, func() int { return 64 << 10 }, 1 << 20, false},
		{"random chunks", 700_000, func() int { return 1 + rng.IntN(70<<10) }, 1 << 20, false},
		{"one-byte chunks", 100_000, func() int { return 1 }, 1 << 20, false},
		{"empty body", 0, func() int { return 1 }, 1 << 20, false},
		{"over the threshold", 300_000, func() int { return 64 << 10 }, 200_000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			budget := newMemBudget(64 << 20)
			s := &spool{dir: t.TempDir(), threshold: tt.threshold, limit: 1 << 30, budget: budget}
			body := make([]byte, tt.size)
			for i := range body {
				body[i] = byte(rng.Uint32())
			}
			maxHeld := int64(0)
			for rest := body; len(rest) > 0; {
				n := min(tt.chunk(), len(rest))
				if _, err := s.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
				maxHeld = max(maxHeld, s.held)
				if taken := 64<<20 - budget.left.Load(); taken != s.held {
					t.Fatalf("budget: %d taken, %d held", taken, s.held)
				}
			}
			if (s.file != nil) != tt.wantFile {
				t.Fatalf("in a file: %v, want %v", s.file != nil, tt.wantFile)
			}
			if limit := int64(tt.size) + minBlock; maxHeld > limit {
				t.Errorf("held %d bytes for a %d-byte body, want at most %d", maxHeld, tt.size, limit)
			}
			for range 2 { // the body can be read more than once
				r, err := s.Reader()
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(body))
				}
			}
			s.Close()
			if left := budget.left.Load(); left != 64<<20 {
				t.Errorf("budget left %d after Close, want all of it", left)
			}
		})
	}
}

// TestBlocksReaderSmallReads reads a body of several blocks a few bytes at
// a time.
func TestBlocksReaderSmallReads(t *testing.T) {
	blocks := [][]byte{[]byte("abc"), {}, []byte("defgh"), []byte("i")}
	r := &blocksReader{blocks: blocks}
	var got []byte
	buf := make([]byte, 2)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "abcdefghi" {
		t.Fatalf("got %q", got)
	}
}
