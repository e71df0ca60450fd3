package config

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/danemilter/danemilter/milter"
	"github.com/danemilter/danemilter/policy"
)

func TestInboundDefaults(t *testing.T) {
	d, err := Parse("empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := d.DirectionRules
	if len(r.InboundDaemons) != 0 || !slices.Equal(r.OutboundDaemons, []string{"ORIGINATING"}) || r.Authenticated == nil ||
		*r.Authenticated != milter.Outbound || r.Default != milter.Inbound ||
		!slices.Equal(r.OutboundNetworks, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}) {
		t.Errorf("direction defaults %+v", r)
	}
	host, _ := os.Hostname()
	if d.InboundLevels.Default() != policy.InboundReport || d.RequireHold || d.Inbound.RequireAction != "reject" ||
		d.Inbound.MaxVerifySize != d.MaxMessageSize || (host != "" && d.Inbound.AuthservID != host) {
		t.Errorf("inbound defaults %+v", d.Inbound)
	}
	// The sample documents the same values.
	c, err := Load(sampleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Direction.Default != d.Direction.Default || *c.Direction.Authenticated != *d.Direction.Authenticated ||
		!slices.Equal(c.Direction.OutboundNetworks, d.Direction.OutboundNetworks) ||
		!slices.Equal(c.Direction.OutboundDaemons, d.Direction.OutboundDaemons) ||
		!slices.Equal(c.Direction.InboundDaemons, d.Direction.InboundDaemons) ||
		c.Inbound.Default != d.Inbound.Default || c.Inbound.AuthservID != d.Inbound.AuthservID ||
		c.Inbound.RequireAction != d.Inbound.RequireAction || c.Inbound.MaxVerifySize != d.Inbound.MaxVerifySize ||
		c.InboundLevels.Len() != 0 {
		t.Errorf("sample [direction]/[inbound] and defaults disagree:\n%s\n---\n%s", c, d)
	}
	for _, k := range []string{"[direction]", "[inbound]", "authserv_id = ", "require_action = 'reject'"} {
		if !strings.Contains(d.String(), k) {
			t.Errorf("effective configuration lacks %q", k)
		}
	}
}

// TestInboundVerifySizeDefault: the default is the smaller of
// max_message_size and the memory budget a message is verified within.
func TestInboundVerifySizeDefault(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
	}{
		{"", DefaultMemoryBudget},
		{"max_message_size = \"10MiB\"\n", 10 << 20},
		{"[limits]\nmemory_budget = \"16MiB\"\n", 16 << 20},
	} {
		c, err := Parse("t.toml", []byte(tc.in))
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if c.Inbound.MaxVerifySize != tc.want {
			t.Errorf("%q: max_verify_size %d, want %d", tc.in, c.Inbound.MaxVerifySize, tc.want)
		}
	}
}

func TestInboundAccepted(t *testing.T) {
	c, err := Parse("t.toml", []byte(`
[direction]
inbound_daemons = ["MX"]
outbound_daemons = ["ORIGINATING", "MSA"]
authenticated = ""
outbound_networks = ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]
default = "outbound"

[inbound]
default = "none"
authserv_id = "mx.example.org"
require_action = "hold"
max_verify_size = "10MiB"

[inbound.senders]
"bank.example" = "require"
"ceo@partner.example" = "require dry-run"
".example.net" = "report"
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.DirectionRules
	if r.Authenticated != nil || r.Default != milter.Outbound || len(r.OutboundNetworks) != 3 ||
		r.OutboundNetworks[2] != netip.MustParsePrefix("198.51.100.7/32") || !slices.Equal(r.InboundDaemons, []string{"MX"}) {
		t.Errorf("direction %+v", r)
	}
	if !c.RequireHold || c.Inbound.MaxVerifySize != 10<<20 || c.Inbound.AuthservID != "mx.example.org" {
		t.Errorf("inbound %+v", c.Inbound)
	}
	for from, want := range map[string]policy.InboundMatch{
		"a@bank.example":      {Level: policy.InboundRequire, Entry: "bank.example"},
		"ceo@partner.example": {Level: policy.InboundRequire, DryRun: true, Entry: "ceo@partner.example"},
		"x@mx.example.net":    {Level: policy.InboundReport, Entry: ".example.net"},
		"x@else.example":      {Level: policy.InboundNone},
	} {
		if got := c.InboundLevels.Lookup(from); got != want {
			t.Errorf("%s: %+v, want %+v", from, got, want)
		}
	}
	c, err = Parse("t.toml", []byte("[direction]\nauthenticated = \"inbound\"\n"))
	if err != nil || c.DirectionRules.Authenticated == nil || *c.DirectionRules.Authenticated != milter.Inbound {
		t.Errorf("authenticated = inbound: %v", err)
	}
}

func TestInboundRefused(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"direction default", "[direction]\ndefault = \"sideways\"\n", []string{"t.toml:2", `"direction.default"`}},
		{"authenticated", "[direction]\nauthenticated = \"yes\"\n", []string{"t.toml:2", `"direction.authenticated"`}},
		{"network", "[direction]\noutbound_networks = [\"10.0.0.0/33\"]\n", []string{"t.toml:2", `"direction.outbound_networks"`, "entry 1"}},
		{"network name", "[direction]\noutbound_networks = [\"localhost\"]\n", []string{`"direction.outbound_networks"`}},
		{"daemon in both", "[direction]\ninbound_daemons = [\"ORIGINATING\"]\n", []string{"t.toml:2", `"direction.inbound_daemons"`, "outbound_daemons too"}},
		{"empty daemon", "[direction]\noutbound_daemons = [\"\"]\n", []string{`"direction.outbound_daemons"`}},
		{"unknown key", "[direction]\ninbound_daemon = []\n", []string{"t.toml:2", `unknown key "direction.inbound_daemon"`}},
		{"inbound default", "[inbound]\ndefault = \"encrypt\"\n", []string{"t.toml:2", `"inbound.default"`, "none, report or require"}},
		{"inbound default dry-run", "[inbound]\ndefault = \"require dry-run\"\n", []string{`"inbound.default"`, "per entry"}},
		{"authserv-id space", "[inbound]\nauthserv_id = \"mx example\"\n", []string{"t.toml:2", `"inbound.authserv_id"`}},
		{"authserv-id semicolon", "[inbound]\nauthserv_id = \"mx.example;x\"\n", []string{`"inbound.authserv_id"`}},
		{"authserv-id dot", "[inbound]\nauthserv_id = \".example\"\n", []string{`"inbound.authserv_id"`}},
		{"require action", "[inbound]\nrequire_action = \"bounce\"\n", []string{"t.toml:2", `"inbound.require_action"`}},
		{"verify size", "max_message_size = \"1MiB\"\n[inbound]\nmax_verify_size = \"2MiB\"\n", []string{"t.toml:3", `"inbound.max_verify_size"`}},
		{"verify size over the budget", "[limits]\nmemory_budget = \"8MiB\"\n[inbound]\nmax_verify_size = \"9MiB\"\n", []string{"t.toml:4", `"inbound.max_verify_size"`, "memory_budget"}},
		{"sender level", "[inbound.senders]\n\"bank.example\" = \"must\"\n", []string{"t.toml:2", `inbound.senders.`, "bank.example"}},
		{"sender key", "[inbound.senders]\n\"not a key\" = \"require\"\n", []string{`inbound.senders.`, "not a key"}},
	} {
		_, err := Parse("t.toml", []byte(tc.in))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
		if !strings.Contains(tc.want[0], "unknown key") && !strings.Contains(err.Error(), "unknown key") && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", tc.name, err)
		}
	}
}
