// Package harvest stores the certificates danemilter learns from verified
// inbound signed mail, with the S/MIME capabilities the signer announced.
//
// A DANE record for S/MIME (SMIMEA, RFC 8162 §2) may publish only a hash of
// the recipient's certificate (matching type 1 or 2: "3 0 1", "3 1 1"),
// which keeps zones small and is the only practical form for large RSA
// certificates. To encrypt to such a recipient the sender needs the
// certificate itself from somewhere else. A signed message from that
// address carries it: when the signature verifies (package verify), the
// signer's certificate is harvested into a Store together with the signed
// SMIMECapabilities attribute (RFC 8551 §2.5.2), which says which content
// encryption algorithms (AES-GCM, AES-CBC) and key transport variants
// (RSA-OAEP) the partner's client can read.
//
// Harvesting grants no trust. A stored certificate is used for encryption
// only when a DNSSEC-secure SMIMEA record for that address matches it
// (RFC 8162 §3), exactly like a certificate in the configured certificate
// directory. The store answers "which certificates have I seen signed by
// this address", never "which certificate should I trust".
//
// There are two backends behind one interface, Store:
//
//   - Bolt (OpenBolt): one file under the state directory, nothing to run.
//     It uses go.etcd.io/bbolt: pure Go (no cgo), one file, every write a
//     transaction committed with fsync, so a kill -9 in the middle of a
//     write loses at most that write. SQLite through the pure-Go
//     modernc.org/sqlite was the alternative; it brings a large transpiled
//     C library for what is here a key-value problem. bbolt locks the
//     file (flock) while it is open, so Bolt opens it only for the length
//     of each call: the daemon and the danemilter store and lookup
//     commands take turns, each waiting at most Options.Timeout, and a
//     long listing lets the daemon in between batches. Reads share the
//     lock; writes take it alone.
//   - Postgres (OpenPostgres): for a fleet of MX and submission hosts that
//     share what each learns, so a certificate harvested on the MX is used
//     by the submission host. The daemon creates and migrates the schema;
//     upserts from several daemons at once are safe.
//
// Both backends are bounded by Options: entries not seen for ExpireAfter
// are dropped, at most MaxEntries are kept (the least recently seen go
// first) and a certificate larger than MaxCertificateSize is refused.
//
// A Harvester puts entries into a Store from a goroutine with a bounded
// queue and retries with backoff, so a slow or unreachable database never
// holds up a message; a failed Get is to be read as "not known".
package harvest

import (
	"context"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultExpireAfter        = 400 * 24 * time.Hour
	DefaultMaxEntries         = 100000
	DefaultMaxCertificateSize = 16 << 10
	DefaultTimeout            = 2 * time.Second
)

var (
	// ErrTooLarge is wrapped by the error of Put for a certificate or
	// capabilities attribute larger than Options.MaxCertificateSize.
	ErrTooLarge = errors.New("harvest: certificate too large")
	// ErrInvalidEntry is wrapped by the error of Put for an entry without
	// an address or certificate, or whose Fingerprint does not match its
	// Certificate.
	ErrInvalidEntry = errors.New("harvest: invalid entry")
	// ErrLocked is wrapped by the error of OpenBolt and of Bolt's methods
	// when another process holds the file for longer than
	// Options.Timeout.
	ErrLocked = errors.New("harvest: store file is locked by another process")
)

// Entry is one certificate seen signing mail from one address.
type Entry struct {
	// Address is the whole signer address, lower-cased.
	Address string
	// Certificate is the signer's certificate, DER.
	Certificate []byte
	// Fingerprint is the SHA-256 of Certificate, lower-case hex. Put
	// computes it when empty.
	Fingerprint string
	// Capabilities is the DER of the signed SMIMECapabilities attribute
	// value (RFC 8551 §2.5.2), nil when the message carried none.
	Capabilities []byte
	// FirstSeen and LastSeen are when a verified signature with this
	// certificate was first and last seen from Address.
	FirstSeen, LastSeen time.Time
}

