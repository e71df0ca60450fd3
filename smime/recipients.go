package smime

// Reading an EnvelopedData without a key: who is it for? A gateway that
// lets mail labelled "already encrypted" pass must know that the label is
// true and that the recipient can read it. A key holder proves both by
// decrypting; the gateway, which holds only the recipients' public
// certificates, checks what can be checked without one:
//
//   - the body is one complete ContentInfo (RFC 5652 §3) of type
//     EnvelopedData (§6.1) or AuthEnvelopedData (RFC 5083 §2.1), every
//     element parsed to its end and nothing after it;
//   - the content is encrypted with an algorithm a reader implements (AES
//     in CBC mode in an EnvelopedData, RFC 3565; AES-GCM in an
//     AuthEnvelopedData, RFC 5084) with well-formed parameters, and the
//     encrypted content is present and does not read as text;
//   - the RecipientInfos (§6.2) name certificates: by issuer and serial
//     number or by subject key identifier, in a KeyTransRecipientInfo or
//     in the RecipientEncryptedKeys of a KeyAgreeRecipientInfo.
//
// [Envelope.Includes] then says whether a given certificate is among them.
// What no check without the private key can exclude is a sender who builds
// all of this by hand around plaintext bytes that merely look random; that
// sender could as well encrypt to a key of its own choosing. The checks
// stop labels, truncations and accidents, not a sender set on leaking.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/danemilter/danemilter/mimeentity"
)

// ErrNotCiphertext: the encrypted content of an otherwise well-formed
// envelope reads as text, which ciphertext practically never does.
var ErrNotCiphertext = errors.New("smime: encrypted content is not ciphertext")

// maxEnvelopeMeta bounds the octets ParseEnvelope holds in memory: every
// element but the encrypted content, which is streamed. 16 MiB holds the
// RecipientInfos of tens of thousands of recipients.
const maxEnvelopeMeta = 16 << 20

// RecipientKind is the kind of RecipientInfo (RFC 5652 §6.2) a
// RecipientID comes from.
type RecipientKind int

// The kinds of RecipientInfo that name a certificate, and the others
// (kekri, pwri, ori), which name none.
const (
	KeyTransport RecipientKind = iota // ktri, RFC 5652 §6.2.1
	KeyAgreement                      // kari, RFC 5652 §6.2.2 (one per RecipientEncryptedKey)
	OtherRecipient
)

func (k RecipientKind) String() string {
	switch k {
	case KeyTransport:
		return "ktri"
	case KeyAgreement:
		return "kari"
	}
	return "other"
}

// RecipientID is the certificate one RecipientInfo (for key agreement: one
// RecipientEncryptedKey) is for.
type RecipientID struct {
	Kind RecipientKind
	// Issuer (the DER Name, as in the certificate) and Serial, or
	// SubjectKeyID; for OtherRecipient all are empty.
	Issuer       []byte
	Serial       *big.Int
	SubjectKeyID []byte
	// Algorithm is the key encryption (ktri) or key agreement (kari)
	// algorithm.
	Algorithm asn1.ObjectIdentifier

	encryptedKeyLen int    // ktri: octets of the encrypted key
	ephemeral       []byte // kari: the originator's ephemeral public key, if given
}

// Envelope is what ParseEnvelope learns of an EnvelopedData or
// AuthEnvelopedData.
type Envelope struct {
	Auth              bool                  // AuthEnvelopedData (RFC 5083)
	ContentEncryption asn1.ObjectIdentifier // contentEncryptionAlgorithm
	Recipients        []RecipientID
	ContentLength     int64 // octets of encrypted content

	// byName indexes Recipients by issuer and serial number ("i" keys)
	// and subject key identifier ("s" keys), so that checking thousands
	// of certificates against thousands of RecipientInfos stays linear.
	byName map[string][]int
}

func issuerSerialKey(issuer []byte, serial *big.Int) string {
	return "i" + string(issuer) + "\x00" + serial.String()
}

func skiKey(ski []byte) string { return "s" + string(ski) }

