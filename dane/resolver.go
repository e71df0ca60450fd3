package dane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Status is the DNSSEC status of a lookup.
type Status int

// The statuses. The zero value is StatusIndeterminate, so a Result that was
// never filled in is never mistaken for an answer.
const (
	// StatusIndeterminate: SERVFAIL without a DNSSEC error, REFUSED, a
	// timeout or an unreachable resolver. Retrying may help.
	StatusIndeterminate Status = iota
	// StatusSecure: records were found and the resolver validated them.
	StatusSecure
	// StatusSecureDenial: the resolver validated a proof that the name or
	// the type does not exist (NXDOMAIN or NODATA).
	StatusSecureDenial
	// StatusInsecure: an answer (records or not) without DNSSEC validation:
	// the zone is unsigned or has an unsupported algorithm. Nothing in it
	// may be used (RFC 8162 §6).
	StatusInsecure
	// StatusBogus: DNSSEC validation failed — an attack or a broken zone.
	StatusBogus
)

var statusNames = [...]string{"indeterminate", "secure", "secure-denial", "insecure", "bogus"}

func (s Status) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return fmt.Sprintf("status(%d)", int(s))
	}
	return statusNames[s]
}

// EDE is an Extended DNS Error (RFC 8914) the resolver attached.
type EDE struct {
	Code uint16
	Text string
}

// IsDNSSEC reports whether the code says DNSSEC validation failed (RFC 8914
// §4.2 and §4.5–4.13: unsupported algorithm or digest, DNSSEC bogus or
// indeterminate, expired or not yet valid signatures, missing DNSKEY,
// RRSIG or NSEC, no zone key bit).
func (e EDE) IsDNSSEC() bool {
	switch e.Code {
	case dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm, dns.ExtendedErrorCodeUnsupportedDSDigestType,
		dns.ExtendedErrorCodeDNSSECIndeterminate, dns.ExtendedErrorCodeDNSBogus,
		dns.ExtendedErrorCodeSignatureExpired, dns.ExtendedErrorCodeSignatureNotYetValid,
		dns.ExtendedErrorCodeDNSKEYMissing, dns.ExtendedErrorCodeRRSIGsMissing,
		dns.ExtendedErrorCodeNoZoneKeyBitSet, dns.ExtendedErrorCodeNSECMissing:
		return true
	}
	return false
}

func (e EDE) String() string {
	name := dns.ExtendedErrorCodeToString[e.Code]
	if name == "" {
		name = fmt.Sprintf("EDE %d", e.Code)
	}
	if e.Text != "" {
		return fmt.Sprintf("%d (%s): %s", e.Code, name, e.Text)
	}
	return fmt.Sprintf("%d (%s)", e.Code, name)
}

// Result is the outcome of one lookup.
type Result struct {
	Name   string // owner name asked for, fully qualified
	Type   uint16 // record type asked for
	Status Status
	// Records are the records of Type at Name (following CNAMEs) when the
	// resolver answered with some; for StatusInsecure they are present but
	// must not be used.
	Records []dns.RR
	// TTL is how long the result may be cached: the smallest TTL of the
	// records, or for a denial min(SOA TTL, SOA MINIMUM) (RFC 2308 §5).
	TTL time.Duration
	// EDE are the Extended DNS Errors of the answer (RFC 8914).
	EDE []EDE
	// Rcode is the response code of the last answer, -1 when none came.
	Rcode int
	// Resolver is the address that gave the answer ("fake", "cache" ...).
	Resolver string
	// Err explains an indeterminate or bogus result.
	Err error
}

// Resolver looks up one name and type and tells how far the answer can be
// trusted. Implementations never return records as StatusSecure unless the
// answer was DNSSEC-validated.
type Resolver interface {
	Lookup(ctx context.Context, name string, qtype uint16) Result
}

