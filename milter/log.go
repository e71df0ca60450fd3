package milter

import (
	"fmt"
	"slices"
	"strings"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/recipient"
)

// describe renders one recipient's lookups and decision for a log line.
func describe(e *recipient.Recipient) string {
	return clip(describeAs(e, e.Decision.Action.String()), maxDetail)
}

// describeAs renders one recipient's lookups for a log line, with label
// for what happens to it. Rejected records are named up to maxSkipped per
// lookup, then counted.
func describeAs(e *recipient.Recipient, label string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s=%s(level=%s", e.Address, label, e.Match.Level)
	if e.Unfinished {
		b.WriteString(",lookup=unfinished)")
		return b.String()
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ",error=%q)", e.Err.Error())
		return b.String()
	}
	one := func(prefix string, res dane.Result, usable int, rejected []string) {
		fmt.Fprintf(&b, ",%sdnssec=%s", prefix, res.Status)
		if len(res.EDE) > 0 {
			fmt.Fprintf(&b, ",%sede=%d", prefix, res.EDE[0].Code)
		}
		if res.Status == dane.StatusSecure {
			fmt.Fprintf(&b, ",%susable=%d", prefix, usable)
			for i, rj := range rejected {
				if i == maxSkipped {
					fmt.Fprintf(&b, ",%sskipped_more=%d", prefix, len(rejected)-maxSkipped)
					break
				}
				fmt.Fprintf(&b, ",%sskipped=%q", prefix, clip(rj, 200))
			}
		}
		if (res.Status == dane.StatusIndeterminate || res.Status == dane.StatusBogus) && res.Err != nil {
			fmt.Fprintf(&b, ",%serror=%q", prefix, res.Err.Error())
		}
	}
	var rj []string
	for _, x := range e.SMIMEA.Rejected {
		rj = append(rj, x.Reason)
	}
	one("", e.SMIMEA.Result, len(e.SMIMEA.Usable()), rj)
	if l := e.OPENPGPKEY; l != nil {
		rj = nil
		for _, x := range l.Rejected {
			rj = append(rj, x.Reason)
		}
		one("pgp_", l.Result, len(l.Usable()), rj)
	}
	b.WriteString(")")
	return b.String()
}

// detail renders one recipient for the log line.
func detail(v verdict) string {
	e := &v.ev
	switch {
	case e.Local:
		return e.Address + "=local"
	case e.Exempt != "":
		return fmt.Sprintf("%s=plain(exempt %s)", e.Address, e.Exempt)
	case e.Match.Level == policy.LevelNone:
		return e.Address + "=plain(policy none)"
	case e.DryRun:
		return "dry-run:" + describeAs(e, e.Would.Action.String())
	}
	return describeAs(e, v.label)
}

// Bounds of the per-message log line, whatever the number of recipients
// and of the records each one's zone publishes.
const (
	maxLoggedRecipients = 50   // recipients described one by one
	maxDetail           = 1024 // octets of one recipient's description
	maxSkipped          = 5    // rejected records named per lookup
	maxLoggedAddrs      = 10   // addresses listed in other log lines
)

// summarize renders the recipients for the log line: the first
// maxLoggedRecipients described, the rest counted by what happens to them
// ("and 9950 more: 9000 encrypt, 950 plain").
func (h *handler) summarize(vs []verdict) string {
	var b strings.Builder
	counts := map[string]int{}
	for i, v := range vs {
		if i < maxLoggedRecipients {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(clip(detail(v), maxDetail))
			continue
		}
		counts[v.label]++
	}
	if rest := len(vs) - maxLoggedRecipients; rest > 0 {
		fmt.Fprintf(&b, " and %d more:", rest)
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " %d %s", counts[k], k)
		}
	}
	return b.String()
}

// summarizeAddrs lists at most maxLoggedAddrs addresses and counts the rest.
func summarizeAddrs(addrs []string) string {
	if len(addrs) <= maxLoggedAddrs {
		return strings.Join(addrs, " ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(addrs[:maxLoggedAddrs], " "), len(addrs)-maxLoggedAddrs)
}

// clip cuts s to at most n octets, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