func (e *Envelope) index() {
	e.byName = make(map[string][]int, len(e.Recipients))
	for i, id := range e.Recipients {
		switch {
		case id.Issuer != nil && id.Serial != nil:
			k := issuerSerialKey(id.Issuer, id.Serial)
			e.byName[k] = append(e.byName[k], i)
		case id.SubjectKeyID != nil:
			k := skiKey(id.SubjectKeyID)
			e.byName[k] = append(e.byName[k], i)
		}
	}
}

// Includes reports whether one of the envelope's RecipientInfos names cert
// with a key of its type: a key-transport RecipientInfo (rsaEncryption or
// RSAES-OAEP, the encrypted key as long as the RSA modulus) for an RSA
// certificate, a key-agreement one (an ECDH scheme of RFC 5753, the
// ephemeral key on the certificate's curve) for an EC certificate.
func (e *Envelope) Includes(cert *x509.Certificate) bool {
	if cert == nil {
		return false
	}
	if e.byName == nil { // an Envelope not made by ParseEnvelope
		for _, id := range e.Recipients {
			if id.Names(cert) {
				return true
			}
		}
		return false
	}
	var cands []int
	if cert.SerialNumber != nil {
		cands = append(cands, e.byName[issuerSerialKey(cert.RawIssuer, cert.SerialNumber)]...)
	}
	if len(cert.SubjectKeyId) > 0 {
		cands = append(cands, e.byName[skiKey(cert.SubjectKeyId)]...)
	}
	for _, i := range cands {
		if e.Recipients[i].Names(cert) {
			return true
		}
	}
	return false
}

// Names reports whether the RecipientID names cert and its kind fits the
// certificate's key (see [Envelope.Includes]).
func (id RecipientID) Names(cert *x509.Certificate) bool {
	if cert == nil || id.Kind == OtherRecipient {
		return false
	}
	named := false
	if id.Issuer != nil {
		named = id.Serial != nil && cert.SerialNumber != nil && bytes.Equal(id.Issuer, cert.RawIssuer) && id.Serial.Cmp(cert.SerialNumber) == 0
	} else {
		named = namesSKI(id.SubjectKeyID, cert)
	}
	if !named {
		return false
	}
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		// RFC 8017 §7.1.1, §7.2.1: an RSA ciphertext is k octets, k the
		// length of the modulus.
		return id.Kind == KeyTransport && id.encryptedKeyLen == (pub.N.BitLen()+7)/8 &&
			(id.Algorithm.Equal(oidRSAEncryption()) || id.Algorithm.Equal(oidRSAESOAEP()))
	case *ecdsa.PublicKey:
		if id.Kind != KeyAgreement {
			return false
		}
		if _, ok := kdfHash(id.Algorithm); !ok {
			return false
		}
		if id.ephemeral == nil {
			return true // a static originator: its key is in a certificate elsewhere
		}
		pk, err := pub.ECDH()
		if err != nil {
			return false
		}
		_, err = pk.Curve().NewPublicKey(id.ephemeral)
		return err == nil
	}
	return false
}

// ParseEnvelopeBase64 is ParseEnvelope for the base64 body of an
// application/pkcs7-mime entity (RFC 8551 §3.3): line breaks and the white
// space around them are skipped, anything else that is not base64 is an
// error, and so is anything after the padding.
func ParseEnvelopeBase64(r io.Reader) (*Envelope, error) {
	env, err := ParseEnvelope(mimeentity.NewBase64Reader(r))
	var ce base64.CorruptInputError
	if errors.As(err, &ce) {
		return nil, malformed("base64: %v", err)
	}
	return env, err
}

// ParseEnvelope reads a BER- or DER-encoded ContentInfo holding an
// EnvelopedData (RFC 5652 §6.1) or an AuthEnvelopedData (RFC 5083 §2.1)
// from r, to its end, and returns its recipients. It streams the encrypted
// content; everything else is held in memory, at most 16 MiB.
//
// It returns ErrMalformed for anything that is not one such ContentInfo
// parsed completely (a truncation, trailing octets, a missing or detached
// encrypted content), ErrUnsupportedAlgorithm for another content type or a
// content encryption other than AES-CBC in an EnvelopedData or AES-GCM in
// an AuthEnvelopedData, ErrNotCiphertext when the encrypted content reads
// as text, and r's errors.
func ParseEnvelope(r io.Reader) (*Envelope, error) {
	s := &berStream{r: bufio.NewReader(r)}
	env, err := s.envelope()
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, malformed("truncated")
	}
	return env, err
}

