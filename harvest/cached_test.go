package harvest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// countingStore answers Get from a map and counts the calls.
type countingStore struct {
	mu      sync.Mutex
	gets    int
	fail    bool
	entries map[string][]Entry
}

func (s *countingStore) Put(_ context.Context, e Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[NormalizeAddress(e.Address)] = append(s.entries[NormalizeAddress(e.Address)], e)
	return nil
}
func (s *countingStore) Get(_ context.Context, addr string) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if s.fail {
		return nil, errors.New("down")
	}
	return s.entries[NormalizeAddress(addr)], nil
}
func (s *countingStore) List(context.Context, func(Entry) error) error { return nil }
func (s *countingStore) Forget(_ context.Context, addr string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.entries[NormalizeAddress(addr)])
	delete(s.entries, NormalizeAddress(addr))
	return n, nil
}
func (s *countingStore) Expire(context.Context, time.Time) (int, error) { return 0, nil }
func (s *countingStore) Close() error                                   { return nil }

func TestCached(t *testing.T) {
	ctx := context.Background()
	base := &countingStore{entries: map[string][]Entry{}}
	c := NewCached(base, time.Minute, 3)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }

	steps := []struct {
		name  string
		do    func()
		addr  string
		n     int // entries Get must return
		gets  int // calls the store has seen after the Get
		isErr bool
	}{
		{name: "first get asks", addr: "a@x.example", n: 0, gets: 1},
		{name: "a miss is not remembered", addr: "A@X.example", n: 0, gets: 2},
		{name: "another daemon's write is seen at once", do: func() { _ = base.Put(ctx, Entry{Address: "a@x.example"}) }, addr: "a@x.example", n: 1, gets: 3},
		{name: "a hit is remembered", addr: "A@x.example", n: 1, gets: 3},
		{name: "put through the cache drops it", do: func() { _ = c.Put(ctx, Entry{Address: "a@x.example"}) }, addr: "a@x.example", n: 2, gets: 4},
		{name: "remembered again", addr: "a@x.example", n: 2, gets: 4},
		{name: "expired after ttl", do: func() { now = now.Add(time.Minute) }, addr: "a@x.example", n: 2, gets: 5},
		{name: "forget drops it", do: func() { _, _ = c.Forget(ctx, "a@x.example") }, addr: "a@x.example", n: 0, gets: 6},
		{name: "errors are not remembered", do: func() { base.fail = true; now = now.Add(time.Hour) }, addr: "a@x.example", isErr: true, gets: 7},
		{name: "and asked again", addr: "a@x.example", isErr: true, gets: 8},
	}
	for _, st := range steps {
		if st.do != nil {
			st.do()
		}
		got, err := c.Get(ctx, st.addr)
		if (err != nil) != st.isErr || len(got) != st.n || base.gets != st.gets {
			t.Fatalf("%s: %d entries, err %v, store gets %d; want %d entries, error %v, %d gets", st.name, len(got), err, base.gets, st.n, st.isErr, st.gets)
		}
	}

	base.fail = false
	for i := range 10 {
		_ = base.Put(ctx, Entry{Address: fmt.Sprintf("u%d@x.example", i)})
		if _, err := c.Get(ctx, fmt.Sprintf("u%d@x.example", i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) > 3 {
		t.Fatalf("cache holds %d addresses, max 3", len(c.m))
	}
}
