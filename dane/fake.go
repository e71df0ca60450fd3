package dane

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Fake is an in-memory Resolver for tests and the demo. A name and type set
// with Set or SetStatus answers that Result; any other name answers a secure
// denial, as a signed zone without the record would. The zero value is ready
// to use and it is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	answers map[cacheKey]Result
	calls   int
}

// Set makes name (with or without trailing dot, any case) and qtype answer
// res. Name and Type of res are filled in when empty.
func (f *Fake) Set(name string, qtype uint16, res Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answers == nil {
		f.answers = map[cacheKey]Result{}
	}
	name = strings.ToLower(dns.Fqdn(name))
	if res.Name == "" {
		res.Name = name
	}
	if res.Type == 0 {
		res.Type = qtype
	}
	f.answers[cacheKey{name, qtype}] = res
}

// SetStatus makes name and qtype answer st without records: the switch for
// insecure, bogus and indeterminate (SERVFAIL, timeout) outcomes.
func (f *Fake) SetStatus(name string, qtype uint16, st Status, err error) {
	f.Set(name, qtype, Result{Status: st, Err: err, TTL: 60 * time.Second})
}

// Calls returns how many lookups Fake has answered.
func (f *Fake) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Lookup implements Resolver.
func (f *Fake) Lookup(ctx context.Context, name string, qtype uint16) Result {
	f.mu.Lock()
	f.calls++
	res, ok := f.answers[cacheKey{strings.ToLower(dns.Fqdn(name)), qtype}]
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Result{Name: name, Type: qtype, Status: StatusIndeterminate, Rcode: -1, Resolver: "fake", Err: err}
	}
	if !ok {
		return Result{Name: dns.Fqdn(name), Type: qtype, Status: StatusSecureDenial, Rcode: dns.RcodeNameError, TTL: 60 * time.Second, Resolver: "fake"}
	}
	if res.Resolver == "" {
		res.Resolver = "fake"
	}
	if len(res.Records) > 0 {
		// Callers must not be able to change the stored answer.
		res.Records = append([]dns.RR(nil), res.Records...)
	}
	return res
}
