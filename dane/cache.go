package dane

import (
	"container/list"
	"context"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// CacheOptions configure NewCache. Zero values are the defaults.
type CacheOptions struct {
	// MaxEntries bounds the number of cached results; the least recently
	// used is evicted first. Default 10000.
	MaxEntries int
	// MaxTTL caps the TTL of any cached result. Default 1h.
	MaxTTL time.Duration
	// FailureTTL is how long bogus and indeterminate results are kept, so
	// that a failing name does not hammer the resolver. Default 5s.
	FailureTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Cache is a Resolver that remembers results of another Resolver for their
// TTL (denials by the SOA minimum, RFC 2308 §5), bounded in size, and merges
// concurrent lookups of the same name and type into one query. Make it with
// NewCache; it is safe for concurrent use.
type Cache struct {
	next Resolver
	opts CacheOptions

	mu       sync.Mutex
	lru      *list.List // of *cacheEntry, most recently used first
	entries  map[cacheKey]*list.Element
	inflight map[cacheKey]*call
}

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	key     cacheKey
	res     Result
	expires time.Time
}

type call struct {
	done chan struct{}
	res  Result
}

// NewCache returns a Cache in front of next.
func NewCache(next Resolver, opts CacheOptions) *Cache {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10000
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = time.Hour
	}
	if opts.FailureTTL <= 0 {
		opts.FailureTTL = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cache{next: next, opts: opts, lru: list.New(), entries: map[cacheKey]*list.Element{}, inflight: map[cacheKey]*call{}}
}

// Len returns the number of cached results, expired ones included.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Lookup answers from the cache when it holds a live result, joins a lookup
// of the same name already in flight, or asks the next Resolver. The query
// itself is not cancelled when ctx ends (others may wait for it; the next
// Resolver bounds it with its own timeouts), but Lookup returns at once with
// StatusIndeterminate and ctx's error.
func (c *Cache) Lookup(ctx context.Context, name string, qtype uint16) Result {
	k := cacheKey{strings.ToLower(dns.Fqdn(name)), qtype}
	now := c.opts.Now()
	c.mu.Lock()
	if el, ok := c.entries[k]; ok {
		e := el.Value.(*cacheEntry)
		if now.Before(e.expires) {
			c.lru.MoveToFront(el)
			res := e.res
			c.mu.Unlock()
			// Callers may keep and change the slice; the cache's copy stays.
			res.Records = append([]dns.RR(nil), res.Records...)
			res.TTL = e.expires.Sub(now).Truncate(time.Second)
			return res
		}
		c.lru.Remove(el)
		delete(c.entries, k)
	}
	cl, ok := c.inflight[k]
	if !ok {
		cl = &call{done: make(chan struct{})}
		c.inflight[k] = cl
		go c.resolve(context.WithoutCancel(ctx), k, cl)
	}
	c.mu.Unlock()

	select {
	case <-cl.done:
		return cl.res
	case <-ctx.Done():
		return Result{Name: name, Type: qtype, Status: StatusIndeterminate, Rcode: -1, Err: ctx.Err()}
	}
}

func (c *Cache) resolve(ctx context.Context, k cacheKey, cl *call) {
	defer close(cl.done)
	defer func() {
		c.mu.Lock()
		delete(c.inflight, k)
		c.mu.Unlock()
	}()
	// A panic in the next Resolver must not leave waiters hanging forever.
	defer func() {
		if p := recover(); p != nil {
			cl.res = Result{Name: k.name, Type: k.qtype, Status: StatusIndeterminate, Rcode: -1, Err: panicError{p}}
		}
	}()
	res := c.next.Lookup(ctx, k.name, k.qtype)
	if res.Status == StatusBogus || res.Status == StatusIndeterminate {
		res.TTL = min(res.TTL, c.opts.FailureTTL)
	}
	cl.res = res
	c.store(k, res)
}

type panicError struct{ v any }

func (p panicError) Error() string { return "dane: resolver panicked" }

func (c *Cache) store(k cacheKey, res Result) {
	ttl := res.TTL
	switch res.Status {
	case StatusBogus, StatusIndeterminate:
		ttl = c.opts.FailureTTL
	}
	ttl = min(ttl, c.opts.MaxTTL)
	if ttl <= 0 {
		return // TTL 0: use once, do not cache (RFC 1035 §3.2.1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		c.lru.Remove(el)
	}
	c.entries[k] = c.lru.PushFront(&cacheEntry{key: k, res: res, expires: c.opts.Now().Add(ttl)})
	for c.lru.Len() > c.opts.MaxEntries {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.entries, el.Value.(*cacheEntry).key)
	}
}
