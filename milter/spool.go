package milter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// spool holds a message body: in memory up to threshold bytes, then in an
// unlinked temporary file, so a 50 MB body costs a file and not 50 MB of heap.
// Bytes past limit are counted but not kept.
type spool struct {
	dir       string
	threshold int64
	limit     int64

	mem      bytes.Buffer
	file     *os.File
	size     int64 // bytes seen
	overflow bool  // size > limit: the content is incomplete
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
	if s.file == nil && int64(s.mem.Len()+len(p)) > s.threshold {
		f, err := os.CreateTemp(s.dir, "danemilter-*.body")
		if err != nil {
			return 0, fmt.Errorf("spool body: %w", err)
		}
		// Unlink at once: nothing is left behind if the daemon dies.
		if err := os.Remove(f.Name()); err != nil {
			_ = f.Close()
			return 0, fmt.Errorf("spool body: %w", err)
		}
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			_ = f.Close()
			return 0, fmt.Errorf("spool body: %w", err)
		}
		s.file = f
		s.mem = bytes.Buffer{}
	}
	if s.file != nil {
		if _, err := s.file.Write(p); err != nil {
			return 0, fmt.Errorf("spool body: %w", err)
		}
		return n, nil
	}
	s.mem.Write(p)
	return n, nil
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
	return bytes.NewReader(s.mem.Bytes()), nil
}

func (s *spool) release() {
	s.mem = bytes.Buffer{}
	if s.file != nil {
		_ = s.file.Close() // already unlinked; nothing to lose
		s.file = nil
	}
}

// Close frees memory and the file.
func (s *spool) Close() { s.release() }
