package dane

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// countingResolver answers res for every name and counts the lookups.
type countingResolver struct {
	res   Result
	mu    sync.Mutex
	calls map[string]int
	total atomic.Int32
}

func (r *countingResolver) Lookup(ctx context.Context, name string, qtype uint16) Result {
	r.total.Add(1)
	r.mu.Lock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[name]++
	r.mu.Unlock()
	res := r.res
	res.Name, res.Type = name, qtype
	return res
}

func (r *countingResolver) Calls(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[name]
}

// blockingResolver blocks every lookup until release is closed, then
// answers res (or panics with panicValue).
type blockingResolver struct {
	res        Result
	panicValue any
	started    chan struct{} // one send per lookup
	release    chan struct{}
	calls      atomic.Int32
	ctxErr     atomic.Value // ctx.Err() seen after release, as errBox
}

type errBox struct{ err error }

func newBlockingResolver(res Result) *blockingResolver {
	return &blockingResolver{res: res, started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (r *blockingResolver) Lookup(ctx context.Context, name string, qtype uint16) Result {
	r.calls.Add(1)
	r.started <- struct{}{}
	<-r.release
	r.ctxErr.Store(errBox{ctx.Err()})
	if r.panicValue != nil {
		panic(r.panicValue)
	}
	res := r.res
	res.Name, res.Type = name, qtype
	return res
}

// waitingCtx counts calls of Done: Cache.Lookup calls it once, when the
// caller starts waiting for a lookup in flight.
type waitingCtx struct {
	context.Context
	waiting *atomic.Int32
}

func (c waitingCtx) Done() <-chan struct{} {
	c.waiting.Add(1)
	return c.Context.Done()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheTTL(t *testing.T) {
	type step struct {
		advance   time.Duration // before the lookup
		wantCalls int           // of next, after the lookup
		wantTTL   time.Duration // of the result, -1 to skip
	}
	tests := []struct {
		name  string
		opts  CacheOptions
		res   Result
		steps []step
	}{
		{
			name: "secure within and after TTL",
			res:  Result{Status: StatusSecure, TTL: 300 * time.Second, Records: []dns.RR{smimeaRR("x.example.", 300, testCert)}},
			steps: []step{
				{0, 1, 300 * time.Second},
				{100 * time.Second, 1, 200 * time.Second},
				{199 * time.Second, 1, time.Second},
				{time.Second, 2, 300 * time.Second}, // expired exactly at the TTL
				{time.Second, 2, 299 * time.Second},
			},
		},
		{
			name: "denial for its TTL",
			res:  Result{Status: StatusSecureDenial, TTL: 600 * time.Second, Rcode: dns.RcodeNameError},
			steps: []step{
				{0, 1, 600 * time.Second},
				{599 * time.Second, 1, time.Second},
				{2 * time.Second, 2, 600 * time.Second},
			},
		},
		{
			name: "insecure for its TTL",
			res:  Result{Status: StatusInsecure, TTL: 120 * time.Second},
			steps: []step{
				{0, 1, -1},
				{119 * time.Second, 1, -1},
				{time.Second, 2, -1},
			},
		},
		{
			name: "bogus for FailureTTL",
			opts: CacheOptions{FailureTTL: 10 * time.Second},
			res:  Result{Status: StatusBogus, TTL: time.Hour, Err: ErrBogus},
			steps: []step{
				{0, 1, 10 * time.Second}, // failures never claim more than FailureTTL
				{9 * time.Second, 1, time.Second},
				{time.Second, 2, -1},
			},
		},
		{
			name: "indeterminate for FailureTTL",
			opts: CacheOptions{FailureTTL: 10 * time.Second},
			res:  Result{Status: StatusIndeterminate, Err: ErrServFail},
			steps: []step{
				{0, 1, -1},
				{9 * time.Second, 1, -1},
				{time.Second, 2, -1},
			},
		},
		{
			name: "indeterminate for default FailureTTL",
			res:  Result{Status: StatusIndeterminate, Err: ErrUnreachable},
			steps: []step{
				{0, 1, -1},
				{4 * time.Second, 1, -1},
				{time.Second, 2, -1},
			},
		},
		{
			name: "failure TTL capped by MaxTTL",
			opts: CacheOptions{FailureTTL: time.Minute, MaxTTL: 10 * time.Second},
			res:  Result{Status: StatusBogus, Err: ErrBogus},
			steps: []step{
				{0, 1, -1},
				{9 * time.Second, 1, -1},
				{time.Second, 2, -1},
			},
		},
		{
			name: "MaxTTL",
			opts: CacheOptions{MaxTTL: time.Minute},
			res:  Result{Status: StatusSecure, TTL: 2 * time.Hour},
			steps: []step{
				{0, 1, -1},
				{59 * time.Second, 1, time.Second},
				{time.Second, 2, -1},
			},
		},
		{
			name: "default MaxTTL one hour",
			res:  Result{Status: StatusSecure, TTL: 48 * time.Hour},
			steps: []step{
				{0, 1, -1},
				{59 * time.Minute, 1, time.Minute},
				{time.Minute, 2, -1},
			},
		},
		{
			name: "TTL 0 not cached",
			res:  Result{Status: StatusSecure, TTL: 0},
			steps: []step{
				{0, 1, 0},
				{0, 2, 0},
				{0, 3, 0},
			},
		},
		{
			name: "denial without SOA not cached",
			res:  Result{Status: StatusSecureDenial},
			steps: []step{
				{0, 1, -1},
				{0, 2, -1},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock()
			tc.opts.Now = clock.Now
			next := &countingResolver{res: tc.res}
			c := NewCache(next, tc.opts)
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				res := c.Lookup(t.Context(), "x.example.", dns.TypeSMIMEA)
				if got := next.Calls("x.example."); got != s.wantCalls {
					t.Fatalf("step %d: next called %d times, want %d", i, got, s.wantCalls)
				}
				if res.Status != tc.res.Status || len(res.Records) != len(tc.res.Records) || !errors.Is(res.Err, tc.res.Err) {
					t.Errorf("step %d: got %v, %d records, %v", i, res.Status, len(res.Records), res.Err)
				}
				if res.Name != "x.example." || res.Type != dns.TypeSMIMEA {
					t.Errorf("step %d: result for %s %d", i, res.Name, res.Type)
				}
				if s.wantTTL >= 0 && res.TTL != s.wantTTL {
					t.Errorf("step %d: TTL %v, want %v", i, res.TTL, s.wantTTL)
				}
			}
		})
	}
}

func TestCacheKeyIncludesType(t *testing.T) {
	next := &countingResolver{res: Result{Status: StatusSecure, TTL: time.Minute}}
	c := NewCache(next, CacheOptions{Now: newTestClock().Now})
	for range 2 {
		for _, qt := range []uint16{dns.TypeSMIMEA, dns.TypeOPENPGPKEY} {
			if res := c.Lookup(t.Context(), "x.example.", qt); res.Type != qt {
				t.Errorf("asked type %d, got %d", qt, res.Type)
			}
		}
	}
	if n := next.total.Load(); n != 2 {
		t.Errorf("next called %d times, want 2", n)
	}
	if c.Len() != 2 {
		t.Errorf("Len %d, want 2", c.Len())
	}
}

func TestCacheLRU(t *testing.T) {
	clock := newTestClock()
	next := &countingResolver{res: Result{Status: StatusSecure, TTL: time.Hour}}
	c := NewCache(next, CacheOptions{MaxEntries: 2, Now: clock.Now})
	lookup := func(name string) {
		t.Helper()
		if res := c.Lookup(t.Context(), name, dns.TypeSMIMEA); res.Status != StatusSecure {
			t.Fatalf("%s: %v", name, res.Status)
		}
	}
	lookup("a.")
	lookup("b.")
	lookup("a.") // a is now more recently used than b
	if next.Calls("a.") != 1 || next.Calls("b.") != 1 {
		t.Fatalf("calls a=%d b=%d", next.Calls("a."), next.Calls("b."))
	}
	lookup("c.") // evicts b
	if c.Len() != 2 {
		t.Errorf("Len %d, want 2", c.Len())
	}
	lookup("a.")
	if n := next.Calls("a."); n != 1 {
		t.Errorf("recently used a was evicted (next called %d times)", n)
	}
	lookup("c.")
	if n := next.Calls("c."); n != 1 {
		t.Errorf("c was evicted (next called %d times)", n)
	}
	lookup("b.")
	if n := next.Calls("b."); n != 2 {
		t.Errorf("least recently used b was kept (next called %d times)", n)
	}
	if c.Len() != 2 {
		t.Errorf("Len %d, want 2", c.Len())
	}
}

func TestCacheCoalesce(t *testing.T) {
	const n = 20
	next := newBlockingResolver(Result{Status: StatusSecure, TTL: time.Minute, Records: []dns.RR{smimeaRR("x.example.", 60, testCert)}})
	c := NewCache(next, CacheOptions{})
	var waiting atomic.Int32
	ctx := waitingCtx{t.Context(), &waiting}
	results := make(chan Result, n)
	for range n {
		go func() { results <- c.Lookup(ctx, "x.example.", dns.TypeSMIMEA) }()
	}
	// Release the lookup only when every caller waits for it, so that the
	// cache cannot have answered any of them.
	waitFor(t, "all callers to wait", func() bool { return waiting.Load() == n })
	close(next.release)
	for range n {
		select {
		case res := <-results:
			if res.Status != StatusSecure || len(res.Records) != 1 {
				t.Errorf("got %v with %d records: %v", res.Status, len(res.Records), res.Err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a caller hangs")
		}
	}
	if got := next.calls.Load(); got != 1 {
		t.Errorf("next called %d times, want 1", got)
	}
}

func TestCacheCallerCancelled(t *testing.T) {
	next := newBlockingResolver(Result{Status: StatusSecure, TTL: time.Minute})
	c := NewCache(next, CacheOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan Result)
	go func() { done <- c.Lookup(ctx, "x.example.", dns.TypeSMIMEA) }()
	select {
	case <-next.started:
	case <-time.After(5 * time.Second):
		t.Fatal("next not asked")
	}
	cancel()
	select {
	case res := <-done:
		if res.Status != StatusIndeterminate || !errors.Is(res.Err, context.Canceled) {
			t.Errorf("got %v: %v", res.Status, res.Err)
		}
		if res.Name != "x.example." || res.Rcode != -1 || len(res.Records) != 0 {
			t.Errorf("got %+v", res)
		}
	case <-time.After(time.Second):
		t.Fatal("cancelled caller does not return")
	}

	// The lookup goes on, not cancelled, and its answer is cached.
	close(next.release)
	waitFor(t, "the answer to be cached", func() bool { return c.Len() == 1 })
	if b, _ := next.ctxErr.Load().(errBox); b.err != nil {
		t.Errorf("next saw a cancelled context: %v", b.err)
	}
	res := c.Lookup(t.Context(), "x.example.", dns.TypeSMIMEA)
	if res.Status != StatusSecure {
		t.Errorf("got %v: %v", res.Status, res.Err)
	}
	if got := next.calls.Load(); got != 1 {
		t.Errorf("next called %d times, want 1", got)
	}
}

func TestCachePanic(t *testing.T) {
	const n = 5
	next := newBlockingResolver(Result{})
	next.panicValue = "boom"
	c := NewCache(next, CacheOptions{})
	var waiting atomic.Int32
	ctx := waitingCtx{t.Context(), &waiting}
	results := make(chan Result, n)
	for range n {
		go func() { results <- c.Lookup(ctx, "x.example.", dns.TypeSMIMEA) }()
	}
	waitFor(t, "all callers to wait", func() bool { return waiting.Load() == n })
	close(next.release)
	for range n {
		select {
		case res := <-results:
			if res.Status != StatusIndeterminate || res.Err == nil || len(res.Records) != 0 {
				t.Errorf("got %v: %v", res.Status, res.Err)
			}
			if res.Name != "x.example." || res.Type != dns.TypeSMIMEA {
				t.Errorf("result for %s %d", res.Name, res.Type)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a caller hangs after the resolver panicked")
		}
	}
	// The cache still works afterwards.
	waitFor(t, "the lookup to end", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.inflight) == 0
	})
	next.panicValue = nil
	next.res = Result{Status: StatusSecure, TTL: time.Minute}
	if res := c.Lookup(t.Context(), "x.example.", dns.TypeSMIMEA); res.Status != StatusSecure {
		t.Errorf("after the panic: %v: %v", res.Status, res.Err)
	}
}

func TestCacheConcurrentMixed(t *testing.T) {
	// Many names, many callers, a small cache: for the race detector.
	clock := newTestClock()
	next := &countingResolver{res: Result{Status: StatusSecure, TTL: time.Minute}}
	c := NewCache(next, CacheOptions{MaxEntries: 8, Now: clock.Now})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 200 {
				name := string(rune('a'+(i+j)%20)) + ".example."
				if res := c.Lookup(t.Context(), name, dns.TypeSMIMEA); res.Status != StatusSecure {
					t.Errorf("%s: %v", name, res.Status)
				}
				if j%50 == 0 {
					clock.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 8 {
		t.Errorf("Len %d over MaxEntries 8", c.Len())
	}
}
