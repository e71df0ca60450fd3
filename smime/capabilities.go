package smime

import (
	"encoding/asn1"
	"slices"
)

// The cipher "auto" (issue 14). RFC 8551 §2.5.2: a sending agent SHOULD
// use the SMIMECapabilities a recipient announced in its signed mail to
// choose the content-encryption algorithm; §2.7.1 guides the choice when
// nothing is known: AES-256-CBC, which every agent in use reads. A copy
// read by several recipients must use an algorithm all of them announced.

// AutoCipher returns the content cipher for one copy read by agents that
// announced readers (the capability OIDs of each reader's SMIMECapabilities,
// as harvest.ParseCapabilities returns them; nil or empty: nothing known):
// the strongest of AES-256-GCM and AES-128-GCM that every reader announced,
// else AES-256-CBC. No readers gives AES-256-CBC.
func AutoCipher(readers [][]asn1.ObjectIdentifier) Cipher {
	if len(readers) == 0 {
		return AES256CBC
	}
	for _, c := range []Cipher{AES256GCM, AES128GCM} { // strongest first
		p, _ := c.params()
		all := true
		for _, caps := range readers {
			if !slices.ContainsFunc(caps, p.oid.Equal) {
				all = false
				break
			}
		}
		if all {
			return c
		}
	}
	return AES256CBC
}

// AnnouncesOAEP reports whether caps has id-RSAES-OAEP (RFC 8551 §2.5.2,
// RFC 4055 §4.1: the agent decrypts RSAES-OAEP key transport).
func AnnouncesOAEP(caps []asn1.ObjectIdentifier) bool {
	return slices.ContainsFunc(caps, oidRSAESOAEP().Equal)
}
