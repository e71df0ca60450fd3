// Package mimeentity holds what danemilter needs to know about a MIME
// entity (RFC 2045 §2.4: header fields and a body) in order to replace it
// with an encrypted one, whatever the format (S/MIME, PGP/MIME):
//
//   - which header fields belong to the entity and so move inside the
//     encryption ([IsEntityField]: Content-*, RFC 2045 §9), and which stay
//     in the message header (MIME-Version, From, Subject, ...);
//   - how a header field is written: the field-name syntax ([ValidFieldName],
//     [CleanFieldName]: RFC 5322 §2.2, §3.6.8), unfolding ([UnfoldValue]:
//     RFC 5322 §2.2.3), folding ([FoldField]: RFC 5322 §2.1.1, §2.2.3), and
//     writing a field with CRLF line breaks ([WriteField], [CRLF]);
//   - whether an entity is labelled as already encrypted ([IsEncrypted]:
//     RFC 1847 §2.2 multipart/encrypted, RFC 8551 §3.2 application/pkcs7-mime)
//     and whether the octets inside look like ciphertext ([ByteStats]).
//     The label alone proves nothing; smime.ParseEnvelope and
//     openpgp.ParseMIME read the body and use ByteStats;
//   - the base64 body (RFC 2045 §6.8): [Base64Writer] encodes in
//     CRLF-terminated lines of at most 76 characters (OpenPGP armor,
//     RFC 9580 §6.3, uses the same writer with lines of 64), and
//     [NewBase64Reader] decodes, skipping the white space a body may carry.
//
// Header field values are handled as octets: names compare
// case-insensitively in ASCII (RFC 5322 §1.2.2), values are never decoded
// (RFC 2047 encoded words stay as they are).
//
// The inbound direction (verification, decryption, key harvesting) will
// read entities too; parsing helpers it shares with smime and openpgp
// belong here, in their own files.
//
// The package has no mutable state: [Base64Writer] and [ByteStats] are
// values the caller owns.
package mimeentity
