package openpgp

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/miekg/dns"
)

// defaultMaxParsed is KeyCache.Max's zero value, as for the SMIMEA
// selector's parsed certificates: the keys of the partners a gateway
// writes to often.
const defaultMaxParsed = 1000

// KeyCache selects keys like [SelectKeys] and remembers what each record's
// data parsed to, keyed by the SHA-256 of the data as the record carries it,
// so that a record that comes again — from the DNS cache, for every
// recipient of every message — is not decoded and its self-signatures are
// not verified again (the public-key operations of a parse; issue 10).
// Parse failures are remembered too: the same octets fail the same way.
// Only parsing is remembered: everything that depends on the time or the
// recipient (user ID, expiry, revocation, key flags, algorithm) is checked
// on every Select. The zero value is ready; it is safe for concurrent use.
//
// The entities it returns are shared between Select calls and goroutines;
// callers must not change them ([EncryptMIME] does not).
type KeyCache struct {
	// Max bounds the records remembered, least recently used first out.
	// Zero: 1000; negative: none (every Select parses).
	Max int

	mu     sync.Mutex
	lru    list.List // of *parsedRecord, most recently used first
	byHash map[[sha256.Size]byte]*list.Element
	parses int // parseRecord calls, for tests
}

type parsedRecord struct {
	hash     [sha256.Size]byte
	data     string // the record data, compared on a hit
	entities []*pgp.Entity
	reasons  []string
}

// Select is [SelectKeys] with parsed records remembered.
func (c *KeyCache) Select(addr string, rrs []dns.RR, now time.Time) ([]Key, []Rejected) {
	return selectWith(addr, rrs, now, c.parse, checkEntity)
}

// SigningKeys is [SigningKeys] with parsed records remembered (inbound
// verification of a sender whose record comes from the DNS cache).
func (c *KeyCache) SigningKeys(addr string, rrs []dns.RR, now time.Time) ([]Key, []Rejected) {
	return selectWith(addr, rrs, now, c.parse, checkSigner)
}

// parse returns parseRecord(b64), from the cache when it holds b64.
func (c *KeyCache) parse(b64 string) ([]*pgp.Entity, []string) {
	if c.Max < 0 {
		c.mu.Lock()
		c.parses++
		c.mu.Unlock()
		return parseRecord(b64)
	}
	h := sha256.Sum256([]byte(b64))
	c.mu.Lock()
	if el, ok := c.byHash[h]; ok && el.Value.(*parsedRecord).data == b64 {
		c.lru.MoveToFront(el)
		p := el.Value.(*parsedRecord)
		c.mu.Unlock()
		return p.entities, p.reasons
	}
	c.mu.Unlock()

	entities, reasons := parseRecord(b64)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.parses++
	if el, ok := c.byHash[h]; ok && el.Value.(*parsedRecord).data == b64 {
		// Parsed meanwhile by another Select: keep the first, so that one
		// record always gives the same entities.
		c.lru.MoveToFront(el)
		p := el.Value.(*parsedRecord)
		return p.entities, p.reasons
	}
	if c.byHash == nil {
		c.byHash = map[[sha256.Size]byte]*list.Element{}
	}
	c.byHash[h] = c.lru.PushFront(&parsedRecord{hash: h, data: b64, entities: entities, reasons: reasons})
	max := c.Max
	if max == 0 {
		max = defaultMaxParsed
	}
	for c.lru.Len() > max {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.byHash, el.Value.(*parsedRecord).hash)
	}
	return entities, reasons
}

// Len returns the number of records remembered.
func (c *KeyCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
