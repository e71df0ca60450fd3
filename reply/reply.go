// Package reply names every SMTP reply danemilter gives the MTA, which the
// MTA passes on to the SMTP client: a reply code (RFC 5321 §4.2), an
// enhanced status code (RFC 3463) and a generic text.
//
// The text is generic on purpose: it says what class of thing went wrong
// ("recipient key lookup failed temporarily"), never which record, key,
// resolver or file; the log keeps the detail (house style: replies that
// leak internals are an anti-pattern). Whether a reply is temporary (4yz:
// the client retries, nothing is lost) or permanent (5yz: the client
// bounces) follows from its code alone (RFC 5321 §4.2.1), and the enhanced
// code always has the same class (RFC 3463 §2).
//
// Each reply has a named constructor; code that refuses a message or a
// recipient calls one of them, so the full set of replies danemilter can
// give is this file.
package reply

import "strconv"

// Reply is one SMTP reply. The zero Reply is no reply (IsZero).
type Reply struct {
	Code     int    // reply code: 451, 550, 552
	Enhanced string // RFC 3463 enhanced status code, same class as Code: "4.7.5"
	Text     string // generic text, fit for the SMTP client
}

// Temporary reports whether the reply is a transient negative completion
// (4yz, RFC 5321 §4.2.1): the MTA keeps the message and the client retries.
func (r Reply) Temporary() bool { return r.Code/100 == 4 }

// Permanent reports whether the reply is a permanent negative completion
// (5yz, RFC 5321 §4.2.1).
func (r Reply) Permanent() bool { return r.Code/100 == 5 }

// IsZero reports whether r is no reply.
func (r Reply) IsZero() bool { return r == Reply{} }

// String renders the reply as it follows the code on the SMTP line's
// start: "451 4.7.5 text".
func (r Reply) String() string { return strconv.Itoa(r.Code) + " " + r.Enhanced + " " + r.Text }

// Reply codes (RFC 5321 §4.2.3).
const (
	CodeLocalError   = 451 // requested action aborted: local error in processing
	CodeMailboxUnav  = 550 // requested action not taken: mailbox unavailable (policy)
	CodeExceededSize = 552 // requested mail action aborted: exceeded storage allocation
)

func temp(enhanced, text string) Reply { return Reply{CodeLocalError, enhanced, text} }

// Replies to one recipient's key lookup (policy.Decide), given at RCPT TO
// or, when the lookup finished later, at end of message.

// KeyBogus: the recipient's key lookup failed DNSSEC validation (RFC 3463
// §3.8 X.7.5, cryptographic failure).
func KeyBogus() Reply { return temp("4.7.5", "recipient key lookup failed DNSSEC validation") }

// KeyLookupFailed: the recipient's key lookup could not be completed
// (SERVFAIL, timeout; RFC 3463 §3.5 X.4.3, directory server failure).
func KeyLookupFailed() Reply { return temp("4.4.3", "recipient key lookup failed temporarily") }

// UnsignedDomain: encryption is required and the recipient's domain is not
// DNSSEC-signed. X.7.5 is the closest registered code for "encryption
// required but not possible" (RFC 3463 §3.8).
func UnsignedDomain() Reply {
	return Reply{CodeMailboxUnav, "5.7.5", "encryption required but recipient domain is not DNSSEC-signed"}
}

// NoUsableKey: encryption is required and the recipient has no usable key.
func NoUsableKey() Reply {
	return Reply{CodeMailboxUnav, "5.7.5", "encryption required but recipient has no usable key"}
}

// Replies to a whole message (policy.Combine and the message's plan).

// EncryptionNotPossible: a recipient requires encryption and is neither
// encrypted to nor refused (fail closed).
func EncryptionNotPossible() Reply { return temp("4.7.5", "encryption required but not possible") }

// SomeRefused: some recipients were refused at end of message while others
// could be served; the retry refuses them at RCPT TO from the cache.
func SomeRefused() Reply {
	return temp("4.7.5", "encryption required for some recipients but not possible; try again")
}

// SendSeparately: some recipients require encryption, others lack a key,
// and splitting is off.
func SendSeparately() Reply {
	return temp("4.7.5", "encryption required for some recipients but not possible for all; send separately")
}

// FormatsDiffer: the recipients need different encryption formats, one
// requires encryption, and splitting is off.
func FormatsDiffer() Reply {
	return temp("4.7.5", "recipients need different encryption formats; send separately")
}

// TooBig: the message is larger than the gateway keeps (max_message_size)
// and must be encrypted (RFC 3463 §3.4 X.3.4, message too big for system).
func TooBig() Reply {
	return Reply{CodeExceededSize, "5.3.4", "message too big for the encryption gateway"}
}

// TooBigEncrypted: an encrypted copy could exceed what the MTA stores
// (message_size_limit).
func TooBigEncrypted() Reply {
	return Reply{CodeExceededSize, "5.3.4", "message too big once encrypted"}
}

// Replies to an inbound message whose sender requires a signature
// (policy.DecideInbound, [inbound] level require).

// NotSignedBySender: the message claims a sender whose policy is require
// and carries no valid signature bound to the sender's DNSSEC-secure
// SMIMEA or OPENPGPKEY record (RFC 3463 §3.8 X.7.1, delivery not
// authorized, message refused).
func NotSignedBySender() Reply {
	return Reply{CodeMailboxUnav, "5.7.1", "message not signed by the sender's DNS-published key"}
}

// SenderKeyLookupFailed: the sender's key lookup could not be completed, so
// a required signature could not be checked; the client retries (RFC 3463
// §3.5 X.4.3, directory server failure).
func SenderKeyLookupFailed() Reply { return temp("4.4.3", "sender key lookup failed temporarily") }

// SenderKeyBogus: the sender's key lookup failed DNSSEC validation (RFC
// 3463 §3.8 X.7.5, cryptographic failure); temporary, like KeyBogus, so
// that a broken zone or an attack never loses mail.
func SenderKeyBogus() Reply { return temp("4.7.5", "sender key lookup failed DNSSEC validation") }

// TooBigToVerify: the sender requires a signature and the message is larger
// than the gateway verifies (max_verify_size); RFC 3463 §3.4 X.3.4.
func TooBigToVerify() Reply {
	return Reply{CodeExceededSize, "5.3.4", "message too big for signature verification"}
}

// Replies of the daemon itself.

// TempFailure: any failure inside the daemon (a spool, encryption or
// re-injection error, a panic, a command out of order); RFC 3463 §3.4
// X.3.0, other or undefined mail system status.
func TempFailure() Reply {
	return temp("4.3.0", "Temporary encryption gateway failure, try again later")
}
