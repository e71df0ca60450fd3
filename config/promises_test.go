package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danemilter/danemilter/policy"
)

// The README's promises about the configuration file, one test each, so
// that a change of behaviour that the README still describes fails here.

// TestPromisedDefaults: an empty file gives every default the README's key
// table documents, stated here as literal values (TestSampleConfigLoads only
// compares the sample with the defaults, which passes when both are wrong).
func TestPromisedDefaults(t *testing.T) {
	c, err := Parse("empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	for _, tt := range []struct {
		key       string
		got, want any
	}{
		{"listen", c.Network + " " + c.Address, "tcp 127.0.0.1:10025"},
		{"socket_mode", c.FileMode, os.FileMode(0o660)},
		{"local_domains", len(c.LocalDomains), 0},
		{"log_level", c.LogLevel, "info"},
		{"log_format", c.LogFormat, "text"},
		{"max_message_size", c.MaxMessageSize, ByteSize(64 << 20)},
		{"max_encrypted_size", *c.MaxEncryptedSize, ByteSize(10_240_000)},
		{"memory_threshold", c.MemoryThreshold, ByteSize(1 << 20)},
		{"spool_dir", c.SpoolDir, ""}, // "": the system temp dir (os.CreateTemp)
		{"dry_run", c.DryRun, false},
		{"dns.resolvers", strings.Join(c.DNS.Resolvers, ","), "127.0.0.1:53"},
		{"dns.trusted", c.DNS.Trusted, false},
		{"dns.timeout", time.Duration(c.DNS.Timeout), 5 * time.Second},
		{"dns.lowercase_local_part", c.DNS.LowercaseLocalPart, false},
		{"dns.cache_size", c.DNS.CacheSize, 10000},
		{"timeouts.message", time.Duration(c.Timeouts.Message), 2 * time.Minute},
		{"timeouts.shutdown", time.Duration(c.Timeouts.Shutdown), 30 * time.Second},
		{"timeouts.rcpt", time.Duration(*c.Timeouts.Rcpt), time.Second},
		{"timeouts.idle", time.Duration(c.Timeouts.Idle), time.Hour},
		{"timeouts.packet", time.Duration(c.Timeouts.Packet), 30 * time.Second},
		{"policy.default", c.Levels.Default(), policy.LevelDane},
		{"policy.recipients", c.Levels.Len(), 0},
		{"policy.map_file", c.Policy.MapFile, ""},
		{"policy.map_check_interval", time.Duration(c.Policy.MapCheckInterval), 5 * time.Second},
		{"exempt.senders", strings.Join(c.Exempt.Senders, ","), "<>"},
		{"exempt.recipients", strings.Join(c.Exempt.Recipients, ","), "postmaster@,abuse@"},
		{"reinject.address", c.ReinjectAddress, ""},
		{"reinject.helo", c.Reinject.Helo, host},
		{"reinject.timeout", time.Duration(c.Reinject.Timeout), time.Minute},
		{"limits.max_packet", c.Limits.MaxPacket, ByteSize(1 << 20)},
		{"limits.max_connections", c.Limits.MaxConnections, 512},
		{"limits.memory_budget", c.Limits.MemoryBudget, ByteSize(64 << 20)},
		{"smime.cipher", c.Cipher.String(), "aes256-cbc"},
		{"smime.rsa_oaep", c.SMIME.RSAOAEP, false},
		{"smime.use_ski", c.SMIME.UseSKI, false},
		{"openpgp.enabled", *c.OpenPGP.Enabled, true},
		{"openpgp.protect_headers", c.OpenPGP.ProtectHeaders, false},
		{"format.prefer", c.PreferOpenPGP("partner.example"), false},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: default %v, README says %v", tt.key, tt.got, tt.want)
		}
	}
}