// berStream reads BER elements one header at a time.
type berStream struct {
	r    *bufio.Reader
	off  int64 // octets read
	meta int64 // octets held in memory
}

// berHeader is an element's identifier and length octets.
type berHeader struct {
	class, num int
	compound   bool
	length     int64 // -1: indefinite
	raw        []byte
	end        int64 // offset after the content, when definite
}

func (h berHeader) is(class, num int, compound bool) bool {
	return h.class == class && h.num == num && h.compound == compound
}

func (h berHeader) eoc() bool { return h.class == 0 && h.num == 0 && !h.compound && h.length == 0 }

func (s *berStream) byte() (byte, error) {
	c, err := s.r.ReadByte()
	if err == io.EOF {
		return 0, io.ErrUnexpectedEOF
	}
	if err == nil {
		s.off++
	}
	return c, err
}

// header reads identifier and length octets (X.690 §8.1.2, §8.1.3) of an
// element inside parent (nil: the outermost).
func (s *berStream) header(parent *berHeader) (berHeader, error) {
	var h berHeader
	id, err := s.byte()
	if err != nil {
		return h, err
	}
	h.raw = append(h.raw, id)
	h.class, h.compound, h.num = int(id>>6), id&0x20 != 0, int(id&0x1f)
	if h.num == 0x1f { // X.690 §8.1.2.4 high tag number form
		h.num = 0
		for i := 0; ; i++ {
			c, err := s.byte()
			if err != nil {
				return h, err
			}
			h.raw = append(h.raw, c)
			if i >= 3 {
				return h, malformed("bad tag")
			}
			h.num = h.num<<7 | int(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
	}
	l, err := s.byte()
	if err != nil {
		return h, err
	}
	h.raw = append(h.raw, l)
	switch {
	case l < 0x80: // §8.1.3.4 short form
		h.length = int64(l)
	case l == 0x80: // §8.1.3.6 indefinite form, constructed only
		if !h.compound {
			return h, malformed("indefinite length on a primitive element")
		}
		h.length = -1
	case l == 0xff:
		return h, malformed("reserved length octet")
	default: // §8.1.3.5 long form
		n := int(l & 0x7f)
		if n > 6 {
			return h, malformed("length of %d octets", n)
		}
		for range n {
			c, err := s.byte()
			if err != nil {
				return h, err
			}
			h.raw = append(h.raw, c)
			h.length = h.length<<8 | int64(c)
		}
	}
	if h.class == 0 && h.num == 0 && !h.eoc() {
		return h, malformed("tag 0 that is not end-of-contents")
	}
	if h.length >= 0 {
		h.end = s.off + h.length
		if parent != nil && parent.length >= 0 && h.end > parent.end {
			return h, malformed("element runs past its container")
		}
	}
	return h, nil
}

// more reports whether the constructed element c has another element: for
// the indefinite form, it consumes the end-of-contents octets.
func (s *berStream) more(c berHeader) (bool, error) {
	if c.length >= 0 {
		if s.off > c.end {
			return false, malformed("element runs past its container")
		}
		return s.off < c.end, nil
	}
	b, err := s.r.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return false, err
	}
	if b[0] == 0 && b[1] == 0 {
		s.r.Discard(2)
		s.off += 2
		return false, nil
	}
	return true, nil
}

// child reads the header of the next element of c; it is an error if there
// is none.
func (s *berStream) child(c berHeader, what string) (berHeader, error) {
	ok, err := s.more(c)
	if err != nil {
		return berHeader{}, err
	}
	if !ok {
		return berHeader{}, malformed("%s missing", what)
	}
	h, err := s.header(&c)
	if err == nil && h.eoc() {
		err = malformed("%s missing", what)
	}
	return h, err
}

// end checks that c has no more elements.
func (s *berStream) end(c berHeader, what string) error {
	more, err := s.more(c)
	if err == nil && more {
		err = malformed("unexpected element after %s", what)
	}
	return err
}

// element reads the rest of the element h into memory and parses it.
func (s *berStream) element(h berHeader) (berElem, error) {
	buf := append([]byte(nil), h.raw...)
	buf, err := s.appendContent(buf, h, 0)
	if err != nil {
		return berElem{}, err
	}
	e, rest, err := parseBER(buf, 0)
	if err == nil && len(rest) != 0 {
		err = malformed("internal error: %d octets left", len(rest))
	}
	return e, err
}

func (s *berStream) appendContent(buf []byte, h berHeader, depth int) ([]byte, error) {
	if depth > maxBERDepth {
		return nil, malformed("nesting deeper than %d", maxBERDepth)
	}
	if h.length >= 0 {
		if s.meta+h.length > maxEnvelopeMeta {
			return nil, malformed("more than %d octets besides the encrypted content", maxEnvelopeMeta)
		}
		s.meta += h.length
		b := bytes.NewBuffer(buf)
		n, err := io.CopyN(b, s.r, h.length)
		s.off += n
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return b.Bytes(), err
	}
	for {
		c, err := s.header(&h)
		if err != nil {
			return nil, err
		}
		buf = append(buf, c.raw...)
		if c.eoc() {
			return buf, nil
		}
		if buf, err = s.appendContent(buf, c, depth+1); err != nil {
			return nil, err
		}
	}
}

// skipOctets streams the value of an OCTET STRING (primitive, or
// constructed of segments, X.690 §8.7.3) through st.
func (s *berStream) skipOctets(h berHeader, st *mimeentity.ByteStats, depth int) error {
	if depth > maxBERDepth {
		return malformed("OCTET STRING nested too deep")
	}
	if !h.compound {
		n, err := io.CopyN(st, s.r, h.length)
		s.off += n
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	for {
		more, err := s.more(h)
		if err != nil || !more {
			return err
		}
		c, err := s.header(&h)
		if err != nil {
			return err
		}
		if !c.is(classUniversal, numOctetString, c.compound) { // X.690 §8.7.3.2
			return malformed("segment of a constructed OCTET STRING is not an OCTET STRING")
		}
		if err := s.skipOctets(c, st, depth+1); err != nil {
			return err
		}
	}
}

func (s *berStream) envelope() (*Envelope, error) {
	// RFC 5652 §3: ContentInfo ::= SEQUENCE { contentType, content [0]
	// EXPLICIT ANY DEFINED BY contentType }.
	ci, err := s.header(nil)
	if err != nil {
		return nil, err
	}
	if !ci.is(classUniversal, numSequence, true) {
		return nil, malformed("ContentInfo is not a SEQUENCE")
	}
	h, err := s.child(ci, "contentType")
	if err != nil {
		return nil, err
	}
	e, err := s.element(h)
	if err != nil {
		return nil, err
	}
	ct, err := e.oid()
	if err != nil {
		return nil, err
	}
	env := &Envelope{}
	switch {
	case ct.Equal(oidEnvelopedData()):
	case ct.Equal(oidAuthEnvelopedData()):
		env.Auth = true
	default:
		return nil, fmt.Errorf("%w: content type %v is neither EnvelopedData nor AuthEnvelopedData", ErrUnsupportedAlgorithm, ct)
	}
	explicit, err := s.child(ci, "content")
	if err != nil {
		return nil, err
	}
	if !explicit.is(classContext, 0, true) {
		return nil, malformed("content [0] expected")
	}
	ed, err := s.child(explicit, "content")
	if err != nil {
		return nil, err
	}
	if !ed.is(classUniversal, numSequence, true) {
		return nil, malformed("content is not a SEQUENCE")
	}
	if err := s.envelopedData(ed, env); err != nil {
		return nil, err
	}
	if err := s.end(explicit, "content"); err != nil {
		return nil, err
	}
	if err := s.end(ci, "content"); err != nil {
		return nil, err
	}
	if _, err := s.r.ReadByte(); err != io.EOF {
		if err != nil {
			return nil, err
		}
		return nil, malformed("octets after the ContentInfo")
	}
	env.index()
	return env, nil
}

// envelopedData reads EnvelopedData ::= SEQUENCE { version,
// originatorInfo [0] IMPLICIT OPTIONAL, recipientInfos,
// encryptedContentInfo, unprotectedAttrs [1] IMPLICIT OPTIONAL } (RFC 5652
// §6.1) or AuthEnvelopedData ::= SEQUENCE { version, originatorInfo [0]
// OPTIONAL, recipientInfos, authEncryptedContentInfo, authAttrs [1]
// OPTIONAL, mac, unauthAttrs [2] OPTIONAL } (RFC 5083 §2.1).
func (s *berStream) envelopedData(ed berHeader, env *Envelope) error {
	h, err := s.child(ed, "version")
	if err != nil {
		return err
	}
	v, err := s.element(h)
	if err != nil {
		return err
	}
	if _, err := v.smallInt(); err != nil {
		return err
	}
	if h, err = s.child(ed, "recipientInfos"); err != nil {
		return err
	}
	if h.is(classContext, 0, true) { // originatorInfo: certificates and CRLs
		if _, err := s.element(h); err != nil {
			return err
		}
		if h, err = s.child(ed, "recipientInfos"); err != nil {
			return err
		}
	}
	if !h.is(classUniversal, numSet, true) {
		return malformed("recipientInfos expected")
	}
	set, err := s.element(h)
	if err != nil {
		return err
	}
	ris, err := set.children()
	if err != nil {
		return err
	}
	if len(ris) == 0 {
		return malformed("no RecipientInfo") // RFC 5652 §6.1: SIZE (1..MAX)
	}
	for _, ri := range ris {
		ids, err := recipientIDs(ri)
		if err != nil {
			return err
		}
		env.Recipients = append(env.Recipients, ids...)
	}

	eci, err := s.child(ed, "EncryptedContentInfo")
	if err != nil {
		return err
	}
	if err := s.encryptedContentInfo(eci, env); err != nil {
		return err
	}

	// What may follow: unprotectedAttrs [1] (EnvelopedData); authAttrs
	// [1], mac, unauthAttrs [2] (AuthEnvelopedData). When more reports
	// false, the end of ed has been read.
	next := func() (*berHeader, error) {
		more, err := s.more(ed)
		if err != nil || !more {
			return nil, err
		}
		h, err := s.header(&ed)
		if err == nil && h.eoc() {
			err = malformed("end-of-contents in a definite-length element")
		}
		return &h, err
	}
	f, err := next()
	if err != nil {
		return err
	}
	if !env.Auth {
		if f == nil {
			return nil
		}
		if !f.is(classContext, 1, true) {
			return malformed("unexpected element after EncryptedContentInfo")
		}
		if _, err := s.element(*f); err != nil { // unprotectedAttrs
			return err
		}
		return s.end(ed, "unprotectedAttrs")
	}
	if f != nil && f.is(classContext, 1, true) { // authAttrs
		if _, err := s.element(*f); err != nil {
			return err
		}
		if f, err = next(); err != nil {
			return err
		}
	}
	if f == nil || !f.is(classUniversal, numOctetString, f.compound) {
		return malformed("mac expected")
	}
	mac, err := s.element(*f)
	if err != nil {
		return err
	}
	tag, err := mac.octets()
	if err != nil {
		return err
	}
	if n := len(tag); n < 12 || n > 16 { // RFC 5084 §3.2 AES-GCM-ICVlen
		return malformed("mac of %d octets", n)
	}
	if f, err = next(); err != nil || f == nil {
		return err
	}
	if !f.is(classContext, 2, true) {
		return malformed("unexpected element after mac")
	}
	if _, err := s.element(*f); err != nil { // unauthAttrs
		return err
	}
	return s.end(ed, "unauthAttrs")
}

// encryptedContentInfo reads EncryptedContentInfo ::= SEQUENCE {
// contentType, contentEncryptionAlgorithm, encryptedContent [0] IMPLICIT
// OCTET STRING OPTIONAL } (RFC 5652 §6.1), streaming the encrypted content.
func (s *berStream) encryptedContentInfo(eci berHeader, env *Envelope) error {
	if !eci.is(classUniversal, numSequence, true) {
		return malformed("EncryptedContentInfo expected")
	}
	h, err := s.child(eci, "contentType")
	if err != nil {
		return err
	}
	e, err := s.element(h)
	if err != nil {
		return err
	}
	if _, err := e.oid(); err != nil {
		return err
	}
	if h, err = s.child(eci, "contentEncryptionAlgorithm"); err != nil {
		return err
	}
	if e, err = s.element(h); err != nil {
		return err
	}
	alg, params, err := e.algorithm()
	if err != nil {
		return err
	}
	ca, err := parseContentAlgorithm(alg, params)
	if err != nil {
		return err
	}
	// RFC 5083 §1, RFC 5084: GCM in an AuthEnvelopedData, CBC in an
	// EnvelopedData.
	if ca.gcm != env.Auth {
		return fmt.Errorf("%w: %v in the wrong content type", ErrUnsupportedAlgorithm, alg)
	}
	env.ContentEncryption = alg
	more, err := s.more(eci)
	if err != nil {
		return err
	}
	if !more {
		return malformed("detached encrypted content")
	}
	if h, err = s.header(&eci); err != nil {
		return err
	}
	if !h.is(classContext, 0, h.compound) {
		return malformed("encryptedContent [0] expected")
	}
	var st mimeentity.ByteStats
	if err := s.skipOctets(h, &st, 0); err != nil {
		return err
	}
	env.ContentLength = st.Len()
	switch {
	case st.Len() == 0:
		return malformed("empty encrypted content")
	case !ca.gcm && st.Len()%16 != 0: // RFC 5652 §6.3 padding to the AES block
		return malformed("CBC ciphertext of %d octets", st.Len())
	case !st.Random():
		return ErrNotCiphertext
	}
	return s.end(eci, "encryptedContent")
}

// recipientIDs lists the certificates one RecipientInfo (RFC 5652 §6.2)
// names. A kekri, pwri or ori yields one OtherRecipient.
func recipientIDs(ri berElem) ([]RecipientID, error) {
	switch {
	case ri.is(classUniversal, numSequence, true): // ktri
		// KeyTransRecipientInfo ::= SEQUENCE { version, rid,
		// keyEncryptionAlgorithm, encryptedKey } (RFC 5652 §6.2.1).
		kids, err := ri.children()
		if err != nil {
			return nil, err
		}
		if len(kids) != 4 {
			return nil, malformed("KeyTransRecipientInfo")
		}
		if _, err := kids[0].smallInt(); err != nil {
			return nil, err
		}
		id := RecipientID{Kind: KeyTransport}
		if err := id.parseRID(kids[1], false); err != nil {
			return nil, err
		}
		if id.Algorithm, _, err = kids[2].algorithm(); err != nil {
			return nil, err
		}
		if !kids[3].is(classUniversal, numOctetString, kids[3].compound) {
			return nil, malformed("encryptedKey")
		}
		ek, err := kids[3].octets()
		if err != nil {
			return nil, err
		}
		id.encryptedKeyLen = len(ek)
		return []RecipientID{id}, nil
	case ri.is(classContext, 1, true): // kari
		return keyAgreeIDs(ri)
	case ri.compound && ri.class == classContext && ri.num >= 2 && ri.num <= 4: // kekri, pwri, ori
		if _, err := ri.children(); err != nil {
			return nil, err
		}
		return []RecipientID{{Kind: OtherRecipient}}, nil
	}
	return nil, malformed("RecipientInfo")
}

// keyAgreeIDs reads KeyAgreeRecipientInfo ::= SEQUENCE { version,
// originator [0] EXPLICIT, ukm [1] EXPLICIT OPTIONAL,
// keyEncryptionAlgorithm, recipientEncryptedKeys } (RFC 5652 §6.2.2).
func keyAgreeIDs(ri berElem) ([]RecipientID, error) {
	kids, err := ri.children()
	if err != nil {
		return nil, err
	}
	if len(kids) != 4 && len(kids) != 5 {
		return nil, malformed("KeyAgreeRecipientInfo")
	}
	if _, err := kids[0].smallInt(); err != nil {
		return nil, err
	}
	if !kids[1].is(classContext, 0, true) {
		return nil, malformed("KeyAgreeRecipientInfo originator")
	}
	orig, err := kids[1].children()
	if err != nil {
		return nil, err
	}
	if len(orig) != 1 {
		return nil, malformed("OriginatorIdentifierOrKey")
	}
	var ephemeral []byte
	if orig[0].is(classContext, 1, true) { // originatorKey [1] (RFC 5753 §3.1.1)
		opk, err := orig[0].children()
		if err != nil {
			return nil, err
		}
		if len(opk) != 2 || !opk[1].is(classUniversal, numBitString, false) {
			return nil, malformed("OriginatorPublicKey")
		}
		if _, _, err := opk[0].algorithm(); err != nil {
			return nil, err
		}
		bits := opk[1].content
		if len(bits) < 2 || bits[0] != 0 {
			return nil, malformed("originator public key BIT STRING")
		}
		ephemeral = bits[1:]
	}
	if len(kids) == 5 && !kids[2].is(classContext, 1, true) {
		return nil, malformed("KeyAgreeRecipientInfo ukm")
	}
	alg, _, err := kids[len(kids)-2].algorithm()
	if err != nil {
		return nil, err
	}
	keys := kids[len(kids)-1]
	if !keys.is(classUniversal, numSequence, true) {
		return nil, malformed("RecipientEncryptedKeys")
	}
	reks, err := keys.children()
	if err != nil {
		return nil, err
	}
	if len(reks) == 0 {
		return nil, malformed("no RecipientEncryptedKey")
	}
	var out []RecipientID
	for _, rek := range reks {
		// RecipientEncryptedKey ::= SEQUENCE { rid, encryptedKey }.
		f, err := rek.children()
		if err != nil {
			return nil, err
		}
		if len(f) != 2 || !f[1].is(classUniversal, numOctetString, f[1].compound) {
			return nil, malformed("RecipientEncryptedKey")
		}
		if _, err := f[1].octets(); err != nil {
			return nil, err
		}
		id := RecipientID{Kind: KeyAgreement, Algorithm: alg, ephemeral: ephemeral}
		if err := id.parseRID(f[0], true); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// parseRID reads a RecipientIdentifier (RFC 5652 §6.2.1: issuerAndSerialNumber
// or subjectKeyIdentifier [0] IMPLICIT) or, for key agreement, a
// KeyAgreeRecipientIdentifier (§6.2.2: issuerAndSerialNumber or rKeyId [0]
// IMPLICIT RecipientKeyIdentifier ::= SEQUENCE { subjectKeyIdentifier, date
// OPTIONAL, other OPTIONAL }).
func (id *RecipientID) parseRID(rid berElem, agree bool) error {
	switch {
	case rid.is(classUniversal, numSequence, true):
		kids, err := rid.children()
		if err != nil {
			return err
		}
		if len(kids) != 2 || !kids[0].is(classUniversal, numSequence, true) {
			return malformed("IssuerAndSerialNumber")
		}
		if id.Serial, err = kids[1].bigInt(); err != nil {
			return err
		}
		id.Issuer = kids[0].full
		return nil
	case agree && rid.is(classContext, 0, true):
		rk, err := rid.children()
		if err != nil {
			return err
		}
		if len(rk) < 1 || len(rk) > 3 || !rk[0].is(classUniversal, numOctetString, rk[0].compound) {
			return malformed("RecipientKeyIdentifier")
		}
		id.SubjectKeyID, err = rk[0].octets()
		return err
	case !agree && rid.is(classContext, 0, rid.compound):
		var err error
		id.SubjectKeyID, err = rid.octets()
		return err
	}
	return malformed("RecipientIdentifier")
}
