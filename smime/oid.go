package smime

import "encoding/asn1"

// Object identifiers. They are functions returning a fresh value, not
// package variables, so that the package keeps no mutable shared state.

// Content types.
func oidData() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1} } // RFC 5652 §4

func oidEnvelopedData() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3} // RFC 5652 §6.1
}

func oidAuthEnvelopedData() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23} // RFC 5083 §2 id-ct-authEnvelopedData
}

// Content-encryption algorithms: RFC 3565 §4.1 (CBC), RFC 5084 §3.2 (GCM).
func oidAES128CBC() asn1.ObjectIdentifier { return aesOID(2) }
func oidAES192CBC() asn1.ObjectIdentifier { return aesOID(22) }
func oidAES256CBC() asn1.ObjectIdentifier { return aesOID(42) }
func oidAES128GCM() asn1.ObjectIdentifier { return aesOID(6) }
func oidAES192GCM() asn1.ObjectIdentifier { return aesOID(26) }
func oidAES256GCM() asn1.ObjectIdentifier { return aesOID(46) }

// Key-wrap algorithms: RFC 3565 §4.2 (id-aes*-wrap, RFC 3394).
func oidAES128Wrap() asn1.ObjectIdentifier { return aesOID(5) }
func oidAES192Wrap() asn1.ObjectIdentifier { return aesOID(25) }
func oidAES256Wrap() asn1.ObjectIdentifier { return aesOID(45) }

// aesOID is a child of aes (2.16.840.1.101.3.4.1), RFC 3565 §4.1.
func aesOID(n int) asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, n}
}

// RSA key transport.
func oidRSAEncryption() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1} // RFC 3370 §4.2.1
}
func oidRSAESOAEP() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7} // RFC 4055 §4.1, RFC 8017 A.2.1
}
func oidMGF1() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8} // RFC 4055 §2.2, RFC 8017 B.2.1
}
func oidPSpecified() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 9} // RFC 4055 §4.1, RFC 8017 A.2.1
}

// Hash functions: RFC 4055 §2.1.
func oidSHA1() asn1.ObjectIdentifier   { return asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26} }
func oidSHA224() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4} }
func oidSHA256() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1} }
func oidSHA384() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2} }
func oidSHA512() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3} }

// Elliptic curves: RFC 5480 §2.1.1.
func oidECPublicKey() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1} }
func oidP256() asn1.ObjectIdentifier        { return asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7} }
func oidP384() asn1.ObjectIdentifier        { return asn1.ObjectIdentifier{1, 3, 132, 0, 34} }
func oidP521() asn1.ObjectIdentifier        { return asn1.ObjectIdentifier{1, 3, 132, 0, 35} }

// ECDH key-agreement schemes with the ANSI X9.63 KDF, RFC 5753 §7.1.4
// (the arcs are SEC 1's). cofactorDH equals stdDH on the NIST prime
// curves, whose cofactor is 1.
func oidStdDHSHA1KDF() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 3, 133, 16, 840, 63, 0, 2} // dhSinglePass-stdDH-sha1kdf-scheme
}
func oidCofactorDHSHA1KDF() asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 3, 133, 16, 840, 63, 0, 3} // dhSinglePass-cofactorDH-sha1kdf-scheme
}

// oidStdDH returns dhSinglePass-stdDH-sha{224,256,384,512}kdf-scheme
// (1.3.132.1.11.n, n = 0..3).
func oidStdDH(n int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 3, 132, 1, 11, n} }

// oidCofactorDH returns dhSinglePass-cofactorDH-sha{224,256,384,512}kdf-scheme
// (1.3.132.1.14.n, n = 0..3).
func oidCofactorDH(n int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 3, 132, 1, 14, n} }
