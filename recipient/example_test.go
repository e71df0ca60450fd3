package recipient_test

import (
	"context"
	"fmt"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/recipient"
)

// Example evaluates two recipients against the fake resolver, which proves
// for every name that no record exists.
func Example() {
	levels := policy.NewTable(policy.LevelDane)
	_ = levels.Set("bank.example", policy.LevelEncrypt)
	c := &recipient.Config{Resolver: &dane.Fake{}, Levels: levels}

	for _, addr := range []string{"alice@partner.example", "bob@bank.example"} {
		r := c.Evaluate(context.Background(), addr, "")
		fmt.Printf("%s level=%s outcome=%s: %s (%s)\n", addr, r.Match.Level, r.Outcome, r.Decision.Action, r.Decision.Reason)
	}
	// Output:
	// alice@partner.example level=dane outcome=no-key: plain (no secure key (no-key), policy dane)
	// bob@bank.example level=encrypt outcome=no-key: reject (encryption required but recipient has no usable key)
}
