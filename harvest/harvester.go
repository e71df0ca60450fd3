package harvest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Defaults of HarvesterOptions.
const (
	DefaultQueueSize  = 1000
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
)

// HarvesterOptions bound a Harvester's queue. The zero value of each field
// is its default.
type HarvesterOptions struct {
	// QueueSize is the most entries waiting to be written; past it the
	// oldest is dropped (and logged). Default 1000.
	QueueSize int
	// MinBackoff and MaxBackoff bound the wait between retries after a
	// failed Put; it doubles from MinBackoff up to MaxBackoff and resets
	// on success. Defaults 1s and 1m.
	MinBackoff, MaxBackoff time.Duration
}

// Harvester writes entries into a Store from its own goroutine, so that the
// message that taught an entry never waits for the store: Harvest returns
// at once. A Put that fails for a temporary reason (the database is down)
// is retried with backoff; an entry the store refuses (ErrInvalidEntry,
// ErrTooLarge) is logged and dropped.
type Harvester struct {
	store  Store
	logger *slog.Logger
	opts   HarvesterOptions

	mu      sync.Mutex
	queue   []queued
	seq     uint64
	dropped int
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}

	closeOnce sync.Once // Close may be called more than once
}

// queued is an entry waiting, numbered so that the writer can tell it is
// still first after Harvest may have dropped it.
type queued struct {
	seq uint64
	e   Entry
}

// NewHarvester starts a Harvester writing into store. logger may be nil.
// Close stops it.
func NewHarvester(store Store, logger *slog.Logger, opts HarvesterOptions) *Harvester {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Harvester{
		store: store, logger: logger, opts: opts,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go h.run()
	return h
}

// Harvest queues e to be put into the store. It never blocks; when the
// queue is full the oldest waiting entry is dropped and logged.
func (h *Harvester) Harvest(e Entry) {
	h.mu.Lock()
	if len(h.queue) >= h.opts.QueueSize {
		old := h.queue[0].e
		h.queue = h.queue[1:]
		h.dropped++
		h.logger.Warn("harvest queue full; dropped the oldest entry", "address", old.Address, "queue_size", h.opts.QueueSize)
	}
	h.seq++
	h.queue = append(h.queue, queued{seq: h.seq, e: e})
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Pending says how many entries wait to be written.
func (h *Harvester) Pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.queue)
}

// Dropped says how many entries were dropped because the queue was full.
func (h *Harvester) Dropped() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

// Close stops the Harvester; entries still waiting are logged as lost. It
// does not close the store. Close may be called more than once, from
// several goroutines: each call returns once the writer has stopped, and
// only the first logs the lost entries. It returns nil.
func (h *Harvester) Close() error {
	h.closeOnce.Do(func() {
		close(h.stop)
		<-h.done
		if n := h.Pending(); n > 0 {
			h.logger.Warn("harvest entries not written at shutdown", "count", n)
		}
	})
	<-h.done
	return nil
}

func (h *Harvester) run() {
	defer close(h.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-h.stop
		cancel()
	}()
	backoff := h.opts.MinBackoff
	for {
		h.mu.Lock()
		if len(h.queue) == 0 {
			h.mu.Unlock()
			select {
			case <-h.wake:
				continue
			case <-h.stop:
				return
			}
		}
		q := h.queue[0]
		e := q.e
		h.mu.Unlock()

		err := h.store.Put(ctx, e)
		if err != nil && ctx.Err() != nil {
			return // stopping; e stays queued and is counted as lost
		}
		if err == nil || errors.Is(err, ErrInvalidEntry) || errors.Is(err, ErrTooLarge) {
			if err != nil {
				h.logger.Warn("harvested entry refused by the store", "address", e.Address, "err", err)
			}
			h.mu.Lock()
			// Harvest may have dropped e meanwhile: remove it only if it
			// is still first.
			if len(h.queue) > 0 && h.queue[0].seq == q.seq {
				h.queue = h.queue[1:]
			}
			h.mu.Unlock()
			backoff = h.opts.MinBackoff
			continue
		}
		h.logger.Warn("harvest store unavailable; will retry", "address", e.Address, "pending", h.Pending(), "retry_in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-h.stop:
			return
		}
		backoff = min(2*backoff, h.opts.MaxBackoff)
	}
}
