package harvest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// flaky is a Store whose Put fails while down is set.
type flaky struct {
	Store
	down atomic.Bool
}

func (f *flaky) Put(ctx context.Context, e Entry) error {
	if f.down.Load() {
		return errors.New("connection refused")
	}
	return f.Store.Put(ctx, e)
}

func TestHarvesterQueue(t *testing.T) {
	t.Parallel()
	store := &flaky{Store: openBolt(t, Options{})}
	store.down.Store(true)
	h := NewHarvester(store, nil, HarvesterOptions{QueueSize: 3, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	defer h.Close()
	for i := range 5 {
		addr := fmt.Sprintf("q%d@x.example", i)
		h.Harvest(Entry{Address: addr, Certificate: newCert(t, addr)})
	}
	// A refused entry is dropped, not retried for ever.
	h.Harvest(Entry{Address: "nocert@x.example"})
	if p, d := h.Pending(), h.Dropped(); p != 3 || d != 3 {
		t.Errorf("pending %d dropped %d; want 3, 3", p, d)
	}
	store.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for h.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d still pending", h.Pending())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var got []string
	for _, e := range listAll(t, store) {
		got = append(got, e.Address)
	}
	// The oldest went first: q0, q1 and q2 were dropped.
	if fmt.Sprint(got) != "[q3@x.example q4@x.example]" {
		t.Errorf("stored %v", got)
	}
}

// TestHarvesterCloseTwice: Close is idempotent, from one goroutine or
// several at once (a deferred Close after an explicit one must not panic).
func TestHarvesterCloseTwice(t *testing.T) {
	t.Parallel()
	h := NewHarvester(openBolt(t, Options{}), nil, HarvesterOptions{})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	h = NewHarvester(openBolt(t, Options{}), nil, HarvesterOptions{})
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() { errs <- h.Close() }()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Close: %v", err)
		}
	}
}
