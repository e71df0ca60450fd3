// Package smime encrypts MIME entities for S/MIME recipients (RFC 8551) by
// writing CMS EnvelopedData (RFC 5652 §6) or AuthEnvelopedData (RFC 5083),
// decrypts them again, and holds the header helpers that wrap the result
// as an application/pkcs7-mime entity.
//
// # CMS EnvelopedData and AuthEnvelopedData
//
// An encrypted message is a ContentInfo (RFC 5652 §3) whose content is an
// EnvelopedData (RFC 5652 §6.1) when the content cipher is AES-CBC, or an
// AuthEnvelopedData (RFC 5083 §2.1) when it is AES-GCM:
//
//	ContentInfo ::= SEQUENCE {
//	  contentType  id-envelopedData              -- 1.2.840.113549.1.7.3
//	            |  id-ct-authEnvelopedData,      -- 1.2.840.113549.1.9.16.1.23
//	  content      [0] EXPLICIT EnvelopedData | AuthEnvelopedData }
//
//	EnvelopedData ::= SEQUENCE {
//	  version               CMSVersion,          -- 0 or 2, see below
//	  recipientInfos        SET OF RecipientInfo,
//	  encryptedContentInfo  EncryptedContentInfo }
//
//	AuthEnvelopedData ::= SEQUENCE {
//	  version                   CMSVersion,      -- always 0 (RFC 5083 §2.1)
//	  recipientInfos            SET OF RecipientInfo,
//	  authEncryptedContentInfo  EncryptedContentInfo,
//	  mac                       OCTET STRING }   -- the 16-octet GCM tag
//
//	EncryptedContentInfo ::= SEQUENCE {
//	  contentType                 id-data,     -- 1.2.840.113549.1.7.1
//	  contentEncryptionAlgorithm  AlgorithmIdentifier,
//	  encryptedContent            [0] IMPLICIT OCTET STRING }
//
// The contentEncryptionAlgorithm is id-aes128-CBC or id-aes256-CBC with the
// 16-octet IV as parameters (RFC 3565 §4.1), or id-aes128-GCM or
// id-aes256-GCM with GCMParameters (RFC 5084 §3.2): a 12-octet nonce and
// the ICV length 16, written out because the DEFAULT is 12. No authAttrs
// are written: RFC 5083 §2.1 requires them only for content other than
// id-data. The sender draws a fresh random content-encryption key (CEK)
// and IV or nonce for every message, encrypts the content once (CBC with
// PKCS #7 padding, RFC 5652 §6.3; GCM without padding) and hands the CEK to
// every recipient in a RecipientInfo.
//
// # RecipientInfos
//
// An RSA certificate gets a KeyTransRecipientInfo (RFC 5652 §6.2.1):
//
//	KeyTransRecipientInfo ::= SEQUENCE {
//	  version                 0 | 2,         -- 2 with subjectKeyIdentifier
//	  rid                     issuerAndSerialNumber | [0] subjectKeyIdentifier,
//	  keyEncryptionAlgorithm  rsaEncryption (NULL) | id-RSAES-OAEP (params),
//	  encryptedKey            OCTET STRING }  -- the CEK encrypted with RSA
//
// rsaEncryption is RSA PKCS #1 v1.5 (RFC 3370 §4.2.1), the default because
// every S/MIME agent reads it. With [Options].RSAOAEP the CEK is encrypted
// with RSAES-OAEP (RFC 3560, RFC 8017 §7.1) under SHA-256, and the
// parameters say so explicitly, as RFC 4055 §4.1 rSAES-OAEP-SHA256-Params:
//
//	RSAES-OAEP-params ::= SEQUENCE {
//	  hashFunc    [0] { id-sha256, NULL },
//	  maskGenFunc [1] { id-mgf1, { id-sha256, NULL } } }
//	  -- pSourceFunc [2] left at its DEFAULT, the empty label
//
// (A reader that sees hashFunc but assumes MGF1-SHA-1, or the other way
// round, fails; that is the mistake DESIGN.md found in other Go code.)
//
// An EC certificate on P-256, P-384 or P-521 gets a KeyAgreeRecipientInfo
// (RFC 5652 §6.2.2) for ephemeral-static ECDH (RFC 5753 §3.1.1, RFC 8551
// §2.3):
//
//	KeyAgreeRecipientInfo ::= SEQUENCE {     -- RecipientInfo choice [1]
//	  version     3,
//	  originator  [0] EXPLICIT originatorKey [1] OriginatorPublicKey,
//	              -- { id-ecPublicKey, namedCurve }, the ephemeral point
//	  keyEncryptionAlgorithm  { dhSinglePass-stdDH-sha256kdf-scheme (P-256)
//	                          | ...-sha384kdf-scheme (P-384)
//	                          | ...-sha512kdf-scheme (P-521),
//	                            { id-aes128-wrap | id-aes256-wrap } },
//	  recipientEncryptedKeys  SEQUENCE OF SEQUENCE {
//	    rid           issuerAndSerialNumber | rKeyId [0] { subjectKeyIdentifier },
//	    encryptedKey  OCTET STRING } }        -- the CEK, AES-key-wrapped
//
// The sender makes a fresh key pair on the recipient's curve for every
// recipient, computes the shared secret Z with the recipient's public key,
// derives the key-encryption key with the ANSI X9.63 KDF (SEC 1 §3.6.1):
// KEK = Hash(Z || counter || SharedInfo), where SharedInfo is the DER of
//
//	ECC-CMS-SharedInfo ::= SEQUENCE {        -- RFC 5753 §7.2
//	  keyInfo      { id-aes*-wrap },         -- parameters absent
//	  suppPubInfo  [2] EXPLICIT OCTET STRING } -- KEK length in bits, 32-bit
//
// and wraps the CEK with AES Key Wrap (RFC 3394, RFC 3565 §4.2), whose key
// size RFC 8551 §2.3 ties to the content cipher's: id-aes128-wrap for
// AES-128, id-aes256-wrap for AES-256. No ukm is sent (it is OPTIONAL).
// The ephemeral public key is the originator; the recipient repeats the
// ECDH with its private key, derives the same KEK and unwraps the CEK,
// whose integrity the key wrap checks.
//
// RSA and EC recipients mix freely in one message. Each RecipientInfo
// names its certificate by issuer and serial number or, with
// [Options].UseSKI, by its SubjectKeyIdentifier extension (a certificate
// without one is still named by issuer and serial number). The versions
// follow RFC 5652 §6.1 and §6.2:
//
//	KeyTransRecipientInfo   0 (issuerAndSerialNumber), 2 (subjectKeyIdentifier)
//	KeyAgreeRecipientInfo   3
//	EnvelopedData           0 if every RecipientInfo is version 0, else 2
//	AuthEnvelopedData       0
//
// X25519 (RFC 8418) is not offered: OpenSSL 3.0, the reader this package is
// proven against, refuses to encrypt for an X25519 certificate ("operation
// not supported for this keytype") and finds "no matching recipient" in a
// KeyAgreeRecipientInfo for one, and crypto/x509 can neither create nor
// parse X25519 certificates (their PublicKey is nil). Encrypt reports such
// a certificate as ErrUnsupportedKey.
//
// # Which cipher
//
// The zero value of [Options] is AES-256-CBC in an EnvelopedData with RSA
// PKCS #1 v1.5, and that is the recommended daemon default today: every
// S/MIME agent reads it, while agents built on RFC 5751 (2010) or earlier
// cannot read an AuthEnvelopedData, and the design's rule is that a message
// is never encrypted so that a recipient cannot read it. AES-GCM is better
// cryptography (RFC 8551 §2.7 makes AES-128 GCM and AES-256 GCM the MUST
// and AES-128 CBC a MUST-: CBC is malleable, which the EFAIL attacks used,
// while GCM authenticates the content) and is the choice where the
// operator knows the recipients run RFC 8551 clients: configure aes256-gcm
// (or aes128-gcm) for them, or let [CipherAuto] decide per copy from the
// SMIMECapabilities (RFC 8551 §2.5.2) each recipient's client announced in
// its signed mail: [AutoCipher] picks the strongest GCM every reader
// announced and falls back to AES-256-CBC. Options.RSAOAEP is the same
// trade: OAEP has no padding oracle, v1.5 is read everywhere;
// Options.RSAOAEPFor decides it per recipient ([AnnouncesOAEP]).
// SignerResult.Capabilities is where the announcement is read on the
// receiving side.
// EC recipients always get ECDH; their agents are RFC 5753 ones.
//
// # Streaming
//
// [Encrypt] never holds the message in memory. Because the plaintext size
// is known in advance, so is the ciphertext's: (size/16+1)*16 for CBC with
// PKCS #7 padding (always 1 to 16 octets), size itself for GCM. So every
// length in the DER encoding (X.690 §8.1.3, definite form) can be written
// before the first ciphertext octet, and the encryptedContent octet string
// is then streamed in 64 KiB chunks; the GCM tag follows as the mac.
// crypto/cipher's GCM is one-shot, so the GCM here is assembled from
// crypto/cipher parts (gcm.go): AES-CTR from inc32(J0) for the keystream,
// and GHASH computed 64 KiB at a time by crypto/cipher's own GCM and
// combined by the linearity of GHASH. It is tested equal to crypto/cipher's
// one-shot GCM for every size from 0 to 100 octets and around segment
// boundaries. Memory use is a few hundred KiB whatever the message size.
// GCM is limited to 64 GiB per message (NIST SP 800-38D §5.2.1.1).
//
// # Decryption
//
// [Decrypt] reads what Encrypt writes and what `openssl cms -encrypt`
// writes: EnvelopedData and AuthEnvelopedData in DER or BER (OpenSSL's
// -stream output has indefinite lengths and a constructed OCTET STRING),
// RSA v1.5 and RSA-OAEP (SHA-1 to SHA-512) key transport, ECDH on P-256,
// P-384 and P-521 with the SHA-1 to SHA-512 X9.63 KDF schemes (standard and
// cofactor), AES key wrap, AES-CBC and AES-GCM of 128, 192 and 256 bits.
// [DecryptMIME] does the same for an application/pkcs7-mime entity. A
// wrong key, a bad padding, a bad tag and a failed unwrap all give the
// same ErrDecrypt, and RSA v1.5 decryption substitutes a random key for a
// bad padding, so that no padding oracle arises.
//
// # The MIME wrap
//
// RFC 8551 §3.3 turns the DER into a MIME entity: the original entity (its
// Content-* header fields, an empty line and its body, canonicalized per RFC
// 8551 §3.1.1) is the plaintext, and the result replaces it as
//
//	Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"
//	Content-Transfer-Encoding: base64
//	Content-Disposition: attachment; filename="smime.p7m"
//	Content-Description: S/MIME Encrypted Message
//
//	MIIB...   (base64 of the DER, CRLF-terminated lines of 76 characters)
//
// with smime-type=authEnveloped-data for the GCM ciphers (RFC 8551
// §3.2.2). [EncryptBase64] writes that body, [OuterFieldsFor] lists those
// header fields for a cipher,
// mimeentity.IsEntityField tells which fields of the original message move
// inside the encryption (Content-*; RFC 2045 §9 lets MIME-Version stay
// outside), mimeentity.IsEncrypted recognises messages labelled as already
// encrypted (RFC 1847 multipart/encrypted, RFC 8551 §3.2.2 enveloped-data
// and authEnveloped-data), and [ParseEnvelope] reads such a body completely,
// without a key, and lists the certificates its RecipientInfos name, so that
// a label cannot pass for encryption ([Envelope.Includes]).
//
// The package has no mutable package state: every setting travels in
// [Options], so concurrent calls with different options are safe.
package smime
