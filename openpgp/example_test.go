package openpgp_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log"
	"strings"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/openpgp"
)

// The header fields of the multipart/encrypted message, for a boundary the
// caller chose in advance (from NewBoundary, normally).
func ExampleOuterFields() {
	for _, f := range openpgp.OuterFields("=_danemilter_0123456789abcdef01234567") {
		fmt.Printf("%s: %s\n", f.Name, f.Value)
	}
	// Output:
	// Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="=_danemilter_0123456789abcdef01234567"
}

func ExampleCheckBoundary() {
	for _, b := range []string{"=_danemilter_0123456789abcdef01234567", "simple", "has space_", "toolong_" + strings.Repeat("x", 70)} {
		fmt.Println(openpgp.CheckBoundary(b) == nil)
	}
	// Output:
	// true
	// false
	// true
	// false
}

// Select the keys of an OPENPGPKEY RRset: a record whose key is for
// somebody else yields a reason instead of a key. The keys would come from
// a DNSSEC-secure answer; here they are made on the spot.
func ExampleSelectKeys() {
	record := func(email string) dns.RR {
		e, err := pgp.NewEntity("", "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
		if err != nil {
			log.Fatal(err)
		}
		var b bytes.Buffer
		if err := e.Serialize(&b); err != nil {
			log.Fatal(err)
		}
		return &dns.OPENPGPKEY{
			Hdr:       dns.RR_Header{Name: "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._openpgpkey.example.com.", Rrtype: dns.TypeOPENPGPKEY, Class: dns.ClassINET},
			PublicKey: base64.StdEncoding.EncodeToString(b.Bytes()),
		}
	}
	rrs := []dns.RR{record("hugh@example.com"), record("hugo@example.com")}

	keys, rejected := openpgp.SelectKeys("Hugh@example.com", rrs, time.Now())
	for _, k := range keys {
		fmt.Println("key:", k.Algorithm, len(k.Fingerprint), "hex digits")
	}
	for _, r := range rejected {
		_, reason, _ := strings.Cut(r.Reason, ": ") // after "key <fingerprint>"
		fmt.Println("rejected:", reason)
	}
	// Output:
	// key: cv25519 40 hex digits
	// rejected: no user ID for Hugh@example.com (it names hugo@example.com)
}

// Encrypt a MIME entity and assemble the message the MTA passes on. The
// boundary is chosen first, so that the header can be written before the
// body.
func ExampleEncryptMIME() {
	key, err := pgp.NewEntity("Hugh", "", "hugh@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
	if err != nil {
		log.Fatal(err)
	}
	// The entity: the original Content-* fields, an empty line, the body,
	// in CRLF form.
	entity := "Content-Type: text/plain; charset=utf-8\r\n\r\nHello, Hugh.\r\n"
	boundary := "=_danemilter_example"

	var msg bytes.Buffer
	msg.WriteString("From: alice@example.org\r\nTo: hugh@example.com\r\nMIME-Version: 1.0\r\n")
	for _, f := range openpgp.OuterFields(boundary) {
		fmt.Fprintf(&msg, "%s: %s\r\n", f.Name, f.Value)
	}
	msg.WriteString("\r\n")
	if _, err := openpgp.EncryptMIME(&msg, strings.NewReader(entity), []*pgp.Entity{key}, openpgp.Options{Boundary: boundary}); err != nil {
		log.Fatal(err)
	}

	// Print it, the armored lines elided.
	inArmor := false
	for _, line := range strings.Split(strings.TrimSuffix(msg.String(), "\r\n"), "\r\n") {
		switch {
		case strings.HasPrefix(line, "-----BEGIN"):
			inArmor = true
			fmt.Println(line)
			fmt.Println("...")
		case strings.HasPrefix(line, "-----END"):
			inArmor = false
			fmt.Println(line)
		case !inArmor:
			fmt.Println(line)
		}
	}
	// Output:
	// From: alice@example.org
	// To: hugh@example.com
	// MIME-Version: 1.0
	// Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="=_danemilter_example"
	//
	// This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)
	//
	// --=_danemilter_example
	// Content-Type: application/pgp-encrypted
	// Content-Description: PGP/MIME version identification
	//
	// Version: 1
	//
	// --=_danemilter_example
	// Content-Type: application/octet-stream; name="encrypted.asc"
	// Content-Description: OpenPGP encrypted message
	// Content-Disposition: inline; filename="encrypted.asc"
	//
	// -----BEGIN PGP MESSAGE-----
	// ...
	// -----END PGP MESSAGE-----
	//
	// --=_danemilter_example--
}
