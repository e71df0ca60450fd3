// Package smime encrypts MIME entities for S/MIME recipients (RFC 8551) by
// writing CMS EnvelopedData (RFC 5652 §6), and holds the header helpers that
// wrap the result as an application/pkcs7-mime entity.
//
// # CMS EnvelopedData
//
// An enveloped message is a ContentInfo (RFC 5652 §3) whose content type is
// id-envelopedData and whose content is an EnvelopedData (RFC 5652 §6.1):
//
//	ContentInfo ::= SEQUENCE {
//	  contentType  id-envelopedData,           -- 1.2.840.113549.1.7.3
//	  content      [0] EXPLICIT EnvelopedData }
//
//	EnvelopedData ::= SEQUENCE {
//	  version               CMSVersion,          -- 0 here (RFC 5652 §6.1)
//	  recipientInfos        SET OF RecipientInfo,
//	  encryptedContentInfo  EncryptedContentInfo }
//
//	EncryptedContentInfo ::= SEQUENCE {
//	  contentType                 id-data,     -- 1.2.840.113549.1.7.1
//	  contentEncryptionAlgorithm  aes256-CBC or aes128-CBC, parameters = IV
//	  encryptedContent            [0] IMPLICIT OCTET STRING }
//
// The sender draws a fresh random content-encryption key (CEK) and IV for
// every message, encrypts the content once with AES-CBC and PKCS #7 padding
// (RFC 5652 §6.3, RFC 3565 §2.1), and encrypts the CEK once per recipient with
// that recipient's RSA public key (RSA PKCS #1 v1.5 key transport, RFC 3370
// §4.2.1, RFC 8551 §2.3). Each such wrapped key is a KeyTransRecipientInfo
// (RFC 5652 §6.2.1) naming the recipient certificate by its issuer and serial
// number. A recipient finds its RecipientInfo, unwraps the CEK with its
// private key, and decrypts the content.
//
// # Streaming
//
// [Encrypt] never holds the message in memory. Because the plaintext size is
// known in advance and CBC with PKCS #7 padding always adds 1 to 16 bytes, the
// ciphertext length is (size/16+1)*16, so every length in the DER encoding
// (X.690 §8.1.3, definite form) can be written before the first ciphertext
// byte. The large encryptedContent octet string is then streamed in 64 KiB
// chunks. Memory use is a few hundred KiB whatever the message size.
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
// [EncryptBase64] writes that body, [OuterFields] lists those header fields,
// [IsEntityHeader] tells which fields of the original message move inside the
// encryption (Content-*; RFC 2045 §9 lets MIME-Version stay outside), and
// [IsEncrypted] recognises messages that are already encrypted (RFC 1847
// multipart/encrypted, RFC 8551 §3.2.2 enveloped-data and RFC 8551 §2.4.4
// authEnveloped-data), which must not be touched.
//
// The package has no mutable package state: every setting travels in
// [Options], so concurrent calls with different options are safe.
package smime
