// Package openpgp encrypts mail for recipients who publish OpenPGP keys in
// DNSSEC-signed DNS: it picks the usable keys out of OPENPGPKEY records (RFC
// 7929) and turns a MIME entity into a PGP/MIME encrypted message (RFC
// 3156). The OpenPGP work itself is done by github.com/ProtonMail/go-crypto.
//
// # OPENPGPKEY records
//
// A recipient local-part@domain publishes its key at
//
//	hex(SHA-256(local-part))[:56] . "_openpgpkey" . domain   (type OPENPGPKEY, 61)
//
// (RFC 7929 §3), the name dane.OPENPGPKEYName builds. RFC 7929 §3 hashes the
// local part as it is written (§3.1 discusses variant forms, case among
// them, without mandating a canonical one). hash-slinger's "openpgpkey"
// tool, which many operators publish with, lowercases it first, so a record made for "Hugh@example.com" may sit under the hash of
// "hugh". danemilter looks up the name as written unless the operator sets
// lowercase_local_part = true in the [dns] section of the configuration
// (see the dane package). Either way, [SelectKeys] then checks that the key
// carries the address, comparing without regard to case.
//
// The record data is one or more OpenPGP transferable public keys (RFC 9580
// §10.1) in binary form, without ASCII armor (RFC 7929 §2.1); a zone file
// shows it in base64, as miekg/dns's dns.OPENPGPKEY keeps it. Several keys,
// in one record or in several records of the RRset, are how a key rollover
// looks, and all of them are used: [SelectKeys] returns every usable key
// and a reason for every key or record it refuses, so that one broken key
// never hides the others. Only records of a DNSSEC-secure answer may be used
// (RFC 7929 §7); the caller, which holds the lookup result and its status,
// must see to that.
//
// A key is usable when it parses and its self-signatures verify, one of its
// valid user IDs carries the address (RFC 7929 §5), the primary key is
// neither revoked nor expired, and it has a valid encryption key of a
// supported algorithm: RSA of at least 2048 bits, ECDH over Curve25519 or
// NIST P-256, P-384 or P-521, X25519 or X448 (RFC 9580 §5.5.5). The
// encryption key is the one go-crypto's Entity.EncryptionKey picks, the
// newest valid subkey flagged for encrypting communications, or else the
// primary key: the one encryption will actually use. Records come from the
// recipient's zone, whose publisher is not trusted to be reasonable: the
// data of one record is bounded by the DNS (64 KiB), keys too large to
// verify quickly are refused before any signature is checked, and a parser
// panic becomes a rejection.
//
// # PGP/MIME
//
// RFC 3156 §4 wraps the encrypted entity in a multipart/encrypted entity
// (RFC 1847 §2.2) with two parts:
//
//	Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="..."
//
//	--boundary
//	Content-Type: application/pgp-encrypted
//
//	Version: 1
//	--boundary
//	Content-Type: application/octet-stream; name="encrypted.asc"
//	Content-Disposition: inline; filename="encrypted.asc"
//
//	-----BEGIN PGP MESSAGE-----
//	...
//	-----END PGP MESSAGE-----
//	--boundary--
//
// The plaintext is the original MIME entity: its Content-* header fields
// (mimeentity.IsEntityField tells which), an empty line and its body, in CRLF
// form (RFC 3156 §3). [EncryptMIME] writes the body of the multipart entity,
// [OuterFields] gives its Content-Type; the caller keeps the other header
// fields and MIME-Version. The boundary is random ([NewBoundary]) and holds
// an "_", which ASCII armor never contains, so the armored text cannot
// contain a delimiter line; a caller that must write the header first picks
// the boundary in advance and passes it in [Options].
//
// # Choices
//
//   - Cipher: AES-256 whenever every recipient lists it among its preferred
//     ciphers (GnuPG's and go-crypto's keys do; RFC 9580 §5.2.3.14 makes the
//     list binding on the sender), else AES-128, which every implementation
//     must support (RFC 9580 §9.3).
//   - Integrity: the encrypted data is a SEIPDv1 packet with a
//     modification detection code (RFC 9580 §5.13.1), which every OpenPGP
//     implementation, GnuPG 2.2 included, reads. SEIPDv2 with AEAD (RFC 9580
//     §5.13.2) is used only when every recipient key advertises it in its
//     features subpacket (RFC 9580 §5.2.3.32): v6 keys made by RFC 9580
//     software. A v4 key from GnuPG never does, so GnuPG users always get
//     SEIPDv1.
//   - No compression. Mail is mostly compressed already (images, office
//     files, archives, base64 of them compresses little), compression costs
//     more time than the encryption, and compressing attacker-influenced
//     and secret data together leaks through the length (the CRIME class of
//     attacks). RFC 9580 §5.6 lets a sender compress or not.
//   - No signature: the gateway has no key of the sender to sign with.
//   - The literal data packet is binary ('b') with no file name; GnuPG
//     prints it as given.
//   - The armor carries the CRC-24 checksum line for old readers (RFC 4880
//     §6 made it part of the armor; RFC 9580 §6.1 lets it be written for
//     interoperability), no armor headers, and CRLF line ends.
//
// EncryptMIME streams: the entity is read, encrypted and armored in 64 KiB
// chunks, so a 25 MB message needs a few hundred KiB of live memory.
//
// # Header protection
//
// The Subject of an encrypted message still travels in clear in the outer
// header. With Options.Protect set to the message's header fields,
// EncryptMIME copies the user-facing ones (Subject, From, Sender,
// Reply-To, To, Cc, Date, Message-ID, In-Reply-To, References, Keywords,
// Comments; never Bcc or trace fields) into the header of the encrypted
// entity, marks its Content-Type with RFC 9788's hp="cipher" and with
// protected-headers="v1" (the earlier convention, which Thunderbird and
// Enigmail read), and records each field as it stays outside in an
// HP-Outer field (RFC 9788 §2.2). The caller then replaces the outer
// Subject with [ObscuredSubject], "[...]", the placeholder of RFC 9788's
// baseline policy (hcp_baseline), and changes nothing else: every other
// field stays visible, as the MTA and the recipient's filters need it. It is
// off by default, because a reader that does not understand header
// protection shows "[...]" as the subject. An entity whose Content-Type
// already carries either parameter, or a Protect list without any
// user-facing field, is encrypted unchanged.
//
// # Errors
//
// EncryptMIME checks every key before writing anything; a key that cannot
// be encrypted to yields a *[RecipientError] wrapping [ErrUnusableKey].
// [ErrNoRecipients], [ErrBadBoundary] and [ErrHeaderTooLong] report bad
// arguments; errors from the reader, the writer and the random source come
// wrapped. All of them are permanent for the message as given except the
// I/O errors, which the caller should treat as temporary.
//
// The package has no mutable package state: every setting travels in
// [Options], and concurrent calls, with the same keys too, are safe.
package openpgp
