package wire

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestReadPacketLimited feeds ReadPacketLimited well-formed and malformed
// packets: every malformed one is an error, never a panic.
func TestReadPacketLimited(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300*1024) // grows the buffer several times
	tests := []struct {
		name    string
		in      []byte
		max     uint32
		want    *Message
		wantErr error // nil: any error when want is nil
	}{
		{"empty packet", []byte{0, 0, 0, 0}, 1 << 20, nil, ErrEmptyPacket},
		{"empty packet then more", []byte{0, 0, 0, 0, 0, 0, 0, 1, 'Q'}, 1 << 20, nil, ErrEmptyPacket},
		{"code only", []byte{0, 0, 0, 1, 'Q'}, 1 << 20, &Message{Code: 'Q', Data: []byte{}}, nil},
		{"too large", []byte{0x20, 0, 0, 0}, 1 << 20, nil, ErrPacketTooLarge},
		{"over 512 MiB whatever the limit", []byte{0xff, 0xff, 0xff, 0xff}, 0xffffffff, nil, ErrPacketTooLarge},
		{"exactly the limit", append([]byte{0, 0, 0, 4, 'B'}, "abc"...), 4, &Message{Code: 'B', Data: []byte("abc")}, nil},
		{"one over the limit", append([]byte{0, 0, 0, 5, 'B'}, "abcd"...), 4, nil, ErrPacketTooLarge},
		{"short length", []byte{0, 0}, 1 << 20, nil, nil},
		{"short data", []byte{0, 0, 0, 9, 'B', 'x'}, 1 << 20, nil, nil},
		{"large packet", append([]byte{0, 4, 0xb0, 0x01, 'B'}, big...), 1 << 20, &Message{Code: 'B', Data: big}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := net.Pipe()
			defer c.Close()
			defer s.Close()
			go func() {
				_, _ = c.Write(tt.in)
				_ = c.Close()
			}()
			got, err := ReadPacketLimited(s, time.Second, time.Second, tt.max)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("no error, got %c %q", got.Code, got.Data)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Code != tt.want.Code || !bytes.Equal(got.Data, tt.want.Data) {
				t.Fatalf("got %c (%d bytes), want %c (%d bytes)", got.Code, len(got.Data), tt.want.Code, len(tt.want.Data))
			}
		})
	}
}

// TestReadPacketPacketTimeout: once the length has arrived, the rest of the
// packet must come within packetTimeout, however long the wait for the
// packet itself may be.
func TestReadPacketPacketTimeout(t *testing.T) {
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	go func() {
		_, _ = c.Write([]byte{0, 0, 0, 10, 'B'}) // then nothing
	}()
	start := time.Now()
	_, err := ReadPacketLimited(s, time.Hour, 100*time.Millisecond, 1<<20)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

// TestReadPacketAllocatesAsDataArrives: a peer announcing the largest
// packet and sending nothing costs allocStep, not the announced size.
func TestReadPacketAllocatesAsDataArrives(t *testing.T) {
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	go func() {
		_, _ = c.Write([]byte{0x1f, 0xff, 0xff, 0xff, 'B'})
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ReadPacketLimited(s, time.Second, 200*time.Millisecond, MaxPacketSize)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("no error")
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("allocated %d bytes for a packet whose data never came", d)
	}
}

func TestCutCString(t *testing.T) {
	tests := []struct {
		in   string
		s    string
		rest string
		ok   bool
	}{
		{"", "", "", false},
		{"host", "host", "", false},
		{"host\x00", "host", "", true},
		{"\x00", "", "", true},
		{"<a@b>\x00SIZE=1\x00", "<a@b>", "SIZE=1\x00", true},
	}
	for _, tt := range tests {
		s, rest, ok := CutCString([]byte(tt.in))
		if s != tt.s || string(rest) != tt.rest || ok != tt.ok {
			t.Errorf("CutCString(%q) = %q, %q, %v; want %q, %q, %v", tt.in, s, rest, ok, tt.s, tt.rest, tt.ok)
		}
	}
}
