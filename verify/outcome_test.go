package verify

import (
	"slices"
	"testing"

	"github.com/danemilter/danemilter/policy"
)

func TestFromAddresses(t *testing.T) {
	for _, tt := range []struct {
		msg  string
		want []string
	}{
		{"From: Alice <alice@a.example>\r\n\r\nx", []string{"alice@a.example"}},
		{"from : a@a.example, \"b@b.example\" <c@c.example>\r\n (d@d.example)\r\nTo: e@e.example\r\n\r\n", []string{"a@a.example", "b@b.example", "c@c.example", "d@d.example"}},
		{"From: a@a.example\nSubject: x\nFROM: b@b.example\n a@a.example\n\nFrom: body@b.example\n", []string{"a@a.example", "b@b.example"}},
		{"From: undisclosed:;\r\nFrom: @x, y@, group: z@z.example;\r\n\r\n", []string{"z@z.example"}},
		{"Subject: no From\r\n\r\nFrom: body@b.example\r\n", nil},
		{"X-From: x@x.example\r\nFrom x@y.example\r\n\r\n", nil},
	} {
		if got := FromAddresses(FromValues([]byte(tt.msg))); !slices.Equal(got, tt.want) {
			t.Errorf("%q: %q, want %q", tt.msg, got, tt.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	sig := func(r Result, b Binding) Signature { return Signature{Method: MethodSMIME, Result: r, Binding: b} }
	for _, tt := range []struct {
		name string
		sigs []Signature
		want policy.InboundOutcome
	}{
		{"unsigned", nil, policy.InboundNoPass},
		{"pass", []Signature{sig(ResultPolicy, BindingNoRecord), sig(ResultPass, BindingBound)}, policy.InboundPass},
		{"fail", []Signature{sig(ResultFail, BindingNotChecked)}, policy.InboundNoPass},
		{"bound, but only part of the message", []Signature{sig(ResultPolicy, BindingBound)}, policy.InboundNoPass},
		{"bogus", []Signature{sig(ResultPermError, BindingBogus)}, policy.InboundBogus},
		{"indeterminate beats bogus", []Signature{sig(ResultPermError, BindingBogus), sig(ResultTempError, BindingIndeterminate)}, policy.InboundIndeterminate},
		{"lookup not made", []Signature{sig(ResultTempError, BindingNotChecked)}, policy.InboundIndeterminate},
	} {
		if got := (&Report{Signatures: tt.sigs}).Outcome(); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	if r := NotVerified(ResultNeutral, ReasonTooBig); r.Outcome() != policy.InboundNoPass || !r.Signed() || r.Pass() {
		t.Errorf("not verified: %+v", r)
	}
}
