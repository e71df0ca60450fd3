// Package verify checks the signatures of an inbound message and whether the
// key that made each one is the key the sender's domain publishes in
// DNSSEC, and states the outcome in Authentication-Results (RFC 8601).
//
// # What is checked
//
// A message may be signed with S/MIME (RFC 8551): multipart/signed with
// protocol application/pkcs7-signature (§3.5.3) or opaque
// application/pkcs7-mime; smime-type=signed-data (§3.5.2); or with
// PGP/MIME (RFC 3156 §5): multipart/signed with protocol
// application/pgp-signature. The signed entity is the message itself or a
// body part nested in multipart/mixed (or any multipart), up to
// Verifier.MaxDepth levels and Verifier.MaxParts entities; the rest of a
// larger tree is not looked at and the Report says Truncated. A forwarded
// message (message/rfc822) is not entered: its signature speaks for its
// own sender, not for this message's From.
//
// A signed entity nested in a multipart is checked like any other, but it
// can pass only when it covers the whole message content: every multipart
// on its way down has it as its only part (the preamble and epilogue, which
// RFC 2046 §5.1.1 says to ignore, aside). A signed part beside unsigned
// ones — a footer a list added, or someone else's text in front of a part
// the signer once signed and that is now replayed — says nothing about
// what the reader sees beside it, so its signature is at most
// ResultPolicy, with its Binding as found (policy.dane=bound when the
// record binds the signer) and a Reason that names the part.
//
// A signature passes only when all of this holds:
//
//  1. It verifies with a strong algorithm (smime.VerifyEntity,
//     openpgp.VerifyMIME). SHA-1, MD5 and DSA signatures verify but are
//     ResultPolicy, never a pass.
//  2. The message has exactly one From address (RFC 5322 §3.6.2), and the
//     signer is that address: the signer certificate names it in an
//     rfc822Name or emailAddress (RFC 8550 §3), or the signer key was found
//     in the OPENPGPKEY RRset of that address with a user ID for it.
//  3. A DNSSEC-secure record of the From address binds the signer: an
//     SMIMEA record (RFC 8162) that matches the signer certificate under its
//     usage (dane.Selector.Bind: 3 the certificate or key, 2 a trust anchor
//     the certificate chains to, 1 and 0 a PKIX chain to the configured roots
//     plus the record's constraint), or an OPENPGPKEY record (RFC 7929) that
//     holds the signer key (openpgp.SigningKeys).
//  4. The signed entity covers the whole message content (above).
//
// A good signature without that binding is ResultPolicy, with a Binding that
// says why (no secure record, records that do not match, a bogus answer): a
// valid signature and a DANE-bound one are never the same result. A PGP/MIME
// signature can only be checked with the sender's key, which comes from DNS:
// without a secure OPENPGPKEY record it is ResultNeutral.
//
// # Parsing
//
// Header fields and Content-Type parameters are read with go-message
// (github.com/emersion/go-message/textproto and its mail package for the
// From address list), which copes with the encoded words and odd spacing of
// real mail. The MIME tree is walked on the raw octets, though, with
// mimeentity.SplitMultipart: a signature covers the signed part exactly as
// it travelled (RFC 1847 §2.1, RFC 8551 §3.1.1, RFC 3156 §5), and a parser
// that decodes and re-encodes, or normalizes header fields, would hand the
// verifier other octets than the signer hashed.
//
// # What the header fields say
//
// Report.Fields returns the fields to add; the milter removes every
// incoming field of these names that carries our authserv-id first (RFC
// 8601 §5; IsOurs), so that a forged one never reaches a user.
//
// S/MIME uses the registered method "smime" of RFC 7281, one resinfo per
// signature, with its properties body.smime-identifier (the signer's
// address), body.smime-part (the signed entity's position: "1" the message,
// "1.2" the second part of the top-level multipart), body.smime-serial (the
// signer certificate's serial number, hex) and body.smime-issuer (its issuer,
// RFC 4514). The DANE binding is stated twice, so that a filter never
// needs to read a comment or the reason text:
//
//   - the result: smime=pass only when the signature is valid and DANE-bound
//     to the From address; a valid signature without the binding is
//     smime=policy;
//   - a property of ptype "policy", which RFC 8601 §2.3 provides for the
//     local policy that shaped a result: policy.dane=bound, no-record,
//     mismatch, bogus, indeterminate or not-checked (the Binding values).
//
// A message without any S/MIME signature gets "smime=none", so that a
// filter can tell "checked, unsigned" from "not checked".
//
//	Authentication-Results: mx.example.net; smime=pass
//	    reason="valid signature, signer bound by DNSSEC-secure SMIMEA 3 0 0"
//	    body.smime-identifier=alice@example.com body.smime-issuer="CN=Alice"
//	    body.smime-part=1 body.smime-serial=1a2b policy.dane=bound
//
// OpenPGP has no registered Authentication-Results method, and RFC 8601
// §2.7 and §6 have new methods registered with IANA before use (the "x-"
// experimental prefix is gone with RFC 6648). Writing "openpgp=pass" into
// Authentication-Results would claim a registration that does not exist,
// and a consumer could take it for someone else's future definition.
// PGP/MIME results therefore go into a field of their own,
// DANE-OpenPGP-Result, which borrows the Authentication-Results syntax (so
// that the same parsers, IsOurs and the same removal of forged copies
// apply) and whose method and properties are defined here only:
//
//	DANE-OpenPGP-Result: mx.example.net; openpgp=pass
//	    reason="valid signature, signer bound by DNSSEC-secure OPENPGPKEY"
//	    body.openpgp-fingerprint=0123...CDEF body.openpgp-identifier=bob@example.org
//	    body.openpgp-part=1 policy.dane=bound
//
// It is added only when the message has a PGP/MIME signature.
//
// No field, Reason or Summary carries message content or key material:
// addresses, serial numbers, issuer names, fingerprints and fixed reason
// phrases only.
package verify
