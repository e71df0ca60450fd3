package policy

import (
	"fmt"
	"sort"
	"strings"
)

// Table maps recipients to levels: full addresses, domains, and parent
// domains written with a leading dot (".example.com" covers every subdomain
// of example.com, not example.com itself, as in Postfix's tls_policy maps).
// The most specific entry wins: address, then domain, then the nearest parent,
// then the default.
type Table struct {
	def     Level
	entries map[string]Level
}

// NewTable returns a table with only a default.
func NewTable(def Level) *Table {
	return &Table{def: def, entries: map[string]Level{}}
}

// Default returns the default level.
func (t *Table) Default() Level { return t.def }

// Set adds an entry. Keys are case-insensitive except for an address's local
// part, which is matched as written.
func (t *Table) Set(key string, l Level) error {
	k, err := normalizeKey(key)
	if err != nil {
		return err
	}
	t.entries[k] = l
	return nil
}

func normalizeKey(key string) (string, error) {
	key = strings.TrimSpace(key)
	if local, domain, ok := cutLast(key, "@"); ok {
		if local == "" || domain == "" || strings.HasPrefix(domain, ".") {
			return "", fmt.Errorf("%q is not an address", key)
		}
		return local + "@" + strings.ToLower(strings.TrimSuffix(domain, ".")), nil
	}
	d := strings.ToLower(strings.TrimSuffix(key, "."))
	if d == "" || d == "." || strings.Contains(d, "..") || strings.ContainsAny(d, " /\\:") {
		return "", fmt.Errorf("%q is not a domain, .parent-domain or address", key)
	}
	return d, nil
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// Match is the result of Lookup: the level and the entry that gave it.
type Match struct {
	Level Level
	Entry string // "" for the default
}

// Lookup returns the level for an address.
func (t *Table) Lookup(address string) Match {
	local, domain, ok := cutLast(address, "@")
	if !ok {
		return Match{Level: t.def}
	}
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if l, ok := t.entries[local+"@"+domain]; ok {
		return Match{l, local + "@" + domain}
	}
	if l, ok := t.entries[domain]; ok {
		return Match{l, domain}
	}
	for d := domain; ; {
		_, parent, ok := strings.Cut(d, ".")
		if !ok {
			break
		}
		if l, ok := t.entries["."+parent]; ok {
			return Match{l, "." + parent}
		}
		d = parent
	}
	return Match{Level: t.def}
}

// Entries returns the entries sorted by key, for display.
func (t *Table) Entries() []string {
	var out []string
	for k, l := range t.entries {
		out = append(out, k+" "+l.String())
	}
	sort.Strings(out)
	return out
}
