package harvest

import (
	"context"
	"sync"
	"time"
)

// Cached remembers what Get returned for an address for a short time, so
// that the outbound path, which asks the store for every recipient whose
// SMIMEA answer has records, does not make a database round trip per
// recipient per message (measured with scripts/bench-store: PostgreSQL on
// the same 2 cores cost 0.78-0.84x the throughput of no store, and
// 175-275 us of daemon CPU per message). Only addresses the store knows
// are remembered: a miss is asked again every time, so a certificate that
// another daemon harvests into a shared database is used by the next
// message (a partner with hashed records and nothing stored is rare; one
// with something stored is the common case). Put and Forget through Cached
// drop the address at once; a change another daemon makes to an address
// already remembered is seen within TTL. Errors are not remembered. Bounded: past Max
// addresses, an arbitrary one is dropped. The entries returned are shared:
// callers must not change them.
type Cached struct {
	Store
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]cachedGet
}

type cachedGet struct {
	entries []Entry
	until   time.Time
}

// Default bounds of NewCached.
const (
	DefaultCacheTTL = time.Minute
	DefaultCacheMax = 10000
)

// NewCached wraps s; ttl and max of zero are DefaultCacheTTL and
// DefaultCacheMax.
func NewCached(s Store, ttl time.Duration, max int) *Cached {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	if max <= 0 {
		max = DefaultCacheMax
	}
	return &Cached{Store: s, ttl: ttl, max: max, now: time.Now, m: map[string]cachedGet{}}
}

// Get returns the remembered entries of addr while they are fresh, and
// otherwise asks the store.
func (c *Cached) Get(ctx context.Context, addr string) ([]Entry, error) {
	key := NormalizeAddress(addr)
	now := c.now()
	c.mu.Lock()
	if g, ok := c.m[key]; ok && now.Before(g.until) {
		c.mu.Unlock()
		return g.entries, nil
	}
	c.mu.Unlock()
	entries, err := c.Store.Get(ctx, addr)
	if err != nil || len(entries) == 0 {
		return entries, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k := range c.m { // an arbitrary one
			delete(c.m, k)
			break
		}
	}
	c.m[key] = cachedGet{entries: entries, until: now.Add(c.ttl)}
	return entries, nil
}

// Put writes e and drops what was remembered of its address.
func (c *Cached) Put(ctx context.Context, e Entry) error {
	err := c.Store.Put(ctx, e)
	c.drop(e.Address)
	return err
}

// Forget forgets addr in the store and here.
func (c *Cached) Forget(ctx context.Context, addr string) (int, error) {
	n, err := c.Store.Forget(ctx, addr)
	c.drop(addr)
	return n, err
}

func (c *Cached) drop(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, NormalizeAddress(addr))
}
