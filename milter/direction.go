package milter

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/d--j/go-milter"
)

// Direction says whether a message arrived from outside (inbound: its
// signatures are verified for the local recipients) or from the site's own
// users (outbound). It decides only whether inbound verification runs:
// remote recipients are encrypted in both directions, so a message
// classified wrongly never leaves in clear, and forged
// Authentication-Results fields are removed in both.
type Direction int

// The directions.
const (
	Inbound Direction = iota
	Outbound
)

func (d Direction) String() string {
	if d == Outbound {
		return "outbound"
	}
	return "inbound"
}

// The macros the direction rules read, asked for at MAIL FROM (SMFIC_MAIL;
// Postfix and Sendmail honour the milter's macro list, SMFIF_SETSYMLIST).
const (
	// MacroDaemonName is {daemon_name}: Postfix's milter_macro_daemon_name
	// (set per master.cf service with -o), Sendmail's DaemonPortOptions
	// Name=.
	MacroDaemonName = milter.MacroDaemonName
	// MacroClientAddr is {client_addr}: the SMTP client's IP address
	// (Sendmail writes IPv6 addresses with an "IPv6:" prefix).
	MacroClientAddr = milter.MacroClientAddr
	// MacroAuthAuthen is {auth_authen}: the SASL login name, set when the
	// client authenticated.
	MacroAuthAuthen = milter.MacroAuthAuthen
)

// DirectionRules classify a message. The first rule that applies wins, in
// this order: the daemon name lists, Authenticated, local submission
// (Postfix's sendmail(1) and pickup: {client_port} "0"), OutboundNetworks,
// Default. The zero value classifies every message by its client: local
// submissions and, with no networks, nothing else outbound.
type DirectionRules struct {
	// InboundDaemons and OutboundDaemons are {daemon_name} values (exact,
	// case-sensitive as the MTA sends them).
	InboundDaemons, OutboundDaemons []string
	// Authenticated, when set, is the direction of a message whose client
	// authenticated ({auth_authen} not empty); nil: the rule is off.
	Authenticated *Direction
	// OutboundNetworks are client addresses whose mail is outbound, like
	// Postfix's mynetworks.
	OutboundNetworks []netip.Prefix
	// Default is the direction when no rule applies.
	Default Direction
}

// The rules' names, as the log line gives them ("rule=...") and as the
// [direction] keys of the configuration name them.
const (
	RuleInboundDaemons   = "inbound_daemons"
	RuleOutboundDaemons  = "outbound_daemons"
	RuleAuthenticated    = "authenticated"
	RuleLocalSubmission  = "local_submission"
	RuleOutboundNetworks = "outbound_networks"
	RuleDefault          = "default"
)

// client is what the MTA told of the message's SMTP client at MAIL FROM.
type client struct {
	daemonName, addr, authAuthen, port string
}

// Classify returns the direction of a message from c and the rule that
// decided it.
func (r *DirectionRules) classify(c client) (Direction, string) {
	if c.daemonName != "" {
		if slices.Contains(r.InboundDaemons, c.daemonName) {
			return Inbound, RuleInboundDaemons
		}
		if slices.Contains(r.OutboundDaemons, c.daemonName) {
			return Outbound, RuleOutboundDaemons
		}
	}
	if r.Authenticated != nil && c.authAuthen != "" {
		return *r.Authenticated, RuleAuthenticated
	}
	if c.port == "0" {
		return Outbound, RuleLocalSubmission
	}
	if a, ok := parseClientAddr(c.addr); ok && slices.ContainsFunc(r.OutboundNetworks, func(p netip.Prefix) bool { return p.Contains(a) }) {
		return Outbound, RuleOutboundNetworks
	}
	return r.Default, RuleDefault
}

// parseClientAddr parses {client_addr} as Postfix ("192.0.2.1",
// "2001:db8::1") and Sendmail ("IPv6:2001:db8::1", sometimes in brackets)
// write it; an IPv4-mapped IPv6 address counts as the IPv4 address, and a
// zone is ignored.
func parseClientAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "["), "]")
	if len(s) > 5 && strings.EqualFold(s[:5], "IPv6:") {
		s = s[5:]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}
