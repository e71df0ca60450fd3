package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/smime"
)

func TestSampleConfigLoads(t *testing.T) {
	c, err := Load(sampleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != "tcp" || c.Address != "127.0.0.1:10025" || c.FileMode != 0o660 {
		t.Errorf("listen parsed as %s %s %o", c.Network, c.Address, c.FileMode)
	}
	if got := c.Levels.Lookup("bob@partner.example"); got.Level != policy.LevelEncrypt {
		t.Errorf("partner.example level = %v", got)
	}
	if got := c.Levels.Lookup("postmaster@partner.example"); got.Level != policy.LevelNone {
		t.Errorf("postmaster level = %v", got)
	}
	if !c.IsLocal("Example.ORG") || c.IsLocal("sub.example.org") {
		t.Errorf("IsLocal wrong")
	}
	// The sample documents the defaults: an empty file must give the same values.
	d, err := Parse("empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.MaxMessageSize != c.MaxMessageSize || d.MemoryThreshold != c.MemoryThreshold || *d.MaxEncryptedSize != *c.MaxEncryptedSize ||
		d.DNS.Timeout != c.DNS.Timeout || d.Timeouts.Message != c.Timeouts.Message ||
		d.Timeouts.Shutdown != c.Timeouts.Shutdown || *d.Timeouts.Rcpt != *c.Timeouts.Rcpt ||
		d.Policy.MapCheckInterval != c.Policy.MapCheckInterval || d.Reinject.Timeout != c.Reinject.Timeout ||
		strings.Join(d.Exempt.Senders, ",") != strings.Join(c.Exempt.Senders, ",") ||
		strings.Join(d.Exempt.Recipients, ",") != strings.Join(c.Exempt.Recipients, ",") || d.DNS.CacheSize != c.DNS.CacheSize ||
		d.LogLevel != c.LogLevel || d.LogFormat != c.LogFormat || d.Policy.Default != c.Policy.Default {
		t.Errorf("sample config and defaults disagree:\n%s\n---\n%s", c, d)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("empty", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.Network != "tcp" || c.Address != "127.0.0.1:10025" {
		t.Errorf("listen = %q %q %q", c.Listen, c.Network, c.Address)
	}
	if time.Duration(c.DNS.Timeout) != 5*time.Second || c.DNS.Resolvers[0] != "127.0.0.1:53" {
		t.Errorf("dns = %+v", c.DNS)
	}
	if c.Levels.Default() != policy.LevelDane {
		t.Errorf("default level %v", c.Levels.Default())
	}
	if !strings.Contains(c.String(), `listen = 'inet:127.0.0.1:10025'`) {
		t.Errorf("String() = %s", c)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // substrings of the error
	}{
		{"unknown key", "listen = \"inet:127.0.0.1:1\"\nlisten_adress = \"x\"\n", []string{"t.toml:2", `unknown key "listen_adress"`}},
		{"unknown nested key", "[dns]\nresolver = [\"127.0.0.1\"]\n", []string{"t.toml:2", `"dns.resolver"`}},
		{"wrong type", "[dns]\ncache_size = \"big\"\n", []string{"t.toml:2", "cache_size"}},
		{"syntax", "listen = \n", []string{"t.toml:1"}},
		{"bad duration", "[dns]\ntimeout = \"5 parsecs\"\n", []string{"t.toml:2", "timeout", "duration"}},
		{"bad size", "max_message_size = \"lots\"\n", []string{"max_message_size", "size"}},
		{"bad encrypted size", "max_encrypted_size = \"-5\"\n", []string{"max_encrypted_size"}},
		{"bad listen", "listen = \"tcp6:foo\"\n", []string{`"listen"`, "unknown socket type"}},
		{"relative unix", "listen = \"unix:sock\"\n", []string{`"listen"`, "absolute"}},
		{"bad port", "listen = \"inet:99999@127.0.0.1\"\n", []string{`"listen"`, "bad port"}},
		{"bad mode", "socket_mode = \"rw\"\n", []string{"socket_mode"}},
		{"bad level", "log_level = \"loud\"\n", []string{"log_level"}},
		{"bad format", "log_format = \"xml\"\n", []string{"log_format"}},
		{"remote resolver", "[dns]\nresolvers = [\"192.0.2.1\"]\n", []string{"dns.resolvers", "not on loopback", "dns.trusted"}},
		{"host name resolver", "[dns]\nresolvers = [\"localhost:53\"]\n", []string{"dns.resolvers", "not an IP"}},
		{"bad policy default", "[policy]\ndefault = \"always\"\n", []string{"policy.default", "always"}},
		{"bad policy entry", "[policy.recipients]\n\"x.example\" = \"maybe\"\n", []string{"t.toml:2", `policy.recipients.\"x.example\"`, "maybe"}},
		{"bad policy key", "[policy.recipients]\n\"@x.example\" = \"may\"\n", []string{"t.toml:2", `policy.recipients.\"@x.example\"`}},
		{"bad dry-run entry", "[policy.recipients]\n\"x.example\" = \"may dryrun\"\n", []string{"t.toml:2", "dry-run"}},
		{"validation error names the line", "log_level = \"info\"\n\n[dns]\ntimeout = \"1s\"\nresolvers = [\"192.0.2.1\"]\n", []string{"t.toml:5:", "dns.resolvers"}},
		{"map file missing", "[policy]\nmap_file = \"/nonexistent/policy.map\"\n", []string{"t.toml:2", "policy.map_file"}},
		{"rcpt longer than message", "[timeouts]\nmessage = \"5s\"\nrcpt = \"10s\"\n", []string{"timeouts.rcpt"}},
		{"bad exempt sender", "[exempt]\nsenders = [\"nobody\"]\n", []string{"exempt", "nobody"}},
		{"null sender as recipient", "[exempt]\nrecipients = [\"<>\"]\n", []string{"exempt", "<>"}},
		{"bad reinject address", "[reinject]\naddress = \"somewhere\"\n", []string{"t.toml:2", "reinject.address", "host:port"}},
		{"reinject without host", "[reinject]\naddress = \":10026\"\n", []string{"reinject.address"}},
		{"reinject bad port", "[reinject]\naddress = \"127.0.0.1:0\"\n", []string{"reinject.address", "bad port"}},
		{"spool dir missing", "spool_dir = \"/nonexistent/dir\"\n", []string{"spool_dir"}},
		{"bad local domain", "local_domains = [\"a b\"]\n", []string{"local_domains", "entry 1"}},
		// The rule of policy map keys (address.ParseDomainPattern): no empty
		// label, no list or quoting punctuation.
		{"local domain with empty label", "local_domains = [\"..example.com\"]\n", []string{"local_domains", "entry 1", "not a domain name"}},
		{"local domain with comma", "local_domains = [\"a.example,b.example\"]\n", []string{"local_domains", "entry 1"}},
		{"cipher domain with two trailing dots", "[smime.domains]\n\"example.com..\" = \"aes128-cbc\"\n", []string{"smime.domains"}},
		{"format domain in brackets", "[format.domains]\n\"<example.com>\" = \"openpgp\"\n", []string{"format.domains"}},
		{"max_packet too small", "[limits]\nmax_packet = \"64KiB\"\n", []string{"t.toml:2", "limits.max_packet", "1MiB"}},
		{"max_packet too large", "[limits]\nmax_packet = \"1GiB\"\n", []string{"t.toml:2", "limits.max_packet", "512MiB"}},
		{"max_packet not a size", "[limits]\nmax_packet = \"big\"\n", []string{"t.toml:2", "max_packet", "size"}},
		{"max_connections negative", "[limits]\nmax_connections = -1\n", []string{"t.toml:2", "limits.max_connections"}},
		{"memory_budget below memory_threshold", "memory_threshold = \"4MiB\"\n[limits]\nmemory_budget = \"1MiB\"\n", []string{"t.toml:3", "limits.memory_budget", "memory_threshold"}},
		{"unknown limits key", "[limits]\nmax_conections = 5\n", []string{"t.toml:2", `unknown key "limits.max_conections"`}},
		{"idle too short", "[timeouts]\nidle = \"100ms\"\n", []string{"t.toml:2", "timeouts.idle", "too short"}},
		{"packet too short", "[timeouts]\npacket = \"10ms\"\n", []string{"t.toml:2", "timeouts.packet"}},
		{"idle negative", "[timeouts]\nidle = \"-1s\"\n", []string{"t.toml:2", "idle", "negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestInvalidIsErrInvalid(t *testing.T) {
	_, err := Parse("t.toml", []byte("log_level = \"loud\"\n"))
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("err = %v, want ErrInvalid", err)
	}
}

func TestAccepted(t *testing.T) {
	tests := []struct {
		in      string
		network string
		address string
	}{
		{`listen = "unix:/tmp/x.sock"`, "unix", "/tmp/x.sock"},
		{`listen = "local:/tmp/x.sock"`, "unix", "/tmp/x.sock"},
		{`listen = "/tmp/x.sock"`, "unix", "/tmp/x.sock"},
		{`listen = "inet:127.0.0.1:8891"`, "tcp", "127.0.0.1:8891"},
		{`listen = "inet:8891@127.0.0.1"`, "tcp", "127.0.0.1:8891"},
		{`listen = "inet6:8891@[::1]"`, "tcp", "[::1]:8891"},
		{`listen = "inet:[::1]:8891"`, "tcp", "[::1]:8891"},
		{`listen = "inet:8891"`, "tcp", ":8891"},
	}
	for _, tt := range tests {
		c, err := Parse("t", []byte(tt.in))
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if c.Network != tt.network || c.Address != tt.address {
			t.Errorf("%s: got %s %s, want %s %s", tt.in, c.Network, c.Address, tt.network, tt.address)
		}
	}
	c, err := Parse("t", []byte("[dns]\nresolvers = [\"192.0.2.1\", \"::1\"]\ntrusted = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.DNS.Resolvers[0] != "192.0.2.1:53" || c.DNS.Resolvers[1] != "[::1]:53" {
		t.Errorf("resolvers = %v", c.DNS.Resolvers)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "1024": 1024, "64KiB": 64 << 10, "25MB": 25e6, "1GiB": 1 << 30, "5 MiB": 5 << 20} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MB", "MB", "12XB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

func TestIssue3Keys(t *testing.T) {
	dir := t.TempDir()
	mapFile := filepath.Join(dir, "policy.map")
	if err := os.WriteFile(mapFile, []byte("partner.example encrypt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := "[timeouts]\nrcpt = \"0s\"\n[policy]\nmap_file = \"" + mapFile + "\"\nmap_check_interval = \"1s\"\n[policy.recipients]\n\"trial.example\" = \"encrypt dry-run\"\n" +
		"[exempt]\nsenders = []\nrecipients = [\"hostmaster@\"]\n[reinject]\naddress = \"127.0.0.1:10026\"\nhelo = \"gw.example\"\n"
	c, err := Parse("t", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if *c.Timeouts.Rcpt != 0 || time.Duration(c.Policy.MapCheckInterval) != time.Second {
		t.Errorf("timeouts %v %v", *c.Timeouts.Rcpt, c.Policy.MapCheckInterval)
	}
	if m := c.Levels.Lookup("a@trial.example"); m.Level != policy.LevelEncrypt || !m.DryRun {
		t.Errorf("dry-run entry %+v", m)
	}
	if c.Exemptions.Sender("") != "" || c.Exemptions.Recipient("hostmaster@x.example") == "" || c.Exemptions.Recipient("postmaster@x.example") != "" {
		t.Errorf("exemptions: [] must exempt nobody, the list replaces the defaults")
	}
	if c.ReinjectAddress != "127.0.0.1:10026" || c.Reinject.Helo != "gw.example" {
		t.Errorf("reinject %q %q", c.ReinjectAddress, c.Reinject.Helo)
	}
	for _, a := range []string{"inet:127.0.0.1:10026", "[::1]:10026", "localhost:10026"} {
		if _, err := Parse("t", []byte("[reinject]\naddress = \""+a+"\"\n")); err != nil {
			t.Errorf("reinject.address %q: %v", a, err)
		}
	}
	d, err := Parse("t", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *d.Timeouts.Rcpt != Duration(time.Second) || d.ReinjectAddress != "" || d.Exemptions.Sender("") != "<>" || d.Exemptions.Recipient("abuse@x.example") == "" {
		t.Errorf("defaults: rcpt %v reinject %q", *d.Timeouts.Rcpt, d.ReinjectAddress)
	}
}

func TestCryptoKeys(t *testing.T) {
	dir := t.TempDir()
	roots := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(roots, []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Parse("t", []byte("[smime]\ncipher = \"aes128-gcm\"\nrsa_oaep = true\ncert_dir = \""+dir+"\"\n[smime.domains]\n\"old.example\" = \"aes256-cbc\"\n\".legacy.example\" = \"aes128-cbc\"\n"+
		"[openpgp]\nenabled = false\n[format]\nprefer = \"openpgp\"\n[format.domains]\n\"x.example\" = \"smime\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cipher.String() != "aes128-gcm" || !c.SMIME.RSAOAEP || *c.OpenPGP.Enabled {
		t.Errorf("cipher %s oaep %v openpgp %v", c.Cipher, c.SMIME.RSAOAEP, *c.OpenPGP.Enabled)
	}
	for domain, want := range map[string]string{"old.example": "aes256-cbc", "a.legacy.example": "aes128-cbc", "legacy.example": "", "new.example": ""} {
		got, ok := c.CipherFor(domain)
		if (want == "") == ok || (ok && got.String() != want) {
			t.Errorf("CipherFor(%s) = %v %v, want %q", domain, got, ok, want)
		}
	}
	if !c.PreferOpenPGP("y.example") || c.PreferOpenPGP("X.example") {
		t.Error("format preference per domain")
	}
	d, err := Parse("t", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Cipher.String() != "aes256-cbc" || !*d.OpenPGP.Enabled || d.PreferOpenPGP("a.example") || d.Roots != nil {
		t.Errorf("defaults: %s %v", d.Cipher, *d.OpenPGP.Enabled)
	}
	for _, bad := range []struct{ in, want string }{
		{"[smime]\ncipher = \"des\"\n", "smime.cipher"},
		{"[smime.domains]\n\"x.example\" = \"rc2\"\n", `smime.domains.\"x.example\"`},
		{"[smime]\ncert_dir = \"/nonexistent\"\n", "smime.cert_dir"},
		{"[smime]\npkix_roots = \"" + roots + "\"\n", "no PEM certificate"},
		{"[format]\nprefer = \"both\"\n", "format.prefer"},
		{"[format.domains]\n\"x.example\" = \"pgp\"\n", "format.domains"},
	} {
		if _, err := Parse("t", []byte(bad.in)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err %v, want %q", bad.in, err, bad.want)
		}
	}
}

// TestLimitKeys: [limits], timeouts.idle and timeouts.packet have the
// documented defaults, the sample config states them, and values in range
// are taken.
func TestLimitKeys(t *testing.T) {
	d, err := Parse("empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Limits.MaxPacket != 1<<20 || d.Limits.MaxConnections != 512 || d.Limits.MemoryBudget != 64<<20 ||
		time.Duration(d.Timeouts.Idle) != time.Hour || time.Duration(d.Timeouts.Packet) != 30*time.Second {
		t.Errorf("defaults: %+v %+v", d.Limits, d.Timeouts)
	}
	s, err := Load(sampleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.Limits != d.Limits || s.Timeouts.Idle != d.Timeouts.Idle || s.Timeouts.Packet != d.Timeouts.Packet {
		t.Errorf("sample %+v %v %v, defaults %+v %v %v", s.Limits, s.Timeouts.Idle, s.Timeouts.Packet, d.Limits, d.Timeouts.Idle, d.Timeouts.Packet)
	}
	c, err := Parse("t", []byte("memory_threshold = \"256KiB\"\n[timeouts]\nidle = \"1h\"\npacket = \"5s\"\n[limits]\nmax_packet = \"2MiB\"\nmax_connections = 20\nmemory_budget = \"256KiB\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits != (Limits{MaxPacket: 2 << 20, MaxConnections: 20, MemoryBudget: 256 << 10}) ||
		time.Duration(c.Timeouts.Idle) != time.Hour || time.Duration(c.Timeouts.Packet) != 5*time.Second {
		t.Errorf("got %+v %+v", c.Limits, c.Timeouts)
	}
}

// TestCipherAuto: "auto" is accepted globally and per domain (issue 14).
func TestCipherAuto(t *testing.T) {
	c, err := Parse("t", []byte("[smime]\ncipher = \"auto\"\n[smime.domains]\n\"old.example\" = \"aes256-cbc\"\n\"new.example\" = \"Auto\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cipher != smime.CipherAuto {
		t.Errorf("cipher %v", c.Cipher)
	}
	if got, ok := c.CipherFor("new.example"); !ok || got != smime.CipherAuto {
		t.Errorf("CipherFor(new.example) = %v %v", got, ok)
	}
	if got, ok := c.CipherFor("old.example"); !ok || got != smime.AES256CBC {
		t.Errorf("CipherFor(old.example) = %v %v", got, ok)
	}
	if _, err := Parse("t", []byte("[smime]\ncipher = \"automatic\"\n")); err == nil || !strings.Contains(err.Error(), "auto") {
		t.Errorf("cipher automatic: %v (want the accepted names, auto among them)", err)
	}
}
