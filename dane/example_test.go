package dane_test

import (
	"context"
	"fmt"

	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
)

func ExampleSMIMEAName() {
	// RFC 8162 §3.
	name, err := dane.SMIMEAName("bosun@example.com", false)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(name)
	// Output:
	// f10e7de079689f55c0cdd6782e4dd1448c84006962a4bd832e8eff73._smimecert.example.com.
}

func ExampleFake() {
	var r dane.Fake
	ctx := context.Background()

	// A name nobody set is proven absent, as in a signed zone.
	res := r.Lookup(ctx, "unknown._smimecert.example.com.", dns.TypeSMIMEA)
	fmt.Println(res.Status)

	// SetStatus switches a name to another outcome.
	r.SetStatus("broken._smimecert.example.com.", dns.TypeSMIMEA, dane.StatusBogus, dane.ErrBogus)
	res = r.Lookup(ctx, "broken._smimecert.example.com.", dns.TypeSMIMEA)
	fmt.Println(res.Status, res.Err)
	fmt.Println(r.Calls(), "lookups")
	// Output:
	// secure-denial
	// bogus dane: DNSSEC validation failed (bogus)
	// 2 lookups
}
