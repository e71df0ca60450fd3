package milter

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// spool holds a message body: in memory up to threshold bytes, then in an
// unlinked temporary file, so a 50 MB body costs a file and not 50 MB of heap.
// Bytes past limit are counted but not kept. The memory a body holds also
// comes out of budget, which all connections share: once it is spent, bodies
// go to their file from the first byte that does not fit.
//
// In memory the body is a list of blocks, each made for the chunk the MTA
// sent (at least minBlock bytes, so that tiny chunks share a block): memory
// grows with the body and is never copied to grow, and a body of n bytes
// holds at most n + minBlock bytes, all of it taken from budget (a
// contiguous buffer that doubles holds up to 2n, and 3n while it copies).
type spool struct {
	dir       string
	threshold int64
	limit     int64
	budget    *memBudget // nil: no shared budget

	blocks   [][]byte // in memory: the body, in order
	held     int64    // the capacity of blocks, taken from budget
	file     *os.File
	size     int64 // bytes seen
	overflow bool  // size > limit: the content is incomplete
}

// minBlock is the smallest block a spool allocates.
const minBlock = 4096

// memBudget is the memory all in-memory bodies may hold together
// (limits.memory_budget).
type memBudget struct{ left atomic.Int64 }

func newMemBudget(n int64) *memBudget {
	b := &memBudget{}
	b.left.Store(n)
	return b
}

// take reserves n bytes; false when they are not there.
func (b *memBudget) take(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	if b.left.Add(-n) < 0 {
		b.left.Add(n)
		return false
	}
	return true
}

// give returns n bytes.
func (b *memBudget) give(n int64) {
	if b != nil {
		b.left.Add(n)
	}
}

func (s *spool) Write(p []byte) (int, error) {
	n := len(p)
	s.size += int64(n)
	if s.overflow {
		return n, nil
	}
	if s.size > s.limit {
		s.overflow = true
		s.release()
		return n, nil
	}
	if s.file == nil && !s.keep(p) {
		f, err := os.CreateTemp(s.dir, "danemilter-*.body")
		if err != nil {
			return 0, fmt.Errorf("spool body: %w", err)
		}
		// Unlink at once: nothing is left behind if the daemon dies.
		if err := os.Remove(f.Name()); err != nil {
			_ = f.Close()
			return 0, fmt.Errorf("spool body: %w", err)
		}
		for _, b := range s.blocks {
			if _, err := f.Write(b); err != nil {
				_ = f.Close()
				return 0, fmt.Errorf("spool body: %w", err)
			}
		}
		s.file = f
		s.freeMem()
	}
	if s.file != nil {
		if _, err := s.file.Write(p); err != nil {
			return 0, fmt.Errorf("spool body: %w", err)
		}
	}
	return n, nil
}

// keep appends p to the blocks in memory, within threshold and the shared
// budget; false means the body must go to a file.
func (s *spool) keep(p []byte) bool {
	if s.size > s.threshold {
		return false
	}
	if k := len(s.blocks) - 1; k >= 0 && cap(s.blocks[k])-len(s.blocks[k]) >= len(p) {
		s.blocks[k] = append(s.blocks[k], p...)
		return true
	}
	c := max(int64(len(p)), minBlock)
	if !s.budget.take(c) {
		return false
	}
	s.held += c
	s.blocks = append(s.blocks, append(make([]byte, 0, c), p...))
	return true
}

// Size is the number of body bytes written.
func (s *spool) Size() int64 { return s.size }

var errOverflow = errors.New("message larger than max_message_size")

// Reader returns a reader of the whole body from its start.
func (s *spool) Reader() (io.Reader, error) {
	if s.overflow {
		return nil, errOverflow
	}
	if s.file != nil {
		if _, err := s.file.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("spool body: %w", err)
		}
		return io.LimitReader(s.file, s.size), nil
	}
	return &blocksReader{blocks: s.blocks}, nil
}

// blocksReader reads a body held in blocks.
type blocksReader struct {
	blocks [][]byte
	i, off int // the next byte: blocks[i][off]
}

func (r *blocksReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && r.i < len(r.blocks) {
		c := copy(p[n:], r.blocks[r.i][r.off:])
		n += c
		if r.off += c; r.off == len(r.blocks[r.i]) {
			r.i, r.off = r.i+1, 0
		}
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// freeMem drops the in-memory copy and gives its memory back to the budget.
func (s *spool) freeMem() {
	s.budget.give(s.held)
	s.blocks, s.held = nil, 0
}

func (s *spool) release() {
	s.freeMem()
	if s.file != nil {
		_ = s.file.Close() // already unlinked; nothing to lose
		s.file = nil
	}
}

// Close frees memory and the file.
func (s *spool) Close() { s.release() }
