package openpgp_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/danemilter/danemilter/openpgp"
)

// A sender signs a part the RFC 3156 way; the gateway verifies the
// multipart/signed entity against the keys it found for the sender, and
// later binds the signer to the sender's OPENPGPKEY record by comparing
// fingerprints.
func ExampleVerifyMIME() {
	sender, err := pgp.NewEntity("Sender", "", "sender@example.org", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		log.Fatal(err)
	}
	part := "Content-Type: text/plain\r\n\r\nHello.\r\n"
	var sig bytes.Buffer
	if err := pgp.ArmoredDetachSign(&sig, sender, strings.NewReader(part), nil); err != nil {
		log.Fatal(err)
	}
	entity := "Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"b\"\r\n" +
		"\r\n--b\r\n" + part + "\r\n--b\r\nContent-Type: application/pgp-signature\r\n\r\n" + sig.String() + "\r\n--b--\r\n"

	v := openpgp.VerifyMIME([]byte(entity), pgp.EntityList{sender}, time.Now())
	fmt.Println("valid:", v.Valid(), v.MICAlg)
	fmt.Println("signer is the record's key:", v.Fingerprint == fmt.Sprintf("%X", sender.PrimaryKey.Fingerprint))
	fmt.Printf("signed part: %q\n", v.Signed)

	tampered := strings.Replace(entity, "Hello.", "Hello!", 1)
	v = openpgp.VerifyMIME([]byte(tampered), pgp.EntityList{sender}, time.Now())
	fmt.Println("tampered:", errors.Is(v.Err, openpgp.ErrBadSignature))
	// Output:
	// valid: true pgp-sha256
	// signer is the record's key: true
	// signed part: "Content-Type: text/plain\r\n\r\nHello.\r\n"
	// tampered: true
}
