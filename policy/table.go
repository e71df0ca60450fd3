package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/danemilter/danemilter/address"
)

// Table maps recipients to levels: full addresses, domains, and parent
// domains written with a leading dot (".example.com" covers every subdomain
// of example.com, not example.com itself, as in Postfix's tls_policy maps).
// The most specific entry wins: address, then domain, then the nearest parent,
// then the default.
//
// A Table is built with Set and SetEntry and then only read; reading is safe
// from many goroutines. To change the policy of a running daemon, build a new
// Table and swap it in (see Live).
type Table struct {
	def     Level
	entries map[string]Entry
	// folded indexes address entries by lowercased address, keeping the
	// strictest entry of those that differ only in case.
	folded map[string]foldedEntry
}

type foldedEntry struct {
	key string
	e   Entry
}

// stricter reports whether a must win over b: a higher level, or the same
// level without dry run.
func stricter(a, b Entry) bool {
	return a.Level > b.Level || (a.Level == b.Level && b.DryRun && !a.DryRun)
}

// put adds a normalized entry.
func (t *Table) put(k string, e Entry) {
	t.entries[k] = e
	if strings.Contains(k, "@") {
		f := strings.ToLower(k)
		if cur, ok := t.folded[f]; !ok || stricter(e, cur.e) || cur.key == k {
			t.folded[f] = foldedEntry{k, e}
		}
	}
}

// Entry is the policy of one table entry: a level, and whether the entry is
// in dry-run mode (decisions are logged and announced in a header, but the
// message is neither changed nor refused for this recipient).
type Entry struct {
	Level  Level
	DryRun bool
}

func (e Entry) String() string {
	if e.DryRun {
		return e.Level.String() + " dry-run"
	}
	return e.Level.String()
}

// ParseEntry parses a level optionally followed by "dry-run", separated by
// white space: "encrypt", "may dry-run".
func ParseEntry(s string) (Entry, error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		return Entry{}, fmt.Errorf("%w %q (want a level, optionally followed by dry-run)", ErrBadLevel, s)
	}
	l, err := ParseLevel(f[0])
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Level: l}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "dry-run") {
			return Entry{}, fmt.Errorf("%w %q (only \"dry-run\" may follow the level)", ErrBadLevel, s)
		}
		e.DryRun = true
	}
	return e, nil
}

// NewTable returns a table with only a default.
func NewTable(def Level) *Table {
	return &Table{def: def, entries: map[string]Entry{}, folded: map[string]foldedEntry{}}
}

// Default returns the default level.
func (t *Table) Default() Level { return t.def }

// Len returns the number of entries.
func (t *Table) Len() int { return len(t.entries) }

// Set adds an entry with level l. Domains are case-insensitive. An
// address's local part is kept as written, but Lookup matches it without
// regard to case or a "+tag", taking the strictest entry (see Lookup).
func (t *Table) Set(key string, l Level) error {
	return t.SetEntry(key, Entry{Level: l})
}

// SetEntry adds an entry; see Set.
func (t *Table) SetEntry(key string, e Entry) error {
	k, err := NormalizeKey(key)
	if err != nil {
		return err
	}
	t.put(k, e)
	return nil
}

// Has reports whether the table has an entry for key (normalized as by Set).
func (t *Table) Has(key string) bool {
	k, err := NormalizeKey(key)
	if err != nil {
		return false
	}
	_, ok := t.entries[k]
	return ok
}

// Clone returns a copy of t that can be changed without affecting t.
func (t *Table) Clone() *Table {
	c := NewTable(t.def)
	for k, e := range t.entries {
		c.entries[k] = e
	}
	for k, f := range t.folded {
		c.folded[k] = f
	}
	return c
}

// NormalizeKey returns the canonical form of a table key: the domain
// lowercased and without a trailing dot. It returns an error for a key that
// is not a domain, a ".parent" domain or an address.
func NormalizeKey(key string) (string, error) {
	key = strings.TrimSpace(key)
	if local, domain, ok := address.Cut(key); ok {
		if local == "" || strings.ContainsAny(local, "@ \t") || !address.ValidDomain(domain) {
			return "", fmt.Errorf("%q is not an address", key)
		}
		return local + "@" + domain, nil
	}
	d, err := address.ParseDomainPattern(key)
	if err != nil {
		return "", fmt.Errorf("%q is not a domain, .parent-domain or address", key)
	}
	return d, nil
}

// Source gives the policy for a recipient address: a *Table, or a *Live that
// reloads a map file.
type Source interface {
	Lookup(address string) Match
}

// Match is the result of Lookup: the level and the entry that gave it.
type Match struct {
	Level  Level
	DryRun bool
	Entry  string // "" for the default
}

// Lookup returns the level for an address.
func (t *Table) Lookup(addr string) Match {
	local, domain, ok := address.Cut(addr)
	if !ok {
		return Match{Level: t.def}
	}
	if m, ok := t.lookupAddress(local, domain); ok {
		return m
	}
	if e, key, ok := address.LookupDomain(t.entries, domain); ok {
		return Match{e.Level, e.DryRun, key}
	}
	return Match{Level: t.def}
}

// lookupAddress finds the address entry for local@domain. Mail systems treat
// a mailbox's local part without regard to case, and "user+tag" as "user",
// so an entry must not be dodged by writing the address differently: entries
// are matched case-insensitively, with and without a "+tag", and the
// strictest candidate applies (an "encrypt" entry for ceo@bank.example also
// covers CEO@bank.example and ceo+x@bank.example).
func (t *Table) lookupAddress(local, domain string) (Match, bool) {
	cands := []string{strings.ToLower(local)}
	if base, _, ok := strings.Cut(local, "+"); ok && base != "" {
		cands = append(cands, strings.ToLower(base))
	}
	var best foldedEntry
	found := false
	for _, l := range cands {
		f, ok := t.folded[l+"@"+domain]
		if ok && (!found || stricter(f.e, best.e)) {
			best, found = f, true
		}
	}
	return Match{best.e.Level, best.e.DryRun, best.key}, found
}

// Entries returns the entries sorted by key, for display.
func (t *Table) Entries() []string {
	var out []string
	for k, e := range t.entries {
		out = append(out, k+" "+e.String())
	}
	sort.Strings(out)
	return out
}
