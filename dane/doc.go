// Package dane finds the keys that mail recipients publish in DNSSEC-signed
// DNS: SMIMEA records for S/MIME certificates (RFC 8162) and OPENPGPKEY
// records for OpenPGP keys (RFC 7929).
//
// # Owner names
//
// Both record types live under a name derived from the address
// local-part@domain (RFC 8162 §3, RFC 7929 §3):
//
//	hex(SHA-256(local-part))[:56] . "_smimecert"  . domain   (type SMIMEA, 53)
//	hex(SHA-256(local-part))[:56] . "_openpgpkey" . domain   (type OPENPGPKEY, 61)
//
// that is, the first 28 octets of the SHA-256 digest of the local part,
// hex-encoded. [SMIMEAName] and [OPENPGPKEYName] build them. The local part is
// hashed as written; the RFCs do not lowercase it, but some publishing tools
// (hash-slinger) do, so the lowercase argument selects that variant.
//
// # Trust
//
// RFC 8162 §6 and RFC 7929 §7 allow only DNSSEC-validated records to be used.
// danemilter does not validate signatures itself: it asks a validating
// resolver with the DO bit set and believes the AD (authentic data) bit only
// from a resolver on loopback, or one the operator marks as reached over a
// protected path — the rule of Postfix's DANE support and of maddy. Every
// [Result] carries a [Status]:
//
//	StatusSecure        records, AD set
//	StatusSecureDenial  NXDOMAIN or NODATA, AD set: DNSSEC proves there is no record
//	StatusInsecure      an answer without AD: the zone is not signed
//	StatusBogus         SERVFAIL with a DNSSEC Extended DNS Error (RFC 8914)
//	StatusIndeterminate any other SERVFAIL, REFUSED, timeout or unreachable resolver
//
// Insecure is not "no record" and bogus is not "no record": callers must treat
// them as the policy says, never as a proof that no key exists.
//
// # Resolvers
//
// [Resolver] is the interface every lookup goes through. [NewStub] talks to
// validating resolvers with github.com/miekg/dns, [NewCache] wraps any
// Resolver with a bounded, TTL-honouring cache that also merges concurrent
// lookups of one name, and [Fake] is an in-memory Resolver with a switch per
// name for tests and demos.
//
// # Selecting keys
//
// [Selector.Select] turns the SMIMEA records of a secure answer into the
// certificates that may be used to encrypt to one address, and explains why
// every other record was skipped.
package dane
