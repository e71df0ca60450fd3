package address_test

import (
	"errors"
	"fmt"

	"github.com/danemilter/danemilter/address"
)

// The domain is case-insensitive and comes back as A-labels; the local part
// is kept as written.
func ExampleSplit() {
	for _, a := range []string{"Jörg.Müller@BÜCHER.example.", "bosun@exa mple.com", "no-at-sign"} {
		local, domain, err := address.Split(a)
		if errors.Is(err, address.ErrInvalid) {
			fmt.Println(err)
			continue
		}
		fmt.Println(local, domain)
	}
	// Output:
	// Jörg.Müller xn--bcher-kva.example
	// address: invalid address: domain of "bosun@exa mple.com": idna: disallowed rune U+0020
	// address: invalid address: "no-at-sign" has no @
}

// Cut never fails: it is for matching what the MTA passes against
// configuration.
func ExampleCut() {
	fmt.Println(address.Cut("CEO+tag@Bank.Example."))
	fmt.Println(address.Cut("postmaster"))
	// Output:
	// CEO+tag bank.example true
	// postmaster  false
}

// Configuration entries name a domain, or with a leading dot every domain
// below it; the nearest entry applies.
func ExampleLookupDomain() {
	ciphers := map[string]string{}
	for k, v := range map[string]string{"Partner.example": "aes256-gcm", ".partner.example": "aes128-cbc"} {
		p, err := address.ParseDomainPattern(k)
		if err != nil {
			fmt.Println(err)
			return
		}
		ciphers[p] = v
	}
	for _, d := range []string{"partner.example", "mail.eu.partner.example", "other.example"} {
		v, key, ok := address.LookupDomain(ciphers, d)
		fmt.Println(d, v, key, ok)
	}
	_, err := address.ParseDomainPattern("..partner.example")
	fmt.Println(err)
	// Output:
	// partner.example aes256-gcm partner.example true
	// mail.eu.partner.example aes128-cbc .partner.example true
	// other.example   false
	// "..partner.example" is not a domain name
}
