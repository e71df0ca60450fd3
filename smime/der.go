package smime

import (
	"encoding/asn1"
	"fmt"
)

// DER identifier octets (X.690 §8.1.2) of the elements framed by hand.
const (
	tagSequence     = 0x30 // universal, constructed, 16
	tagSet          = 0x31 // universal, constructed, 17
	tagExplicit0    = 0xa0 // context-specific, constructed, 0
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

// envelopeHeader returns every octet of the DER ContentInfo that precedes
// the ciphertext: ris are the encoded KeyTransRecipientInfos in SET OF
// order, alg the encoded contentEncryptionAlgorithm, and ctLen the length of
// the ciphertext that follows.
func envelopeHeader(ris [][]byte, alg []byte, ctLen int64) ([]byte, error) {
	oidEnv, err := asn1.Marshal(oidEnvelopedData())
	if err != nil {
		return nil, fmt.Errorf("smime: %w", err)
	}
	oidDat, err := asn1.Marshal(oidData())
	if err != nil {
		return nil, fmt.Errorf("smime: %w", err)
	}
	version := []byte{0x02, 0x01, 0x00} // INTEGER 0

	var risLen int64
	for _, ri := range ris {
		risLen += int64(len(ri))
	}
	// RFC 5652 §6.1 EncryptedContentInfo: contentType, algorithm, and the
	// encryptedContent [0] IMPLICIT OCTET STRING (primitive, as DER wants).
	eciLen := int64(len(oidDat)) + int64(len(alg)) + tlvLen(ctLen)
	// RFC 5652 §6.1 EnvelopedData: version 0 because there are no
	// originatorInfo, no unprotectedAttrs, and every RecipientInfo is a
	// version 0 KeyTransRecipientInfo.
	envLen := int64(len(version)) + tlvLen(risLen) + tlvLen(eciLen)
	// RFC 5652 §3 ContentInfo: contentType and content [0] EXPLICIT.
	ciLen := int64(len(oidEnv)) + tlvLen(tlvLen(envLen))

	h := make([]byte, 0, tlvLen(ciLen)-ctLen)
	h = appendHeader(h, tagSequence, ciLen)
	h = append(h, oidEnv...)
	h = appendHeader(h, tagExplicit0, tlvLen(envLen))
	h = appendHeader(h, tagSequence, envLen)
	h = append(h, version...)
	h = appendHeader(h, tagSet, risLen)
	for _, ri := range ris {
		h = append(h, ri...)
	}
	h = appendHeader(h, tagSequence, eciLen)
	h = append(h, oidDat...)
	h = append(h, alg...)
	h = appendHeader(h, tagImplicit0Raw, ctLen)
	if int64(len(h))+ctLen != tlvLen(ciLen) {
		return nil, fmt.Errorf("smime: internal error: header length %d+%d != %d", len(h), ctLen, tlvLen(ciLen))
	}
	return h, nil
}
