package reply_test

import (
	"fmt"

	"github.com/danemilter/danemilter/reply"
)

func Example() {
	r := reply.KeyBogus()
	fmt.Println(r, r.Temporary())
	r = reply.NoUsableKey()
	fmt.Println(r.Code, r.Enhanced, r.Permanent())
	// Output:
	// 451 4.7.5 recipient key lookup failed DNSSEC validation true
	// 550 5.7.5 true
}
