package milter

import (
	"net/netip"
	"testing"
)

func TestDirectionRules(t *testing.T) {
	out := Outbound
	rules := DirectionRules{
		InboundDaemons:   []string{"MX", "MTA"},
		OutboundDaemons:  []string{"ORIGINATING", "MSA"},
		Authenticated:    &out,
		OutboundNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("192.0.2.0/24")},
		Default:          Inbound,
	}
	for _, tc := range []struct {
		name string
		c    client
		want Direction
		rule string
	}{
		{"nothing known", client{}, Inbound, RuleDefault},
		{"remote client", client{addr: "198.51.100.7", port: "40000"}, Inbound, RuleDefault},
		{"Postfix submission", client{daemonName: "ORIGINATING", addr: "198.51.100.7"}, Outbound, RuleOutboundDaemons},
		{"Sendmail MSA", client{daemonName: "MSA", addr: "IPv6:2001:db8::7"}, Outbound, RuleOutboundDaemons},
		// The daemon lists come first: mail to the MX from a host of
		// outbound_networks, or with AUTH, is still inbound.
		{"inbound daemon beats networks", client{daemonName: "MX", addr: "127.0.0.1"}, Inbound, RuleInboundDaemons},
		{"inbound daemon beats auth", client{daemonName: "MTA", authAuthen: "alice"}, Inbound, RuleInboundDaemons},
		{"unknown daemon name falls through", client{daemonName: "smtpd", addr: "198.51.100.7"}, Inbound, RuleDefault},
		{"authenticated", client{daemonName: "smtpd", addr: "198.51.100.7", authAuthen: "alice"}, Outbound, RuleAuthenticated},
		{"authenticated beats local submission", client{authAuthen: "alice", port: "0"}, Outbound, RuleAuthenticated},
		{"local submission", client{addr: "198.51.100.7", port: "0"}, Outbound, RuleLocalSubmission},
		{"loopback v4", client{addr: "127.0.0.1", port: "40000"}, Outbound, RuleOutboundNetworks},
		{"loopback v6 Postfix", client{addr: "::1"}, Outbound, RuleOutboundNetworks},
		{"loopback v6 Sendmail", client{addr: "IPv6:::1"}, Outbound, RuleOutboundNetworks},
		{"v4-mapped", client{addr: "::ffff:192.0.2.9"}, Outbound, RuleOutboundNetworks},
		{"bracketed", client{addr: "[192.0.2.9]"}, Outbound, RuleOutboundNetworks},
		{"not an address", client{addr: "unknown"}, Inbound, RuleDefault},
	} {
		d, rule := rules.classify(tc.c)
		if d != tc.want || rule != tc.rule {
			t.Errorf("%s: %v rule=%s, want %v rule=%s", tc.name, d, rule, tc.want, tc.rule)
		}
	}

	// Authenticated = "inbound", and the rule off.
	in := Inbound
	r2 := DirectionRules{Authenticated: &in, Default: Outbound}
	if d, rule := r2.classify(client{authAuthen: "x"}); d != Inbound || rule != RuleAuthenticated {
		t.Errorf("authenticated=inbound: %v %s", d, rule)
	}
	r2.Authenticated = nil
	if d, rule := r2.classify(client{authAuthen: "x"}); d != Outbound || rule != RuleDefault {
		t.Errorf("authenticated off: %v %s", d, rule)
	}
	// The zero value: only local submission is outbound.
	var zero DirectionRules
	if d, rule := zero.classify(client{addr: "127.0.0.1"}); d != Inbound || rule != RuleDefault {
		t.Errorf("zero rules, loopback: %v %s", d, rule)
	}
}
