package smime

import (
	"encoding/asn1"
	"fmt"
)

// DER identifier octets (X.690 §8.1.2) of the elements framed by hand.
const (
	tagOctetString  = 0x04 // universal, primitive, 4
	tagSequence     = 0x30 // universal, constructed, 16
	tagSet          = 0x31 // universal, constructed, 17
	tagExplicit0    = 0xa0 // context-specific, constructed, 0
	tagExplicit1    = 0xa1 // context-specific, constructed, 1
	tagImplicit1    = 0xa1 // context-specific, constructed, 1, replacing a SEQUENCE tag
	tagImplicit0Raw = 0x80 // context-specific, primitive, 0
)

// lenOfLen is the number of octets of the DER length field for n (X.690
// §8.1.3, §10.1: the short form below 128, else the shortest long form).
func lenOfLen(n int64) int {
	if n < 0x80 {
		return 1
	}
	l := 1
	for ; n > 0; n >>= 8 {
		l++
	}
	return l
}

// tlvLen is the encoded size of an element with n content octets and a
// one-octet tag.
func tlvLen(n int64) int64 { return 1 + int64(lenOfLen(n)) + n }

// appendHeader appends the identifier and definite length octets of an
// element with n content octets (X.690 §8.1.3).
func appendHeader(b []byte, tag byte, n int64) []byte {
	b = append(b, tag)
	if n < 0x80 {
		return append(b, byte(n)) // X.690 §8.1.3.4 short form
	}
	l := lenOfLen(n) - 1
	b = append(b, 0x80|byte(l)) // X.690 §8.1.3.5 long form
	for i := l - 1; i >= 0; i-- {
		b = append(b, byte(n>>(8*i)))
	}
	return b
}

// envelope describes the DER ContentInfo that Encrypt writes, all but the
// ciphertext itself.
type envelope struct {
	auth  bool     // AuthEnvelopedData (RFC 5083) rather than EnvelopedData
	allV0 bool     // every RecipientInfo is version 0
	ris   [][]byte // encoded RecipientInfos in SET OF order
	alg   []byte   // encoded contentEncryptionAlgorithm
	ctLen int64    // length of the ciphertext
}

// macLen is the length of the encoded mac field of an AuthEnvelopedData:
// an OCTET STRING of the 16-octet GCM tag.
const macLen = 2 + gcmTagSize

// header returns every octet that precedes the ciphertext. For an
// AuthEnvelopedData the encoded mac (macLen octets) must follow the
// ciphertext.
func (e envelope) header() ([]byte, error) {
	ct := oidEnvelopedData()
	// RFC 5652 §6.1: EnvelopedData version 0 when there are no
	// originatorInfo, no unprotectedAttrs (never written here) and every
	// RecipientInfo is version 0 (a KeyTransRecipientInfo with
	// issuerAndSerialNumber); no pwri or ori (which would make it 3) are
	// written, so anything else (ktri with subjectKeyIdentifier, version
	// 2; kari, version 3) makes it 2.
	version := byte(0)
	if !e.allV0 {
		version = 2
	}
	if e.auth {
		ct = oidAuthEnvelopedData()
		version = 0 // RFC 5083 §2.1: "It MUST be set to 0."
	}
	oidCT, err := asn1.Marshal(ct)
	if err != nil {
		return nil, fmt.Errorf("smime: %w", err)
	}
	oidDat, err := asn1.Marshal(oidData())
	if err != nil {
		return nil, fmt.Errorf("smime: %w", err)
	}
	ver := []byte{0x02, 0x01, version} // INTEGER

	var risLen int64
	for _, ri := range e.ris {
		risLen += int64(len(ri))
	}
	// RFC 5652 §6.1 EncryptedContentInfo (RFC 5083 §2.1 reuses it as
	// authEncryptedContentInfo): contentType id-data (RFC 8551 §3.3),
	// algorithm, and the encryptedContent [0] IMPLICIT OCTET STRING
	// (primitive, as DER wants).
	eciLen := int64(len(oidDat)) + int64(len(e.alg)) + tlvLen(e.ctLen)
	// EnvelopedData ::= SEQUENCE { version, recipientInfos,
	// encryptedContentInfo } (RFC 5652 §6.1); AuthEnvelopedData adds the
	// mac after it (RFC 5083 §2.1; no authAttrs: the content type is
	// id-data, §2.1 requires them only otherwise).
	envLen := int64(len(ver)) + tlvLen(risLen) + tlvLen(eciLen)
	if e.auth {
		envLen += macLen
	}
	// RFC 5652 §3 ContentInfo: contentType and content [0] EXPLICIT.
	ciLen := int64(len(oidCT)) + tlvLen(tlvLen(envLen))

	trailer := int64(0)
	if e.auth {
		trailer = macLen
	}
	h := make([]byte, 0, tlvLen(ciLen)-e.ctLen-trailer)
	h = appendHeader(h, tagSequence, ciLen)
	h = append(h, oidCT...)
	h = appendHeader(h, tagExplicit0, tlvLen(envLen))
	h = appendHeader(h, tagSequence, envLen)
	h = append(h, ver...)
	h = appendHeader(h, tagSet, risLen)
	for _, ri := range e.ris {
		h = append(h, ri...)
	}
	h = appendHeader(h, tagSequence, eciLen)
	h = append(h, oidDat...)
	h = append(h, e.alg...)
	h = appendHeader(h, tagImplicit0Raw, e.ctLen)
	if int64(len(h))+e.ctLen+trailer != tlvLen(ciLen) {
		return nil, fmt.Errorf("smime: internal error: header length %d+%d+%d != %d", len(h), e.ctLen, trailer, tlvLen(ciLen))
	}
	return h, nil
}