// Store holds harvested entries, keyed by (Address, Fingerprint). Its
// methods are safe for concurrent use.
type Store interface {
	// Put adds e, or updates the entry with the same address and
	// fingerprint: FirstSeen is kept (the earlier of the two), LastSeen
	// becomes the later of the two, and Capabilities are replaced by
	// e's when e carries some and is not older than the stored entry.
	// Errors wrap ErrInvalidEntry or ErrTooLarge, or are the backend's.
	Put(ctx context.Context, e Entry) error
	// Get returns the entries of addr (compared lower-cased), the most
	// recently seen first; entries not seen for Options.ExpireAfter are
	// left out. No entry is not an error.
	Get(ctx context.Context, addr string) ([]Entry, error)
	// List calls f for every entry, ordered by address; an error from f
	// stops the walk and is returned.
	List(ctx context.Context, f func(Entry) error) error
	// Forget removes every entry of addr and says how many there were.
	Forget(ctx context.Context, addr string) (int, error)
	// Expire removes the entries last seen before notSeenSince and says
	// how many there were.
	Expire(ctx context.Context, notSeenSince time.Time) (int, error)
	// Close releases the store.
	Close() error
}

// Options bound a Store. The zero value of each field is its default.
type Options struct {
	// ExpireAfter drops entries not seen for this long. Default 400 days.
	ExpireAfter time.Duration
	// MaxEntries is the most entries kept; past it the least recently
	// seen go first. Default 100000.
	MaxEntries int
	// MaxCertificateSize is the largest certificate (and capabilities
	// attribute) Put accepts, in bytes. Default 16 KiB.
	MaxCertificateSize int
	// Timeout bounds each PostgreSQL call and, in each Bolt call, the
	// wait for the bbolt file's lock. Default 2s.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.ExpireAfter <= 0 {
		o.ExpireAfter = DefaultExpireAfter
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxCertificateSize <= 0 {
		o.MaxCertificateSize = DefaultMaxCertificateSize
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

// expireEvery is how often Put also drops the entries not seen for
// Options.ExpireAfter (OpenBolt and OpenPostgres do it at once), so a
// daemon running for months stays bounded without a timer of its own.
const expireEvery = time.Hour

// expiry remembers when a store last expired entries.
type expiry struct{ last atomic.Int64 }

// due reports whether expiry is due at now, and if so claims it.
func (x *expiry) due(now time.Time) bool {
	last := x.last.Load()
	if now.UnixNano()-last < int64(expireEvery) {
		return false
	}
	return x.last.CompareAndSwap(last, now.UnixNano())
}

// Fingerprint returns the SHA-256 of der in lower-case hex, as
// Entry.Fingerprint holds it.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// NormalizeAddress is how the store compares addresses: the whole address,
// lower-cased and trimmed.
func NormalizeAddress(addr string) string {
	return strings.ToLower(strings.TrimSpace(addr))
}

// normalize checks e against o and fills in what Put may compute: the
// fingerprint, a missing LastSeen (now) or FirstSeen (LastSeen). Times are
// kept in UTC to the microsecond, the precision PostgreSQL stores, so both
// backends return the same values.
func normalize(e Entry, o Options, now time.Time) (Entry, error) {
	e.Address = NormalizeAddress(e.Address)
	if e.Address == "" || !strings.Contains(e.Address, "@") {
		return e, fmt.Errorf("%w: address %q", ErrInvalidEntry, e.Address)
	}
	if len(e.Certificate) == 0 {
		return e, fmt.Errorf("%w: no certificate for %s", ErrInvalidEntry, e.Address)
	}
	if len(e.Certificate) > o.MaxCertificateSize {
		return e, fmt.Errorf("%w: %s's certificate is %d bytes, the limit is %d", ErrTooLarge, e.Address, len(e.Certificate), o.MaxCertificateSize)
	}
	if len(e.Capabilities) > o.MaxCertificateSize {
		return e, fmt.Errorf("%w: %s's capabilities attribute is %d bytes, the limit is %d", ErrTooLarge, e.Address, len(e.Capabilities), o.MaxCertificateSize)
	}
	fp := Fingerprint(e.Certificate)
	if e.Fingerprint == "" {
		e.Fingerprint = fp
	} else if !strings.EqualFold(e.Fingerprint, fp) {
		return e, fmt.Errorf("%w: fingerprint %s is not the certificate's (%s)", ErrInvalidEntry, e.Fingerprint, fp)
	}
	e.Fingerprint = fp
	if e.LastSeen.IsZero() {
		e.LastSeen = now
	}
	if e.FirstSeen.IsZero() || e.FirstSeen.After(e.LastSeen) {
		e.FirstSeen = e.LastSeen
	}
	e.FirstSeen = e.FirstSeen.UTC().Truncate(time.Microsecond)
	e.LastSeen = e.LastSeen.UTC().Truncate(time.Microsecond)
	if len(e.Capabilities) == 0 {
		e.Capabilities = nil
	}
	return e, nil
}

// merge is the upsert rule of Put, applied to the stored entry old and the
// new one e (same address and fingerprint).
func merge(old, e Entry) Entry {
	if old.FirstSeen.Before(e.FirstSeen) {
		e.FirstSeen = old.FirstSeen
	}
	if old.LastSeen.After(e.LastSeen) {
		// An older sighting (a retried Put) does not move LastSeen back
		// nor replace newer capabilities.
		e.LastSeen = old.LastSeen
		e.Capabilities = old.Capabilities
	} else if e.Capabilities == nil {
		e.Capabilities = old.Capabilities
	}
	return e
}

// smimeCapability is one SMIMECapability (RFC 8551 §2.5.2).
type smimeCapability struct {
	ID         asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

// ParseCapabilities returns the capability OIDs of an SMIMECapabilities
// attribute value, in the sender's order of preference (RFC 8551 §2.5.2):
//
//	SMIMECapabilities ::= SEQUENCE OF SMIMECapability
//	SMIMECapability ::= SEQUENCE {
//	   capabilityID OBJECT IDENTIFIER,
//	   parameters ANY DEFINED BY capabilityID OPTIONAL }
//
// Parameters (e.g. an RC2 key length) are not returned. der may be the
// attribute value or a SET holding it (the attribute's values as they
// appear in SignerInfo). nil or empty der gives no capabilities and no
// error. An error says the DER is malformed.
func ParseCapabilities(der []byte) ([]asn1.ObjectIdentifier, error) {
	if len(der) == 0 {
		return nil, nil
	}
	var raw asn1.RawValue
	rest, err := asn1.Unmarshal(der, &raw)
	if err != nil {
		return nil, fmt.Errorf("harvest: SMIMECapabilities: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("harvest: SMIMECapabilities: trailing data")
	}
	if raw.Class == asn1.ClassUniversal && raw.Tag == asn1.TagSet && raw.IsCompound {
		// SET OF AttributeValue: exactly one value (RFC 8551 §2.5.2).
		var inner asn1.RawValue
		rest, err := asn1.Unmarshal(raw.Bytes, &inner)
		if err != nil {
			return nil, fmt.Errorf("harvest: SMIMECapabilities: %w", err)
		}
		if len(rest) != 0 {
			return nil, errors.New("harvest: SMIMECapabilities: more than one attribute value")
		}
		der = inner.FullBytes
	}
	var caps []smimeCapability
	rest, err = asn1.Unmarshal(der, &caps)
	if err != nil {
		return nil, fmt.Errorf("harvest: SMIMECapabilities: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("harvest: SMIMECapabilities: trailing data")
	}
	oids := make([]asn1.ObjectIdentifier, 0, len(caps))
	for _, c := range caps {
		oids = append(oids, c.ID)
	}
	return oids, nil
}

// capabilityNames are the SMIMECapability OIDs danemilter's cipher
// choice cares about, named as the configuration names ciphers.
var capabilityNames = map[string]string{
	"2.16.840.1.101.3.4.1.2":     "aes128-cbc", // RFC 3565 §4.1
	"2.16.840.1.101.3.4.1.22":    "aes192-cbc",
	"2.16.840.1.101.3.4.1.42":    "aes256-cbc",
	"2.16.840.1.101.3.4.1.6":     "aes128-gcm", // RFC 5084 §3.2
	"2.16.840.1.101.3.4.1.26":    "aes192-gcm",
	"2.16.840.1.101.3.4.1.46":    "aes256-gcm",
	"1.2.840.113549.1.1.7":       "rsaes-oaep",   // RFC 4055 §4.1
	"1.2.840.113549.3.7":         "des-ede3-cbc", // RFC 3370 §5.1
	"1.2.840.113549.3.2":         "rc2-cbc",
	"1.2.840.113549.1.9.15.1":    "prefer-signed-data",   // RFC 2633 §2.5.2
	"1.2.840.113549.1.9.16.11.1": "prefer-binary-inside", // RFC 8551 §2.5.2.1
}

// CapabilityName returns a short name for a capability OID ("aes256-gcm",
// "rsaes-oaep"), or its dotted form when it has none.
func CapabilityName(oid asn1.ObjectIdentifier) string {
	if n, ok := capabilityNames[oid.String()]; ok {
		return n
	}
	return oid.String()
}
