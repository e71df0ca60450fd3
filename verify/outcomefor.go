package verify

import (
	"strings"

	"github.com/danemilter/danemilter/policy"
)

// ReasonCutShort is the reason of a report that Verify could not finish.
const ReasonCutShort = "not verified: verification did not finish in time"

// Conclude is what the daemon (and `danemilter verify`) conclude from what
// Verify returned, for the inbound policy entry of policyAddr, the From
// address whose entry applies (policy.InboundTable.Strictest):
//
//   - a nil report is an internal failure (InboundError);
//   - a report that ctx cut short (err != nil) without a pass is "not
//     verified, try later" (temperror, InboundIndeterminate): it must never
//     read as "checked, unsigned", which would refuse a require sender
//     permanently for a slow connection;
//   - a pass counts only when the signature is bound to policyAddr itself.
//     A From field such as `"ceo@bank.example" <attacker@evil.example>`
//     meets bank.example's require entry (the display name shows its
//     address), while the signature, bound to evil.example, proves nothing
//     about bank.example: no pass.
func Conclude(rep *Report, err error, policyAddr string) (*Report, policy.InboundOutcome) {
	if rep == nil {
		return NotVerified(ResultTempError, "not verified: internal error"), policy.InboundError
	}
	if err != nil && !rep.Pass() {
		return NotVerified(ResultTempError, ReasonCutShort), policy.InboundIndeterminate
	}
	o := rep.Outcome()
	if o == policy.InboundPass && !strings.EqualFold(rep.From, policyAddr) {
		return rep, policy.InboundNoPass
	}
	return rep, o
}