// TestPromisedErrorsNameKeyAndLine: "Unknown keys, wrong types and bad values
// are errors that name the key and the line", in the README's form
// "config: FILE:LINE: unknown key ...".
func TestPromisedErrorsNameKeyAndLine(t *testing.T) {
	// A README-shaped file: the bad key on line 7.
	readme := "listen = \"inet:127.0.0.1:10025\"\nlog_level = \"info\"\n\n[dns]\nresolvers = [\"127.0.0.1\"]\ntimeout = \"5s\"\nresolver = [\"127.0.0.1\"]\n"
	if _, err := Parse("/etc/danemilter/danemilter.toml", []byte(readme)); err == nil ||
		err.Error() != `config: /etc/danemilter/danemilter.toml:7: unknown key "dns.resolver"` {
		t.Errorf("unknown key: %v", err)
	}
	for _, tt := range []struct {
		in, key string
		line    int
	}{
		{"log_level = \"info\"\nmax_message_size = \"lots\"\n", "max_message_size", 2},
		{"\nmax_encrypted_size = \"-5\"\n", "max_encrypted_size", 2},
		// A bare integer where a duration string belongs: 5 would be 5ns.
		{"[dns]\ntimeout = 5\n", "dns.timeout", 2},
		{"[timeouts]\nmessage = \"2m\"\nrcpt = 1\n", "timeouts.rcpt", 3},
		{"[policy]\nmap_check_interval = 5\n", "policy.map_check_interval", 2},
		{"[reinject]\ntimeout = 60\n", "reinject.timeout", 2},
		{"\nlisten = \"tcp6:foo\"\n", "listen", 2},
		{"\nsocket_mode = \"rw\"\n", "socket_mode", 2},
		{"\nlog_format = \"xml\"\n", "log_format", 2},
		{"\n\nlocal_domains = [\"a b\"]\n", "local_domains", 3},
		{"\ndry_run = \"yes\"\n", "dry_run", 2},
		{"[dns]\ntimeout = \"5s\"\nresolvers = [\"localhost\"]\n", "dns.resolvers", 3},
		{"[dns]\ncache_size = \"big\"\n", "cache_size", 2},
		{"[timeouts]\nmessage = \"5s\"\nrcpt = \"10s\"\n", "timeouts.rcpt", 3},
		{"[policy]\ndefault = \"always\"\n", "policy.default", 2},
		{"[policy.recipients]\n\"a.example\" = \"may\"\n\"x.example\" = \"maybe\"\n", `policy.recipients.\"x.example\"`, 3},
		{"[exempt]\nrecipients = [\"abuse@\"]\nsenders = [\"nobody\"]\n", "exempt.senders", 3},
		{"[exempt]\nsenders = [\"<>\"]\nrecipients = [\"<>\"]\n", "exempt.recipients", 3},
		{"[reinject]\nhelo = \"gw\"\naddress = \"somewhere\"\n", "reinject.address", 3},
		{"[smime]\ncipher = \"des\"\n", "smime.cipher", 2},
		{"[format]\nprefer = \"both\"\n", "format.prefer", 2},
		{"[limits]\nmax_connections = -1\n", "limits.max_connections", 2},
	} {
		_, err := Parse("t.toml", []byte(tt.in))
		if err == nil {
			t.Errorf("%q: accepted", tt.in)
			continue
		}
		for _, w := range []string{"t.toml:" + strconv.Itoa(tt.line) + ":", tt.key} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not contain %q", tt.in, err, w)
			}
		}
	}
}

// TestPromisedLocalDomains: "domains delivered here ... .example.org covers
// subdomains"; a plain entry covers that domain only.
func TestPromisedLocalDomains(t *testing.T) {
	c, err := Parse("t", []byte("local_domains = [\"Example.ORG\", \".lan.example\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for domain, want := range map[string]bool{
		"example.org": true, "EXAMPLE.org.": true, "sub.example.org": false,
		"a.lan.example": true, "a.b.lan.example": true, "lan.example": false, "xlan.example": false,
	} {
		if got := c.IsLocal(domain); got != want {
			t.Errorf("IsLocal(%q) = %v, want %v", domain, got, want)
		}
	}
}

// TestPromisedBadMapAtStart: "At start, a bad map file is a configuration
// error", naming the file and every bad line; so is a key set both in the
// map file and in [policy.recipients].
func TestPromisedBadMapAtStart(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content string
		want          []string
	}{
		{"bad level", "partner.example encrypt\n# c\nx.example mandatory\ny.example sometimes\n", []string{":3:", "mandatory", ":4:", "sometimes"}},
		{"also in the config", "partner.example encrypt\ndup.example may\n", []string{":2:", "also set in the configuration file"}},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".map")
		if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Parse("t.toml", []byte("[policy]\nmap_file = \""+path+"\"\n[policy.recipients]\n\"dup.example\" = \"encrypt\"\n"))
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		for _, w := range append([]string{"policy.map_file", path}, tt.want...) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tt.name, err, w)
			}
		}
	}
}

// TestPromisedMaxEncryptedSizeOff: max_encrypted_size "0" is accepted and
// kept as 0 (no check); cmd/danemilter maps it onto the milter's "off".
func TestPromisedMaxEncryptedSizeOff(t *testing.T) {
	c, err := Parse("t", []byte("max_encrypted_size = \"0\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if *c.MaxEncryptedSize != 0 {
		t.Errorf("max_encrypted_size = %d, want 0", *c.MaxEncryptedSize)
	}
}

// TestPromisedExemptEmptyLists: "[] = none" for both exemption lists.
func TestPromisedExemptEmptyLists(t *testing.T) {
	c, err := Parse("t", []byte("[exempt]\nsenders = []\nrecipients = []\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, r := c.Exemptions.Patterns()
	if len(s) != 0 || len(r) != 0 || c.Exemptions.Sender("") != "" || c.Exemptions.Recipient("postmaster@x.example") != "" {
		t.Errorf("[] exempts %v %v", s, r)
	}
}
