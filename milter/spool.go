package milter

import (
	"bytes"
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
type spool struct {
	dir       string
	threshold int64
	limit     int64
	budget    *memBudget // nil: no shared budget

	mem      []byte // its capacity is taken from budget
	file     *os.File
	size     int64 // bytes seen
	overflow bool  // size > limit: the content is incomplete
}

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
	if s.file == nil && !s.grow(len(p)) {
		f, err := os.CreateTemp(s.dir, "danemilter-*.body")
		if err != nil {
			return 0, fmt.Errorf("spool body: %w", err)
		}
		// Unlink at once: nothing is left behind if the daemon dies.
		if err := os.Remove(f.Name()); err != nil {
			_ = f.Close()
			return 0, fmt.Errorf("spool body: %w", err)
		}
		if _, err := f.Write(s.mem); err != nil {
			_ = f.Close()
			return 0, fmt.Errorf("spool body: %w", err)
		}
		s.file = f
		s.freeMem()
	}
	if s.file != nil {
		if _, err := s.file.Write(p); err != nil {
			return 0, fmt.Errorf("spool body: %w", err)
		}
		return n, nil
	}
	s.mem = append(s.mem, p...)
	return n, nil
}

// grow makes room in memory for n more bytes, within threshold and the
// shared budget; false means the body must go to a file.
func (s *spool) grow(n int) bool {
	need := int64(len(s.mem)) + int64(n)
	if need > s.threshold {
		return false
	}
	if need <= int64(cap(s.mem)) {
		return true
	}
	c := min(max(2*int64(cap(s.mem)), need, 4096), s.threshold)
	if !s.budget.take(c - int64(cap(s.mem))) {
		return false
	}
	m := make([]byte, len(s.mem), c)
	copy(m, s.mem)
	s.mem = m
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
	return bytes.NewReader(s.mem), nil
}

// freeMem drops the in-memory copy and gives its memory back to the budget.
func (s *spool) freeMem() {
	s.budget.give(int64(cap(s.mem)))
	s.mem = nil
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