// Errors in Result.Err, possibly wrapped.
var (
	// ErrBogus: the resolver reported a DNSSEC validation failure.
	ErrBogus = errors.New("dane: DNSSEC validation failed (bogus)")
	// ErrServFail: SERVFAIL without a DNSSEC Extended DNS Error.
	ErrServFail = errors.New("dane: resolver answered SERVFAIL")
	// ErrUnreachable: no resolver gave an answer (timeouts, refused
	// connections, REFUSED or other error codes).
	ErrUnreachable = errors.New("dane: no resolver answered")
	// ErrUntrustedResolver is returned by NewStub for a resolver whose AD bit
	// cannot be believed.
	ErrUntrustedResolver = errors.New("dane: resolver is not on loopback and not marked trusted")
	// ErrTruncated: the answer had TC set, also when asked again over TCP.
	// A truncated answer is incomplete whatever else it says, so it proves
	// neither records nor their absence.
	ErrTruncated = errors.New("dane: resolver answered with TC (truncated) set")
)

// StubOptions configure NewStub.
type StubOptions struct {
	// Servers are validating resolvers as "ip:port", tried in order until
	// one answers. Required.
	Servers []string
	// Trusted allows servers that are not on loopback: their AD bit is then
	// believed, which is only safe over a protected path.
	Trusted bool
	// Timeout bounds one query to one server (UDP, and TCP after
	// truncation). Default 5s.
	Timeout time.Duration
	// Logger gets debug lines per query; nil discards.
	Logger *slog.Logger
}

// Stub is a Resolver that asks validating resolvers and classifies their
// answers. Make it with NewStub; it is safe for concurrent use.
type Stub struct {
	servers []string
	timeout time.Duration
	log     *slog.Logger
}

// NewStub returns a Stub. It returns ErrUntrustedResolver (wrapped) for a
// server off loopback unless opts.Trusted, and an error naming a server that
// is not an IP address with port.
func NewStub(opts StubOptions) (*Stub, error) {
	if len(opts.Servers) == 0 {
		return nil, errors.New("dane: no resolvers configured")
	}
	s := &Stub{timeout: opts.Timeout, log: opts.Logger}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, srv := range opts.Servers {
		ap, err := netip.ParseAddrPort(srv)
		if err != nil {
			return nil, fmt.Errorf("dane: resolver %q: want ip:port", srv)
		}
		if !ap.Addr().IsLoopback() && !opts.Trusted {
			return nil, fmt.Errorf("%w: %s", ErrUntrustedResolver, srv)
		}
		s.servers = append(s.servers, ap.String())
	}
	return s, nil
}

// Lookup asks the servers in order. A server that does not answer, answers
// REFUSED or another unexpected code is skipped; SERVFAIL from a server is
// final (a validating resolver's SERVFAIL is how it reports bogus data, and
// asking another could only weaken that).
func (s *Stub) Lookup(ctx context.Context, name string, qtype uint16) Result {
	name = dns.Fqdn(name)
	res := Result{Name: name, Type: qtype, Rcode: -1}
	var errs []error
	for _, srv := range s.servers {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		resp, err := s.exchange(ctx, srv, name, qtype)
		if err != nil {
			s.log.Debug("dns query failed", "server", srv, "name", name, "type", dns.TypeToString[qtype], "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", srv, err))
			continue
		}
		r := classify(name, qtype, resp)
		r.Resolver = srv
		s.log.Debug("dns answer", "server", srv, "name", name, "type", dns.TypeToString[qtype], "rcode", dns.RcodeToString[resp.Rcode], "ad", resp.AuthenticatedData, "status", r.Status.String(), "records", len(r.Records))
		if r.Status == StatusIndeterminate && (r.Rcode != dns.RcodeServerFailure || errors.Is(r.Err, ErrTruncated)) {
			errs = append(errs, fmt.Errorf("%s: %w", srv, r.Err))
			res.Rcode, res.EDE = r.Rcode, r.EDE
			continue
		}
		return r
	}
	res.Status = StatusIndeterminate
	res.Err = fmt.Errorf("%w: %w", ErrUnreachable, errors.Join(errs...))
	return res
}

