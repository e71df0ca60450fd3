package policy_test

import (
	"fmt"

	"github.com/danemilter/danemilter/policy"
)

func Example() {
	t := policy.NewTable(policy.LevelDane)
	_ = t.Set("partner.example", policy.LevelEncrypt)

	m := t.Lookup("alice@partner.example")
	d := policy.Decide(m.Level, policy.Insecure)
	fmt.Println(m.Level, d.Action, d.Reply.Code, d.Reply.Enhanced)

	m = t.Lookup("bob@elsewhere.example")
	d = policy.Decide(m.Level, policy.Bogus)
	fmt.Println(m.Level, d.Action, d.Reply.Code, d.Reply.Enhanced)
	// Output:
	// encrypt reject 550 5.7.5
	// dane tempfail 451 4.7.5
}
