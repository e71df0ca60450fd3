package verify

import (
	"context"
	"testing"

	"github.com/danemilter/danemilter/policy"
)

func TestConclude(t *testing.T) {
	pass := &Report{From: "ceo@bank.example", Signatures: []Signature{{Method: MethodSMIME, Part: "1", Result: ResultPass, Valid: true, Binding: BindingBound}}}
	unsigned := &Report{From: "ceo@bank.example"}
	tests := []struct {
		name   string
		rep    *Report
		err    error
		addr   string
		want   policy.InboundOutcome
		result Result // of the first signature of the concluded report, "" for none
	}{
		{"pass for the entry's address", pass, nil, "ceo@bank.example", policy.InboundPass, ResultPass},
		{"pass, address in other case", pass, nil, "CEO@Bank.Example", policy.InboundPass, ResultPass},
		{"pass bound to another address", pass, nil, "boss@bank.example", policy.InboundNoPass, ResultPass},
		{"unsigned", unsigned, nil, "ceo@bank.example", policy.InboundNoPass, ""},
		{"cut short without a pass", unsigned, context.DeadlineExceeded, "ceo@bank.example", policy.InboundIndeterminate, ResultTempError},
		{"cut short after a pass", pass, context.DeadlineExceeded, "ceo@bank.example", policy.InboundPass, ResultPass},
		{"no report", nil, context.Canceled, "ceo@bank.example", policy.InboundError, ResultTempError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, got := Conclude(tt.rep, tt.err, tt.addr)
			if got != tt.want {
				t.Errorf("outcome %v, want %v", got, tt.want)
			}
			var r Result
			if len(rep.Signatures) > 0 {
				r = rep.Signatures[0].Result
			}
			if r != tt.result {
				t.Errorf("result %q, want %q", r, tt.result)
			}
		})
	}
}