func (s *Stub) exchange(ctx context.Context, srv, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	// DO: ask for DNSSEC; 1232 octets avoids IP fragmentation (DNS flag day
	// 2020). CD stays clear: the resolver must validate.
	q.SetEdns0(1232, true)
	qctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	c := &dns.Client{Net: "udp", Timeout: s.timeout, UDPSize: 1232}
	resp, _, err := c.ExchangeContext(qctx, q, srv)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(qctx, q, srv)
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, name) || resp.Question[0].Qtype != qtype {
		return nil, errors.New("answer does not match the question")
	}
	return resp, nil
}

// classify turns a resolver's response into a Result. The caller has checked
// that the AD bit of this server may be believed.
func classify(name string, qtype uint16, resp *dns.Msg) Result {
	res := Result{Name: name, Type: qtype, Rcode: resp.Rcode}
	if opt := resp.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				res.EDE = append(res.EDE, EDE{Code: e.InfoCode, Text: e.ExtraText})
			}
		}
	}
	// RFC 2181 §9: a client that receives a response with TC set "should
	// ignore that response"; RFC 1123 §6.1.3.2: a truncated response must
	// not be used as if it were complete. The stub asks again over TCP
	// (RFC 7766 §5), where a response has no reason to be truncated; one
	// that still has TC set — over UDP or TCP, with or without AD, with
	// records or an empty answer section — proves nothing: indeterminate,
	// never a secure denial.
	if resp.Truncated {
		res.Status = StatusIndeterminate
		res.Err = ErrTruncated
		return res
	}
	ad := resp.AuthenticatedData
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	case dns.RcodeServerFailure:
		for _, e := range res.EDE {
			if e.IsDNSSEC() {
				res.Status = StatusBogus
				res.Err = fmt.Errorf("%w: %s", ErrBogus, e)
				return res
			}
		}
		res.Status = StatusIndeterminate
		res.Err = ErrServFail
		if len(res.EDE) > 0 {
			res.Err = fmt.Errorf("%w: %s", ErrServFail, res.EDE[0])
		}
		return res
	default:
		res.Status = StatusIndeterminate
		res.Err = fmt.Errorf("resolver answered %s", dns.RcodeToString[resp.Rcode])
		return res
	}

	// Follow the CNAME chain in the answer section to the records of qtype.
	owner := name
	var minTTL uint32 = 1<<32 - 1
	for range 16 {
		next := ""
		for _, rr := range resp.Answer {
			h := rr.Header()
			if !strings.EqualFold(h.Name, owner) {
				continue
			}
			if h.Rrtype == qtype {
				res.Records = append(res.Records, rr)
				minTTL = min(minTTL, receivedTTL(h.Ttl))
			} else if c, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME {
				next = c.Target
				minTTL = min(minTTL, receivedTTL(h.Ttl))
			}
		}
		if len(res.Records) > 0 || next == "" {
			break
		}
		owner = next
	}
	if len(res.Records) > 0 && resp.Rcode == dns.RcodeNameError {
		// RFC 6604 §3: NXDOMAIN is about the last name of the chain, which
		// then has no records. The answer contradicts itself: use none of it.
		res.Records = nil
		res.Status = StatusIndeterminate
		res.Err = errors.New("resolver answered NXDOMAIN with records")
		return res
	}
	if len(res.Records) > 0 {
		res.TTL = time.Duration(minTTL) * time.Second
		if ad {
			res.Status = StatusSecure
		} else {
			res.Status = StatusInsecure
		}
		return res
	}
	// NXDOMAIN or NODATA: the negative TTL is min(SOA TTL, SOA MINIMUM)
	// (RFC 2308 §5).
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			res.TTL = time.Duration(min(receivedTTL(soa.Hdr.Ttl), receivedTTL(soa.Minttl))) * time.Second
		}
	}
	if ad {
		res.Status = StatusSecureDenial
	} else {
		res.Status = StatusInsecure
	}
	return res
}

// receivedTTL is a TTL as received, in seconds. RFC 2181 §8: a TTL with the most
// significant bit set is treated as if it were zero (use once, do not
// cache). The SOA MINIMUM, used as the negative TTL (RFC 2308 §4), is
// treated the same.
func receivedTTL(v uint32) uint32 {
	if v >= 1<<31 {
		return 0
	}
	return v
}
