package milter

import (
	"bytes"
	"slices"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/policy"

	"github.com/danemilter/danemilter/milter/miltertest"
)

// TestLocalSubmissionSplit: for Postfix's local submissions ({client_port}
// "0"), whose recipients the milter sees only after canonical rewriting, a
// split deletes no recipient: every copy, the encrypted one too, is
// re-injected and the transaction is discarded, so each recipient gets one
// readable copy whatever the rewriting. Over SMTP the encrypted copy stays in
// the transaction as before.
func TestLocalSubmissionSplit(t *testing.T) {
	fake := &dane.Fake{}
	alice := newUser(t, "alice@partner.example")
	alice.publish(t, fake)
	plain := readEML(t, "plain.eml")
	rcpts := []string{"alice@partner.example", "carol@partner.example"}
	for _, tc := range []struct {
		name       string
		clientPort string
		want       gomilter.ActionType
		reinjected int
	}{
		{"local submission", "0", gomilter.ActionDiscard, 2},
		{"smtp", "41234", gomilter.ActionAccept, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			addr := start(t, Options{Resolver: fake, Levels: policy.NewTable(policy.LevelDane), Reinjector: rec})
			res, err := miltertest.SimulateMacros("tcp", addr, "QL1", "s@local.example", rcpts, plain, map[string]string{gomilter.MacroClientPort: tc.clientPort})
			if err != nil {
				t.Fatal(err)
			}
			if res.Final.Type != tc.want {
				t.Fatalf("final %+v, want %v", res.Final, tc.want)
			}
			if len(rec.calls) != tc.reinjected {
				t.Fatalf("%d copies re-injected, want %d", len(rec.calls), tc.reinjected)
			}
			got := map[string]int{}
			for _, c := range rec.calls {
				for _, r := range c.rcpts {
					got[r]++
				}
				if slices.Contains(c.rcpts, "alice@partner.example") {
					if d := alice.decrypt(t, c.msg); !bytes.Equal(d, entity(t, plain)) {
						t.Errorf("re-injected encrypted copy does not decrypt to the original")
					}
				}
			}
			if tc.want == gomilter.ActionDiscard {
				if len(res.Modifications) != 0 {
					t.Errorf("discarded transaction still asked for %d changes", len(res.Modifications))
				}
				if got["alice@partner.example"] != 1 || got["carol@partner.example"] != 1 {
					t.Errorf("re-injected copies per recipient %v, want one each", got)
				}
				return
			}
			if del := deleted(res.Modifications); !slices.Equal(del, []string{"carol@partner.example"}) {
				t.Errorf("deleted %v, want carol", del)
			}
		})
	}
}
