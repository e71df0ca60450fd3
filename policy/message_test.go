package policy

import (
	"reflect"
	"testing"

	"github.com/danemilter/danemilter/reply"
)

func TestPlanMessage(t *testing.T) {
	enc := Decision{Action: Encrypt, Reason: "secure key"}
	encReq := Decision{Action: Encrypt, Required: true, Reason: "secure key"}
	plain := Decision{Action: Plain, Reason: "no key"}
	S, P := FormatSMIME, FormatOpenPGP
	r := func(addr string, d Decision, f ...Format) Recipient {
		return Recipient{Address: addr, Decision: d, Formats: f}
	}
	bigPGP := func(c Copy) bool { return c.Format == FormatOpenPGP }
	tests := []struct {
		name   string
		m      Message
		action Action
		reply  reply.Reply
		copies []Copy
	}{
		{"one format for all, first's preference", Message{Recipients: []Recipient{r("a", enc, P, S), r("b", enc, S, P)}},
			Encrypt, reply.Reply{}, []Copy{{Format: P, To: []string{"a", "b"}}}},
		{"first's preference impossible for all", Message{Recipients: []Recipient{r("a", enc, P, S), r("b", enc, S)}},
			Encrypt, reply.Reply{}, []Copy{{Format: S, To: []string{"a", "b"}}}},
		{"formats differ, split", Message{CanSplit: true, Recipients: []Recipient{r("a", enc, P), r("b", enc, S), r("c", enc, S), r("d", plain)}},
			Split, reply.Reply{}, []Copy{{Format: S, To: []string{"b", "c"}}, {Format: P, To: []string{"a"}}, {Plain: true, To: []string{"d"}}}},
		{"formats differ, no split, optional", Message{Recipients: []Recipient{r("a", enc, P), r("b", enc, S)}},
			Plain, reply.Reply{}, []Copy{{Format: S, To: []string{"b"}}, {Format: P, To: []string{"a"}}}},
		{"formats differ, no split, required", Message{Recipients: []Recipient{r("a", encReq, P), r("b", enc, S)}},
			TempFail, reply.FormatsDiffer(), []Copy{{Format: S, To: []string{"b"}}, {Format: P, To: []string{"a"}}}},
		{"too big to encrypt", Message{TooBig: true, Recipients: []Recipient{r("a", enc, S)}},
			Reject, reply.TooBig(), nil},
		{"too big, but plain", Message{TooBig: true, Recipients: []Recipient{r("a", plain)}},
			Plain, reply.Reply{}, nil},
		{"too big once encrypted", Message{CanSplit: true, TooBigEncrypted: bigPGP, Recipients: []Recipient{r("a", enc, S), r("b", enc, P)}},
			Reject, reply.TooBigEncrypted(), nil},
		{"fits once encrypted", Message{TooBigEncrypted: bigPGP, Recipients: []Recipient{r("a", enc, S)}},
			Encrypt, reply.Reply{}, []Copy{{Format: S, To: []string{"a"}}}},
		{"a refusal stays", Message{TooBig: true, Recipients: []Recipient{r("a", refuse(reply.KeyBogus(), false))}},
			TempFail, reply.KeyBogus(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PlanMessage(tt.m)
			if p.Action != tt.action || p.Reply != tt.reply || !reflect.DeepEqual(p.Copies, tt.copies) {
				t.Errorf("PlanMessage = %v %v %+v, want %v %v %+v", p.Action, p.Reply, p.Copies, tt.action, tt.reply, tt.copies)
			}
			if (p.Action == Reject || p.Action == TempFail) && p.Reason != p.Reply.Text {
				t.Errorf("reason %q is not the reply's text", p.Reason)
			}
		})
	}
	if p := PlanMessage(Message{Sealed: true, Recipients: []Recipient{r("a", plain)}}); p.Reason != "already encrypted to every recipient's key" {
		t.Errorf("sealed: reason %q", p.Reason)
	}
}
