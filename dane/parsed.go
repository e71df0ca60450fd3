package dane

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"crypto/x509"
	"sync"
)

// defaultMaxParsed is Selector.MaxParsed's zero value: the DNS cache's
// default size is 10000 answers, but most of them are denials; a thousand
// certificates (a few KiB each, parsed) cover the partners a gateway
// writes to often.
const defaultMaxParsed = 1000

// parsedCerts remembers the certificates parsed from SMIMEA records
// (x 0 0), keyed by the SHA-256 of their DER, so that a record that comes
// again — from the DNS cache, for every recipient of every message — is not
// parsed again and yields the same *x509.Certificate. Parse errors are
// remembered too: the same octets fail the same way. Bounded, least
// recently used first out. Only parsing is remembered: everything that
// depends on the time or the recipient is checked on every Select.
type parsedCerts struct {
	mu     sync.Mutex
	lru    list.List // of *parsedEntry, most recently used first
	byHash map[[sha256.Size]byte]*list.Element
	parses int // x509.ParseCertificate calls, for tests
}

type parsedEntry struct {
	hash [sha256.Size]byte
	cert *x509.Certificate
	err  error
}

// parse returns x509.ParseCertificate(der), from the cache when it holds
// der, keeping at most max entries (max < 0: none).
func (p *parsedCerts) parse(der []byte, max int) (*x509.Certificate, error) {
	if max < 0 {
		p.mu.Lock()
		p.parses++
		p.mu.Unlock()
		return x509.ParseCertificate(der)
	}
	if max == 0 {
		max = defaultMaxParsed
	}
	h := sha256.Sum256(der)
	if e, ok := p.get(h, der); ok {
		return e.cert, e.err
	}
	cert, err := x509.ParseCertificate(der)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.parses++
	if el, ok := p.byHash[h]; ok {
		// Parsed meanwhile by another Select: keep the first, so that one
		// record always gives one pointer.
		p.lru.MoveToFront(el)
		e := el.Value.(*parsedEntry)
		return e.cert, e.err
	}
	if p.byHash == nil {
		p.byHash = map[[sha256.Size]byte]*list.Element{}
	}
	p.byHash[h] = p.lru.PushFront(&parsedEntry{hash: h, cert: cert, err: err})
	for p.lru.Len() > max {
		el := p.lru.Back()
		p.lru.Remove(el)
		delete(p.byHash, el.Value.(*parsedEntry).hash)
	}
	return cert, err
}

func (p *parsedCerts) get(h [sha256.Size]byte, der []byte) (*parsedEntry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	el, ok := p.byHash[h]
	if !ok {
		return nil, false
	}
	e := el.Value.(*parsedEntry)
	// The hash names the octets; comparing them costs little and leaves
	// nothing to a hash collision.
	if e.cert != nil && !bytes.Equal(e.cert.Raw, der) {
		return nil, false
	}
	p.lru.MoveToFront(el)
	return e, true
}

// ParseCertificate is x509.ParseCertificate through the Selector's cache of
// parsed certificates (MaxParsed): for certificates that come again from
// elsewhere than a record, such as a certificate store asked for every
// recipient of every message. The certificate is shared: callers must not
// change it.
func (s *Selector) ParseCertificate(der []byte) (*x509.Certificate, error) {
	return s.parsed.parse(der, s.MaxParsed)
}
