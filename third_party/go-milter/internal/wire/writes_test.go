package wire

import (
	"bytes"
	"net"
	"testing"
)

// writeCounter records each Write.
type writeCounter struct {
	net.Conn
	writes [][]byte
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

// TestWritePacketWrites: a small packet is one write, a large one two; the
// bytes are the same.
func TestWritePacketWrites(t *testing.T) {
	for _, tt := range []struct {
		size, writes int
	}{{0, 1}, {10, 1}, {smallPacket, 1}, {smallPacket + 1, 2}, {65535, 2}} {
		w := &writeCounter{}
		data := bytes.Repeat([]byte("x"), tt.size)
		if err := WritePacket(w, &Message{Code: 'b', Data: data}, 0); err != nil {
			t.Fatal(err)
		}
		if len(w.writes) != tt.writes {
			t.Errorf("%d bytes: %d writes, want %d", tt.size, len(w.writes), tt.writes)
		}
		n := tt.size + 1
		want := append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 'b'}, data...)
		if got := bytes.Join(w.writes, nil); !bytes.Equal(got, want) {
			t.Errorf("%d bytes: wrote %d bytes, want %d", tt.size, len(got), len(want))
		}
	}
}
