package smime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/textproto"
	"strings"

	"github.com/danemilter/danemilter/mimeentity"
)

// maxEntityDepth bounds how deep VerifyEntity looks into nested multiparts
// for a signed entity.
const maxEntityDepth = 8

// VerifyEntity verifies the S/MIME signature of a MIME entity given as raw
// bytes: a whole message (its other header fields are ignored) or one
// body part. The entity is
//
//   - multipart/signed with protocol application/pkcs7-signature (RFC 8551
//     §3.5.3): the signed content is the first body part exactly as it
//     stands between the delimiters, its header included, without the
//     CRLF that precedes the next delimiter (RFC 1847 §2.1, RFC 2046
//     §5.1.1: that CRLF belongs to the delimiter), with bare LF turned
//     into CRLF (RFC 8551 §3.1.1 canonical form; OpenSSL does the same);
//   - application/pkcs7-mime with smime-type signed-data, or without
//     smime-type when the content is SignedData (RFC 8551 §3.5.2), base64
//     or binary;
//   - any other multipart, in which the first body part that is one of
//     the above (depth-first, up to maxEntityDepth levels) is verified.
//
// The Verification holds one result per signer; a signature that does not
// verify is a result, not an error. VerifyEntity returns ErrNotSigned when
// no S/MIME signed entity is found (a PGP/MIME signature, an encrypted or
// plain entity), ErrMalformed when the MIME structure or the CMS cannot be
// read, and ErrUnsupportedAlgorithm for another smime-type.
func VerifyEntity(entity []byte) (*Verification, error) {
	return verifyEntity(entity, 0)
}

func verifyEntity(entity []byte, depth int) (*Verification, error) {
	if depth > maxEntityDepth {
		return nil, fmt.Errorf("%w: multipart nested deeper than %d", ErrNotSigned, maxEntityDepth)
	}
	h, body, err := splitEntity(entity)
	if err != nil {
		return nil, err
	}
	ctv := h.Get("Content-Type")
	if ctv == "" {
		return nil, fmt.Errorf("%w: no Content-Type", ErrNotSigned) // RFC 2045 §5.2: text/plain
	}
	mt, params, err := mime.ParseMediaType(ctv)
	if err != nil {
		return nil, malformed("Content-Type: %v", err)
	}
	switch {
	case mt == "multipart/signed":
		// RFC 8551 §3.5.3: protocol application/pkcs7-signature (the
		// x- form of RFC 2311 is still written by old agents).
		p := strings.ToLower(params["protocol"])
		if p != "application/pkcs7-signature" && p != "application/x-pkcs7-signature" {
			return nil, fmt.Errorf("%w: multipart/signed protocol %q", ErrNotSigned, params["protocol"])
		}
		parts, err := splitMultipart(body, params["boundary"])
		if err != nil {
			return nil, err
		}
		if len(parts) != 2 { // RFC 1847 §2.1: exactly two body parts
			return nil, malformed("multipart/signed with %d body parts", len(parts))
		}
		sh, sbody, err := splitEntity(parts[1])
		if err != nil {
			return nil, err
		}
		smt, _, err := mime.ParseMediaType(sh.Get("Content-Type"))
		if err != nil {
			return nil, malformed("signature Content-Type: %v", err)
		}
		if smt != "application/pkcs7-signature" && smt != "application/x-pkcs7-signature" {
			return nil, malformed("signature part is %s", smt)
		}
		der, err := decodeBody(sh, sbody)
		if err != nil {
			return nil, err
		}
		content := mimeentity.CanonicalCRLF(parts[0])
		v, err := VerifySignedData(der, content)
		if err != nil {
			return nil, err
		}
		v.Form = FormDetached
		return v, nil
	case mt == "application/pkcs7-mime" || mt == "application/x-pkcs7-mime": // RFC 8551 §3.2
		// RFC 8551 §3.2.2: smime-type; absent, the CMS content type
		// decides (parseSignedData answers ErrNotSigned).
		if st, ok := params["smime-type"]; ok && !strings.EqualFold(st, "signed-data") {
			if strings.EqualFold(st, "enveloped-data") || strings.EqualFold(st, "authEnveloped-data") || strings.EqualFold(st, "compressed-data") {
				return nil, fmt.Errorf("%w: smime-type %s", ErrNotSigned, st)
			}
			return nil, fmt.Errorf("%w: smime-type %s", ErrUnsupportedAlgorithm, st)
		}
		der, err := decodeBody(h, body)
		if err != nil {
			return nil, err
		}
		v, err := VerifySignedData(der, nil)
		if err != nil {
			return nil, err
		}
		v.Form = FormOpaque
		return v, nil
	case strings.HasPrefix(mt, "multipart/"):
		parts, err := splitMultipart(body, params["boundary"])
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			v, err := verifyEntity(p, depth+1)
			if errors.Is(err, ErrNotSigned) {
				continue
			}
			return v, err
		}
		return nil, fmt.Errorf("%w: no signed part in %s", ErrNotSigned, mt)
	}
	return nil, fmt.Errorf("%w: %s", ErrNotSigned, mt)
}

// splitEntity parses the header of an entity and returns it and the body
// (the octets after the empty line; none when there is no empty line).
func splitEntity(entity []byte) (textproto.MIMEHeader, []byte, error) {
	var head, body []byte
	switch {
	case bytes.HasPrefix(entity, []byte("\r\n")):
		head, body = nil, entity[2:]
	case bytes.HasPrefix(entity, []byte("\n")):
		head, body = nil, entity[1:]
	default:
		i := bytes.Index(entity, []byte("\n\r\n"))
		j := bytes.Index(entity, []byte("\n\n"))
		switch {
		case i >= 0 && (j < 0 || i < j):
			head, body = entity[:i+1], entity[i+3:]
		case j >= 0:
			head, body = entity[:j+1], entity[j+2:]
		default:
			head, body = entity, nil
		}
	}
	h, err := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(head), strings.NewReader("\r\n")))).ReadMIMEHeader()
	if err != nil {
		return nil, nil, malformed("header: %v", err)
	}
	return h, body, nil
}

// splitMultipart is mimeentity.SplitMultipart with this package's error; a
// body that ends without its close delimiter ends its last part (truncated or
// badly forwarded mail is common, and OpenSSL takes it so).
func splitMultipart(body []byte, boundary string) ([][]byte, error) {
	parts, _, err := mimeentity.SplitMultipart(body, boundary)
	if err != nil {
		return nil, malformed("%v", err)
	}
	return parts, nil
}

// decodeBody returns the body of a pkcs7 entity as its
// Content-Transfer-Encoding says (RFC 8551 §3.1.2: base64 or binary).
func decodeBody(h textproto.MIMEHeader, body []byte) ([]byte, error) {
	switch cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte {
	case "base64": // RFC 2045 §6.8
		der, err := io.ReadAll(mimeentity.NewBase64Reader(bytes.NewReader(body)))
		if err != nil {
			return nil, malformed("base64 body: %v", err)
		}
		return der, nil
	case "", "binary", "7bit", "8bit":
		return body, nil
	default:
		return nil, malformed("Content-Transfer-Encoding %s", cte)
	}
}
