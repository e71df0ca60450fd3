// Package config loads and validates danemilter's TOML configuration file.
//
// Every key has a documented default, so an empty file is a valid configuration
// that listens on inet:127.0.0.1:10025, asks the validating resolver on
// 127.0.0.1:53 and applies policy level "dane" to every remote recipient.
// Load rejects unknown keys, values of the wrong type and values out of range
// with an error that names the key and, where the TOML parser knows it, the
// line. The sample file deploy/danemilter.toml documents each key; a test
// loads it.
package config

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/danemilter/danemilter/address"
	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/milter"
	"github.com/danemilter/danemilter/policy"
	"github.com/danemilter/danemilter/safefile"
	"github.com/danemilter/danemilter/smime"
)

// ErrInvalid is wrapped by every validation error Load returns.
var ErrInvalid = errors.New("invalid value")

// Config is the whole configuration file. The zero value of every field means
// "use the documented default"; Load fills the defaults in.
type Config struct {
	// Listen is the milter socket, written as in Postfix's main.cf
	// ("unix:/path", "inet:host:port") or Sendmail's .mc ("local:/path",
	// "inet:port@host", "inet6:port@host"). Default inet:127.0.0.1:10025.
	Listen string `toml:"listen"`
	// SocketMode is the octal file mode of a Unix socket. Default "0660".
	SocketMode string `toml:"socket_mode"`
	// LocalDomains are the domains whose recipients are delivered here; mail
	// to them is never encrypted by the outbound path. Subdomains are not
	// included unless listed with a leading dot (".example.org").
	LocalDomains []string `toml:"local_domains"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `toml:"log_level"`
	// LogFormat is text (default, logfmt-like) or json.
	LogFormat string `toml:"log_format"`
	// MaxMessageSize is the largest message (headers and body) that is
	// encrypted. Larger messages are rejected with 552 5.3.4 unless every
	// recipient's policy allows plaintext. Default 64MiB.
	MaxMessageSize ByteSize `toml:"max_message_size"`
	// MaxEncryptedSize is the largest queue file the MTA accepts
	// (Postfix's message_size_limit in main.cf, which its cleanup applies to
	// the encrypted copy): a message whose encrypted copy could be larger is
	// refused with 552 5.3.4 before any copy leaves. Default 10240000
	// (Postfix's default); 0 turns the check off.
	MaxEncryptedSize *ByteSize `toml:"max_encrypted_size"`
	// MemoryThreshold is the body size held in memory before the body is
	// spooled to a file in SpoolDir. Default 1MiB.
	MemoryThreshold ByteSize `toml:"memory_threshold"`
	// SpoolDir holds spooled bodies; default the system temporary directory.
	SpoolDir string `toml:"spool_dir"`
	// DryRun logs decisions and adds the trace header, but never encrypts,
	// refuses, holds or splits a message. Inbound, the verification results
	// are still added and forged ones of ours still removed: they are
	// reports, not decisions.
	DryRun bool `toml:"dry_run"`

	DNS      DNS      `toml:"dns"`
	Timeouts Timeouts `toml:"timeouts"`
	Limits   Limits   `toml:"limits"`
	Policy   Policy   `toml:"policy"`
	Exempt   Exempt   `toml:"exempt"`
	Reinject Reinject `toml:"reinject"`
	SMIME    SMIME    `toml:"smime"`
	OpenPGP  OpenPGP  `toml:"openpgp"`
	Format   Format   `toml:"format"`
	// Direction says which messages are inbound (verified for the local
	// recipients) and which outbound; Inbound is the inbound policy.
	Direction Direction `toml:"direction"`
	Inbound   Inbound   `toml:"inbound"`
	// Store is where certificates harvested from verified inbound mail
	// are kept (package harvest).
	Store Store `toml:"store"`
	// Gateway is inbound decryption with the gateway's own keys.
	Gateway Gateway `toml:"gateway"`

	// Network and Address are Listen parsed for net.Listen.
	Network string `toml:"-"`
	Address string `toml:"-"`
	// FileMode is SocketMode parsed.
	FileMode os.FileMode `toml:"-"`
	// Levels is Policy parsed, without the map file.
	Levels *policy.Table `toml:"-"`
	// Exemptions is Exempt parsed.
	Exemptions *policy.Exemptions `toml:"-"`
	// ReinjectAddress is Reinject.Address as host:port for net.Dial.
	ReinjectAddress string `toml:"-"`
	// Cipher and CipherDomains are SMIME.Cipher and SMIME.Domains parsed.
	Cipher        smime.Cipher            `toml:"-"`
	CipherDomains map[string]smime.Cipher `toml:"-"`
	// Roots is SMIME.PKIXRoots loaded; nil means the system roots.
	Roots *x509.CertPool `toml:"-"`
	// formatDomains is Format.Domains with normalized keys.
	formatDomains map[string]string
	// DirectionRules is Direction parsed.
	DirectionRules milter.DirectionRules `toml:"-"`
	// InboundLevels is Inbound.Default and Inbound.Senders parsed;
	// RequireHold is Inbound.RequireAction = "hold".
	InboundLevels *policy.InboundTable `toml:"-"`
	RequireHold   bool                 `toml:"-"`
	// DecryptList is Gateway.Decrypt parsed; DecryptReject is
	// Gateway.OnFailure = "reject".
	DecryptList   *milter.DecryptList `toml:"-"`
	DecryptReject bool                `toml:"-"`
}

// Gateway configures inbound decryption (README "Inbound decryption"): an
// inbound message to local users whose mail is decrypted here, encrypted
// to a key the key directory holds, is decrypted before delivery.
type Gateway struct {
	// KeyDir is the key directory (danemilter keys); "" (default) turns
	// decryption off.
	KeyDir string `toml:"key_dir"`
	// Decrypt lists the local recipients whose mail is decrypted at the
	// gateway: addresses, domains of local_domains, or ".parent". Others
	// keep end-to-end mail: it passes unchanged even when a key is held.
	// Default [].
	Decrypt []string `toml:"decrypt"`
	// OnFailure is what happens to a message that cannot be decrypted (a
	// wrong key, a tampered GCM tag): "pass" (default) delivers it
	// unchanged with a log line, "reject" refuses it with 550 5.7.5.
	OnFailure string `toml:"on_failure"`
}

// Direction classifies each message at MAIL FROM. The first rule that
// applies wins, in this order: the daemon name lists, Authenticated, local
// submission (Postfix's sendmail(1) and pickup, {client_port} "0":
// outbound), OutboundNetworks, Default. Direction decides only whether
// inbound verification runs: remote recipients are encrypted in both
// directions, so a message classified wrongly never leaves in clear.
type Direction struct {
	// InboundDaemons are {daemon_name} values whose mail is inbound (Postfix:
	// -o milter_macro_daemon_name=NAME on a master.cf service; Sendmail:
	// DaemonPortOptions Name=NAME). Default [].
	InboundDaemons []string `toml:"inbound_daemons"`
	// OutboundDaemons are {daemon_name} values whose mail is outbound.
	// Default ["ORIGINATING"] (Postfix's submission idiom); add "MSA" for
	// Sendmail's submission port.
	OutboundDaemons []string `toml:"outbound_daemons"`
	// Authenticated is the direction of mail from a client that did SMTP
	// AUTH ({auth_authen} set): outbound (default), inbound, or "" to not
	// use this rule.
	Authenticated *string `toml:"authenticated"`
	// OutboundNetworks are client addresses ({client_addr}) whose mail is
	// outbound, like Postfix's mynetworks, as CIDR prefixes or addresses.
	// Default ["127.0.0.0/8", "::1/128"].
	OutboundNetworks []string `toml:"outbound_networks"`
	// Default is the direction when no rule applies: inbound (default) or
	// outbound.
	Default string `toml:"default"`
}

// Inbound is the inbound policy, per RFC5322.From sender.
type Inbound struct {
	// Default level for senders no entry matches: none, report (default)
	// or require, optionally followed by "dry-run".
	Default string `toml:"default"`
	// AuthservID is the authserv-id of the Authentication-Results fields
	// danemilter writes (RFC 8601 §2.5), and of the incoming ones it
	// removes as forged. A domain-like name; default the host name.
	AuthservID string `toml:"authserv_id"`
	// RequireAction is what happens to a message from a require sender
	// without a pass: reject (default, 550 5.7.1) or hold (Postfix's hold
	// queue, Sendmail's quarantine; the MTA must offer it, or the message
	// is deferred). DNS failures always defer (451).
	RequireAction string `toml:"require_action"`
	// MaxVerifySize is the largest message verified; a larger one is
	// reported "smime=neutral" (not checked) and refused from a require
	// sender (552 5.3.4). Default the smaller of max_message_size and
	// limits.memory_budget (it is verified whole in memory), above neither.
	MaxVerifySize ByteSize `toml:"max_verify_size"`
	// Senders maps a sender address, a domain or a ".parent" domain to a
	// level, optionally followed by "dry-run"; the most specific entry
	// wins, as in [policy.recipients].
	Senders map[string]string `toml:"senders"`
}

// Store configures the store of certificates and S/MIME capabilities
// harvested from verified inbound signatures (package harvest). A stored
// certificate is used only when a DNSSEC-secure SMIMEA record matches it.
type Store struct {
	// Backend is bolt (default: one file, Path), postgres (a database
	// several hosts share, DSN) or off.
	Backend string `toml:"backend"`
	// Path is the bolt file. Default /var/lib/danemilter/harvest.db; its
	// directory is made (0700) when missing.
	Path string `toml:"path"`
	// DSN is the PostgreSQL connection string (URL or key=value). Keep the
	// password out of it (PGPASSFILE, a ~/.pgpass of mode 0600); a DSN
	// with a password is refused unless the configuration file is
	// readable by its owner only.
	DSN string `toml:"dsn"`
	// ExpireAfter drops entries not seen for this long. Default 9600h
	// (400 days).
	ExpireAfter Duration `toml:"expire_after"`
	// MaxEntries is the most entries kept; past it the least recently
	// seen go first. Default 100000.
	MaxEntries int `toml:"max_entries"`
	// Timeout bounds each PostgreSQL call (a lookup that takes longer is
	// "not known") and the wait for the bolt file's lock. Default 2s.
	Timeout Duration `toml:"timeout"`
}

// Defaults of [store].
const (
	DefaultStorePath = "/var/lib/danemilter/harvest.db"
)

// StoreOptions returns [store] as the harvest package's bounds.
func (c *Config) StoreOptions() harvest.Options {
	return harvest.Options{
		ExpireAfter: time.Duration(c.Store.ExpireAfter),
		MaxEntries:  c.Store.MaxEntries,
		Timeout:     time.Duration(c.Store.Timeout),
	}
}

// setStoreDefaults fills in and checks [store].
func (c *Config) setStoreDefaults() error {
	s := &c.Store
	switch s.Backend {
	case "":
		s.Backend = "bolt"
	case "bolt", "postgres", "off":
	default:
		return invalid("store.backend", "want bolt, postgres or off, got %q", s.Backend)
	}
	if s.Path == "" {
		s.Path = DefaultStorePath
	}
	if s.Backend == "bolt" && !strings.HasPrefix(s.Path, "/") {
		return invalid("store.path", "%q is not an absolute path", s.Path)
	}
	if s.Backend == "postgres" && strings.TrimSpace(s.DSN) == "" {
		return invalid("store.dsn", "backend postgres needs a dsn, e.g. \"host=db.example.org dbname=danemilter user=danemilter\"")
	}
	if s.ExpireAfter == 0 {
		s.ExpireAfter = Duration(harvest.DefaultExpireAfter)
	}
	if s.ExpireAfter < Duration(time.Hour) {
		return invalid("store.expire_after", "%s is shorter than 1h; write hours, e.g. \"9600h\" for 400 days", time.Duration(s.ExpireAfter))
	}
	switch {
	case s.MaxEntries == 0:
		s.MaxEntries = harvest.DefaultMaxEntries
	case s.MaxEntries < 0:
		return invalid("store.max_entries", "%d is negative", s.MaxEntries)
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(harvest.DefaultTimeout)
	}
	if s.Timeout < Duration(time.Millisecond) {
		return invalid("store.timeout", "%s is too short; write a duration as a string like \"2s\" (a bare number is nanoseconds)", time.Duration(s.Timeout))
	}
	return nil
}

// dsnPassword reports whether a PostgreSQL connection string, URL or
// key=value form, carries a password.
func dsnPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return true // cannot tell: assume the worst
		}
		if _, ok := u.User.Password(); ok {
			return true
		}
		return u.Query().Has("password")
	}
	for _, f := range strings.Fields(dsn) {
		if k, _, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == "password" {
			return true
		}
	}
	return strings.Contains(dsn, "password =") || strings.Contains(dsn, "password=")
}

// SMIME configures S/MIME encryption and the trust in SMIMEA records.
type SMIME struct {
	// Cipher is the content encryption: aes256-cbc (default), aes128-cbc,
	// aes128-gcm or aes256-gcm (AuthEnvelopedData, RFC 5083), or auto:
	// the strongest GCM that every recipient of a copy announced in the
	// SMIMECapabilities stored with its certificate ([store]), else
	// aes256-cbc, and RSA-OAEP for an RSA recipient that announced it.
	Cipher string `toml:"cipher"`
	// Domains overrides Cipher per recipient domain ("example.com", or
	// ".example.com" for its subdomains); auto is accepted here too.
	Domains map[string]string `toml:"domains"`
	// RSAOAEP uses RSAES-OAEP (SHA-256) instead of RSA PKCS #1 v1.5 for RSA
	// recipients. Default false.
	RSAOAEP bool `toml:"rsa_oaep"`
	// UseSKI names recipients by SubjectKeyIdentifier instead of issuer and
	// serial number. Default false.
	UseSKI bool `toml:"use_ski"`
	// CertDir holds certificates that hashed SMIMEA records (x x 1, x x 2,
	// x 1 x) authenticate, and the CA certificates chains are built through:
	// PEM files, any names, re-read when they change. Default "" (none).
	CertDir string `toml:"cert_dir"`
	// CertDirCheckInterval is how often CertDir is checked. Default 30s.
	CertDirCheckInterval Duration `toml:"cert_dir_check_interval"`
	// PKIXRoots is a PEM file of the trust anchors for the PKIX usages 0 and
	// 1. Default "": the system roots.
	PKIXRoots string `toml:"pkix_roots"`
}

// OpenPGP configures OPENPGPKEY lookups and PGP/MIME encryption.
type OpenPGP struct {
	// Enabled looks up OPENPGPKEY records next to SMIMEA. Default true;
	// false turns OpenPGP off (one DNS query less per recipient).
	Enabled *bool `toml:"enabled"`
	// ProtectHeaders puts the real Subject (and the other user-facing
	// fields) inside the encryption and "[...]" outside (RFC 9788).
	// Default false.
	ProtectHeaders bool `toml:"protect_headers"`
}

// Format says which format a recipient with both an SMIMEA and an
// OPENPGPKEY record gets.
type Format struct {
	// Prefer is smime (default) or openpgp.
	Prefer string `toml:"prefer"`
	// Domains overrides Prefer per recipient domain ("example.com" or
	// ".example.com").
	Domains map[string]string `toml:"domains"`
}

// Exempt names senders and recipients danemilter never touches (neither
// encrypts nor refuses), except that level encrypt is never weakened.
type Exempt struct {
	// Senders: "<>" (the null sender of bounces), "local@", "@domain" or
	// "local@domain". Default ["<>"]; [] exempts nobody.
	Senders []string `toml:"senders"`
	// Recipients: "local@", "@domain" or "local@domain". Default
	// ["postmaster@", "abuse@"]; [] exempts nobody.
	Recipients []string `toml:"recipients"`
}

// Reinject configures split delivery of messages whose recipients need
// different treatment: the plaintext copy for the recipients without keys is
// re-injected over SMTP into a listener of the MTA that does not call
// milters. Empty Address turns splitting off.
type Reinject struct {
	// Address of the MTA's milter-less SMTP listener, "host:port" or
	// "inet:host:port" (e.g. a Postfix master.cf service on
	// 127.0.0.1:10026 with -o smtpd_milters= -o non_smtpd_milters=). Default
	// "" (off).
	Address string `toml:"address"`
	// Helo is the name sent in EHLO. Default the host name.
	Helo string `toml:"helo"`
	// Timeout bounds the whole re-injection of one message. Default 60s.
	Timeout Duration `toml:"timeout"`
}

// DNS configures the resolver that validates DNSSEC.
type DNS struct {
	// Resolvers are validating resolvers tried in order, as host:port or
	// [v6]:port; a bare IP means port 53. Default ["127.0.0.1:53"].
	Resolvers []string `toml:"resolvers"`
	// Trusted says that the path to resolvers that are not on loopback is
	// protected (IPsec, a private link), so their AD bit may be believed.
	// Without it a non-loopback resolver is refused at load time.
	Trusted bool `toml:"trusted"`
	// Timeout bounds one query to one resolver. Default 5s.
	Timeout Duration `toml:"timeout"`
	// LowercaseLocalPart hashes the lowercased local part for owner names
	// (as hash-slinger does) instead of the local part as written (RFC 8162
	// §3, RFC 7929 §3). Default false.
	LowercaseLocalPart bool `toml:"lowercase_local_part"`
	// CacheSize is the most lookup results kept. Default 10000.
	CacheSize int `toml:"cache_size"`
}

// Timeouts bound the daemon's work.
type Timeouts struct {
	// Message bounds the work on one message from MAIL FROM to the end of
	// the message, DNS lookups included. Default 120s.
	Message Duration `toml:"message"`
	// Shutdown is how long SIGTERM waits for in-flight messages. Default 30s.
	Shutdown Duration `toml:"shutdown"`
	// Rcpt is how long, in all, the RCPT TO commands of one message wait
	// for their lookups so that a refusal can be given for one recipient
	// alone (a budget per message). A lookup that takes
	// longer goes on, and is decided at end of message. Default 1s; "0s"
	// decides at RCPT TO only from the cache.
	Rcpt *Duration `toml:"rcpt"`
	// Idle bounds the wait for the MTA's next milter packet; past it the
	// connection is closed. Default 1h: Postfix sends the header and body
	// only once the SMTP client has sent the whole message, which no
	// Postfix timeout bounds in total; Sendmail's Timeout.datablock is 1h.
	Idle Duration `toml:"idle"`
	// Packet bounds the rest of a milter packet once its length has
	// arrived. Default 30s, Postfix's milter_command_timeout: Postfix writes
	// a packet at once and gives up on the reply after that long anyway.
	Packet Duration `toml:"packet"`
}

// Limits bound what one peer on the milter socket, or all of them together,
// can make the daemon hold.
type Limits struct {
	// MaxPacket is the largest milter packet read. A packet announcing more
	// ends its connection before anything is allocated (the MTA then applies
	// milter_default_action). Default 1MiB: the largest body chunk an MTA
	// may negotiate (SMFIP_MDS_1M); Postfix sends at most 64 KiB chunks and
	// header packets up to header_size_limit (100 KiB). At least 1MiB, at
	// most 512MiB.
	MaxPacket ByteSize `toml:"max_packet"`
	// MaxConnections is the most milter connections at once; more are
	// closed as soon as they are accepted, with a warning in the log.
	// Default 512.
	MaxConnections int `toml:"max_connections"`
	// MemoryBudget is the memory the in-memory bodies (memory_threshold
	// each) of all connections may hold together; past it, bodies are
	// spooled to files. Default 64MiB; not below memory_threshold.
	MemoryBudget ByteSize `toml:"memory_budget"`
}

// Policy is the per-recipient encryption policy.
type Policy struct {
	// Default level for recipients no entry matches: none, may, dane
	// (default) or encrypt.
	Default string `toml:"default"`
	// Recipients maps a domain ("example.com"), a parent domain covering
	// its subdomains (".example.com") or a full address to a level,
	// optionally followed by "dry-run". The most specific entry wins:
	// address, domain, then the nearest parent.
	Recipients map[string]string `toml:"recipients"`
	// MapFile is a file of more entries, one "key level [dry-run]" a line,
	// reloaded when it changes and on SIGHUP. Default "" (none).
	MapFile string `toml:"map_file"`
	// MapCheckInterval is how often MapFile is checked for changes.
	// Default 5s.
	MapCheckInterval Duration `toml:"map_check_interval"`
}

// Duration is a time.Duration written as a Go duration string ("5s").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration like \"5s\" or \"2m\": %q", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ByteSize is a size in bytes, written as an integer or with a unit: "512KiB",
// "25MB", "1GiB" (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024).
type ByteSize int64

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *ByteSize) UnmarshalText(b []byte) error {
	v, err := ParseByteSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (s ByteSize) MarshalText() ([]byte, error) {
	v := int64(s)
	for _, u := range []struct {
		name string
		n    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v != 0 && v%u.n == 0 {
			return []byte(strconv.FormatInt(v/u.n, 10) + u.name), nil
		}
	}
	return []byte(strconv.FormatInt(v, 10)), nil
}

// ParseByteSize parses "123", "64KiB", "25MB" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("not a size like \"25MiB\" or \"1048576\": %q", s)
	}
	return ByteSize(n * mult), nil
}

// Defaults.
const (
	DefaultListen         = "inet:127.0.0.1:10025"
	DefaultSocketMode     = "0660"
	DefaultMaxMessageSize = milter.DefaultMaxMessageSize
	// DefaultMaxEncryptedSize is Postfix's default message_size_limit.
	DefaultMaxEncryptedSize = milter.DefaultMaxEncryptedSize
	DefaultMemoryThreshold  = milter.DefaultMemoryThreshold
	DefaultDNSTimeout       = 5 * time.Second
	DefaultCacheSize        = 10000
	DefaultMessageTimeout   = milter.DefaultMessageTimeout
	DefaultShutdownTimeout  = 30 * time.Second
	DefaultRcptTimeout      = time.Second
	DefaultReinjectTimeout  = 60 * time.Second
	DefaultMapInterval      = 5 * time.Second
)

// Defaults of [limits], timeouts.idle and timeouts.packet.
const (
	DefaultIdleTimeout    = milter.DefaultIdleTimeout
	DefaultPacketTimeout  = milter.DefaultPacketTimeout
	DefaultMaxPacket      = milter.DefaultMaxPacket
	DefaultMaxConnections = milter.DefaultMaxConnections
	DefaultMemoryBudget   = milter.DefaultMemoryBudget
)

// Load reads, parses and validates the file at path. Errors wrap ErrInvalid
// (for a value that parses but is not allowed) or are TOML decode errors
// rewritten to name the file, line and key. The file, the policy map file
// and the PKIX roots file must be owned by root or the effective user and
// writable by nobody else, and so must the directories above them (see
// package safefile); otherwise the error wraps a *safefile.Error.
func Load(path string) (*Config, error) {
	b, err := safefile.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(path, b)
	if err != nil {
		return nil, err
	}
	// A password in the file is a secret only if nobody else can read it.
	if dsnPassword(c.Store.DSN) {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			err := invalid("store.dsn", "holds a password but %s is readable by others (mode %04o); chmod 0600 the file, or keep the password in PGPASSFILE", path, fi.Mode().Perm())
			if line := lineOf(b, "store.dsn"); line > 0 {
				return nil, fmt.Errorf("config: %s:%d: %w", path, line, err)
			}
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	return c, nil
}

// Parse is Load for a file already read; name is used in errors. The files
// the configuration names are checked as by Load.
func Parse(name string, b []byte) (*Config, error) {
	var c Config
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, decodeError(name, err)
	}
	if err := c.setDefaults(); err != nil {
		var ke *keyError
		if errors.As(err, &ke) {
			if line := lineOf(b, ke.key); line > 0 {
				return nil, fmt.Errorf("config: %s:%d: %w", name, line, err)
			}
		}
		return nil, fmt.Errorf("config: %s: %w", name, err)
	}
	return &c, nil
}

func decodeError(name string, err error) error {
	var sme *toml.StrictMissingError
	if errors.As(err, &sme) && len(sme.Errors) > 0 {
		var msgs []string
		for _, e := range sme.Errors {
			row, _ := e.Position()
			msgs = append(msgs, fmt.Sprintf("%s:%d: unknown key %q", name, row, strings.Join(e.Key(), ".")))
		}
		return fmt.Errorf("config: %s", strings.Join(msgs, "; "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		key := strings.Join(de.Key(), ".")
		if key != "" {
			return fmt.Errorf("config: %s:%d:%d: key %q: %s", name, row, col, key, de.Error())
		}
		return fmt.Errorf("config: %s:%d:%d: %s", name, row, col, de.Error())
	}
	return fmt.Errorf("config: %s: %w", name, err)
}

// keyError is a validation error of one key; Parse adds the line.
type keyError struct {
	key string
	msg string
	err error // the cause, for errors.Is and errors.As; may be nil
}

func (e *keyError) Error() string { return fmt.Sprintf("%v: key %q: %s", ErrInvalid, e.key, e.msg) }
func (e *keyError) Unwrap() []error {
	if e.err != nil {
		return []error{ErrInvalid, e.err}
	}
	return []error{ErrInvalid}
}

func invalid(key, format string, args ...any) error {
	return &keyError{key: key, msg: fmt.Sprintf(format, args...)}
}

// invalidFile is invalid for a file or directory that cannot be used:
// missing, unreadable, or failing the checks of package safefile.
func invalidFile(key string, err error) error {
	return &keyError{key: key, msg: err.Error(), err: err}
}

// lineOf finds the line of key ("a.b.c": key c in table [a.b], or a top-level
// key) in the TOML source, or 0. It understands the plain layout the sample
// file uses (tables in brackets, one key a line), which is all an error
// message needs.
func lineOf(src []byte, key string) int {
	table, name := "", key
	if i := strings.Index(key, ".\""); i >= 0 {
		table, name = key[:i], strings.Trim(key[i+1:], "\"")
	} else if i := strings.LastIndex(key, "."); i >= 0 {
		table, name = key[:i], key[i+1:]
	}
	cur := ""
	for n, line := range strings.Split(string(src), "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			cur = strings.Trim(l, "[] ")
			continue
		}
		k, _, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k = strings.Trim(strings.TrimSpace(k), "\"'")
		if (cur == table && k == name) || (table != "" && cur == "" && k == key) || (cur != "" && table == cur+"."+k) {
			return n + 1
		}
		// Keys under a table written inline: policy.recipients."x".
		if cur != "" && strings.HasPrefix(table, cur) && cur+"."+k == key {
			return n + 1
		}
	}
	return 0
}

func (c *Config) setDefaults() error {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	network, addr, err := ParseListen(c.Listen)
	if err != nil {
		return invalid("listen", "%v", err)
	}
	c.Network, c.Address = network, addr
	if c.SocketMode == "" {
		c.SocketMode = DefaultSocketMode
	}
	mode, err := strconv.ParseUint(c.SocketMode, 8, 32)
	if err != nil || mode > 0o777 {
		return invalid("socket_mode", "want an octal mode like \"0660\", got %q", c.SocketMode)
	}
	c.FileMode = os.FileMode(mode)

	for i, d := range c.LocalDomains {
		n, err := address.ParseDomainPattern(strings.TrimSpace(d))
		if err != nil {
			return invalid("local_domains", "entry %d: %v", i+1, err)
		}
		c.LocalDomains[i] = n
	}

	switch c.LogLevel {
	case "":
		c.LogLevel = "info"
	case "debug", "info", "warn", "error":
	default:
		return invalid("log_level", "want debug, info, warn or error, got %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "":
		c.LogFormat = "text"
	case "text", "json":
	default:
		return invalid("log_format", "want text or json, got %q", c.LogFormat)
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxEncryptedSize == nil {
		v := ByteSize(DefaultMaxEncryptedSize)
		c.MaxEncryptedSize = &v
	} else if *c.MaxEncryptedSize < 0 {
		return invalid("max_encrypted_size", "must not be negative (0 turns the check off)")
	}
	if c.MemoryThreshold == 0 {
		c.MemoryThreshold = DefaultMemoryThreshold
	}
	if c.MemoryThreshold > c.MaxMessageSize {
		c.MemoryThreshold = c.MaxMessageSize
	}
	if c.SpoolDir != "" {
		// Spooled bodies are plaintext: the directory must be the daemon's
		// alone. A missing one is made (0700) at start, so its parent must
		// be safe to make it in.
		err := safefile.CheckDir(c.SpoolDir)
		if errors.Is(err, fs.ErrNotExist) {
			if perr := safefile.CheckParent(c.SpoolDir); perr != nil {
				err = fmt.Errorf("%q does not exist and cannot be made: %w", c.SpoolDir, perr)
			} else {
				err = nil
			}
		}
		if err != nil {
			return invalidFile("spool_dir", err)
		}
	}

	if len(c.DNS.Resolvers) == 0 {
		c.DNS.Resolvers = []string{"127.0.0.1:53"}
	}
	for i, r := range c.DNS.Resolvers {
		hp, loopback, err := parseResolver(r)
		if err != nil {
			return invalid("dns.resolvers", "entry %d: %v", i+1, err)
		}
		if !loopback && !c.DNS.Trusted {
			return invalid("dns.resolvers", "entry %d: %s is not on loopback; its AD bit could be forged on the way, so it is refused unless dns.trusted = true says the path is protected", i+1, r)
		}
		c.DNS.Resolvers[i] = hp
	}
	if c.DNS.Timeout == 0 {
		c.DNS.Timeout = Duration(DefaultDNSTimeout)
	}
	if c.DNS.CacheSize == 0 {
		c.DNS.CacheSize = DefaultCacheSize
	}
	if c.DNS.CacheSize < 0 {
		return invalid("dns.cache_size", "must not be negative")
	}
	if c.Timeouts.Message == 0 {
		c.Timeouts.Message = Duration(DefaultMessageTimeout)
	}
	if c.Timeouts.Shutdown == 0 {
		c.Timeouts.Shutdown = Duration(DefaultShutdownTimeout)
	}
	if c.Timeouts.Rcpt == nil {
		d := Duration(DefaultRcptTimeout)
		c.Timeouts.Rcpt = &d
	}
	if *c.Timeouts.Rcpt > c.Timeouts.Message {
		return invalid("timeouts.rcpt", "%s is longer than timeouts.message", time.Duration(*c.Timeouts.Rcpt))
	}

	if c.Policy.Default == "" {
		c.Policy.Default = policy.LevelDane.String()
	}
	def, err := policy.ParseLevel(c.Policy.Default)
	if err != nil {
		return invalid("policy.default", "%v", err)
	}
	t := policy.NewTable(def)
	for k, v := range c.Policy.Recipients {
		e, err := policy.ParseEntry(v)
		if err != nil {
			return invalid("policy.recipients."+strconv.Quote(k), "%v", err)
		}
		if err := t.SetEntry(k, e); err != nil {
			return invalid("policy.recipients."+strconv.Quote(k), "%v", err)
		}
	}
	c.Levels = t
	if c.Policy.MapFile != "" {
		b, err := safefile.ReadFile(c.Policy.MapFile)
		if err != nil {
			return invalidFile("policy.map_file", err)
		}
		if err := policy.ParseMap(c.Policy.MapFile, bytes.NewReader(b), t.Clone()); err != nil {
			return invalid("policy.map_file", "%v", err)
		}
	}
	if c.Policy.MapCheckInterval == 0 {
		c.Policy.MapCheckInterval = Duration(DefaultMapInterval)
	}

	if c.Exempt.Senders == nil {
		c.Exempt.Senders = append([]string(nil), policy.DefaultExemptSenders...)
	}
	if c.Exempt.Recipients == nil {
		c.Exempt.Recipients = append([]string(nil), policy.DefaultExemptRecipients...)
	}
	// Each list is checked on its own so that the error names its key.
	if _, err := policy.NewExemptions(c.Exempt.Senders, nil); err != nil {
		return invalid("exempt.senders", "%v", err)
	}
	ex, err := policy.NewExemptions(c.Exempt.Senders, c.Exempt.Recipients)
	if err != nil {
		return invalid("exempt.recipients", "%v", err)
	}
	c.Exemptions = ex

	if c.Reinject.Address != "" {
		addr, err := parseReinject(c.Reinject.Address)
		if err != nil {
			return invalid("reinject.address", "%v", err)
		}
		c.ReinjectAddress = addr
	}
	if err := c.setCryptoDefaults(); err != nil {
		return err
	}
	if err := c.setLimitDefaults(); err != nil {
		return err
	}
	if err := c.setInboundDefaults(); err != nil {
		return err
	}
	if err := c.setStoreDefaults(); err != nil {
		return err
	}
	if err := c.setGatewayDefaults(); err != nil {
		return err
	}
	if c.Reinject.Helo == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		c.Reinject.Helo = h
	}
	if c.Reinject.Timeout == 0 {
		c.Reinject.Timeout = Duration(DefaultReinjectTimeout)
	}
	// A bare TOML integer decodes into a Duration as nanoseconds (go-toml
	// sets the int64 directly): "timeout = 5" would be 5ns. No duration
	// here is meaningful below a millisecond, so that is the wrong type.
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"dns.timeout", c.DNS.Timeout}, {"timeouts.message", c.Timeouts.Message}, {"timeouts.shutdown", c.Timeouts.Shutdown},
		{"timeouts.rcpt", *c.Timeouts.Rcpt}, {"policy.map_check_interval", c.Policy.MapCheckInterval},
		{"reinject.timeout", c.Reinject.Timeout}, {"smime.cert_dir_check_interval", c.SMIME.CertDirCheckInterval},
	} {
		if d.v > 0 && d.v < Duration(time.Millisecond) {
			return invalid(d.key, "%s is too short; write a duration as a string like \"5s\" (a bare number is nanoseconds)", time.Duration(d.v))
		}
	}
	return nil
}

// Defaults of [direction] and [inbound].
var (
	DefaultOutboundDaemons  = []string{"ORIGINATING"}
	DefaultOutboundNetworks = []string{"127.0.0.0/8", "::1/128"}
)

// setInboundDefaults fills in and checks [direction] and [inbound].
func (c *Config) setInboundDefaults() error {
	d := &c.Direction
	if d.InboundDaemons == nil {
		d.InboundDaemons = []string{}
	}
	if d.OutboundDaemons == nil {
		d.OutboundDaemons = append([]string(nil), DefaultOutboundDaemons...)
	}
	for _, k := range []struct {
		key  string
		list []string
	}{{"direction.inbound_daemons", d.InboundDaemons}, {"direction.outbound_daemons", d.OutboundDaemons}} {
		for i, n := range k.list {
			if n == "" || strings.ContainsAny(n, " \t\r\n") {
				return invalid(k.key, "entry %d: %q is not a daemon name", i+1, n)
			}
		}
	}
	for _, n := range d.InboundDaemons {
		if slices.Contains(d.OutboundDaemons, n) {
			return invalid("direction.inbound_daemons", "%q is in outbound_daemons too", n)
		}
	}
	if d.Authenticated == nil {
		v := "outbound"
		d.Authenticated = &v
	}
	r := milter.DirectionRules{InboundDaemons: d.InboundDaemons, OutboundDaemons: d.OutboundDaemons}
	switch *d.Authenticated {
	case "":
	case "inbound", "outbound":
		dir := parseDirection(*d.Authenticated)
		r.Authenticated = &dir
	default:
		return invalid("direction.authenticated", "want outbound, inbound or \"\" (rule off), got %q", *d.Authenticated)
	}
	if d.OutboundNetworks == nil {
		d.OutboundNetworks = append([]string(nil), DefaultOutboundNetworks...)
	}
	for i, n := range d.OutboundNetworks {
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(n))
			if aerr != nil {
				return invalid("direction.outbound_networks", "entry %d: %q is not an address or CIDR prefix like 192.0.2.0/24", i+1, n)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		r.OutboundNetworks = append(r.OutboundNetworks, p.Masked())
	}
	switch d.Default {
	case "":
		d.Default = "inbound"
	case "inbound", "outbound":
	default:
		return invalid("direction.default", "want inbound or outbound, got %q", d.Default)
	}
	r.Default = parseDirection(d.Default)
	c.DirectionRules = r

	in := &c.Inbound
	if in.Default == "" {
		in.Default = policy.InboundReport.String()
	}
	def, err := policy.ParseInboundEntry(in.Default)
	if err != nil {
		return invalid("inbound.default", "%v", err)
	}
	t := policy.NewInboundTable(def.Level)
	if def.DryRun {
		// A dry-run default is an entry for every sender: the root of
		// all domains cannot be written as a key, so keep it apart.
		return invalid("inbound.default", "dry-run is given per entry in [inbound.senders], or for everything with dry_run = true")
	}
	for k, v := range in.Senders {
		e, err := policy.ParseInboundEntry(v)
		if err != nil {
			return invalid("inbound.senders."+strconv.Quote(k), "%v", err)
		}
		if err := t.SetEntry(k, e); err != nil {
			return invalid("inbound.senders."+strconv.Quote(k), "%v", err)
		}
	}
	c.InboundLevels = t
	if in.AuthservID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = milter.DefaultAuthservID
		}
		if !validAuthservID(h) {
			return invalid("inbound.authserv_id", "the host name %q is not a valid authserv-id; set authserv_id to this host's domain name", h)
		}
		in.AuthservID = h
	}
	if !validAuthservID(in.AuthservID) {
		return invalid("inbound.authserv_id", "%q is not a valid authserv-id (RFC 8601 §2.5: a domain name like mx.example.org)", in.AuthservID)
	}
	switch in.RequireAction {
	case "":
		in.RequireAction = "reject"
	case "reject":
	case "hold":
		c.RequireHold = true
	default:
		return invalid("inbound.require_action", "want reject or hold, got %q", in.RequireAction)
	}
	if in.MaxVerifySize == 0 {
		// A message is verified whole in memory, charged to the memory
		// budget: one larger than the budget could never be verified (a
		// require sender would be deferred until it bounces).
		in.MaxVerifySize = min(c.MaxMessageSize, c.Limits.MemoryBudget)
	}
	if in.MaxVerifySize > c.MaxMessageSize {
		return invalid("inbound.max_verify_size", "%d is more than max_message_size (%d): a larger message is not kept whole", int64(in.MaxVerifySize), int64(c.MaxMessageSize))
	}
	if in.MaxVerifySize > c.Limits.MemoryBudget {
		return invalid("inbound.max_verify_size", "%d is more than limits.memory_budget (%d): a message is verified whole in memory, within the budget, so a larger one could never be verified", int64(in.MaxVerifySize), int64(c.Limits.MemoryBudget))
	}
	return nil
}

func parseDirection(s string) milter.Direction {
	if s == "outbound" {
		return milter.Outbound
	}
	return milter.Inbound
}

// validAuthservID accepts a domain-like authserv-id (RFC 8601 §2.5: "a
// token ... such as the DNS domain name of the host"): labels of letters,
// digits and hyphens, dot-separated, at most 253 characters, so that it is
// an RFC 2045 token that needs no quoting.
func validAuthservID(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// IsLocal reports whether domain (lowercase, no trailing dot) is one of the
// local domains.
func (c *Config) IsLocal(domain string) bool {
	domain = address.NormalizeDomain(domain)
	return slices.ContainsFunc(c.LocalDomains, func(d string) bool { return address.MatchDomain(d, domain) })
}

// parseResolver accepts "ip", "ip:port", "[v6]:port" and returns host:port and
// whether the address is on loopback.
func parseResolver(s string) (string, bool, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(ip.String(), "53"), ip.IsLoopback(), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return "", false, fmt.Errorf("%q is not an IP address with optional port (host names are not allowed: resolving them would need DNS)", s)
	}
	return ap.String(), ap.Addr().IsLoopback(), nil
}

func (c *Config) setCryptoDefaults() error {
	if c.SMIME.Cipher == "" {
		c.SMIME.Cipher = smime.AES256CBC.String()
	}
	ci, err := smime.ParseCipher(c.SMIME.Cipher)
	if err != nil {
		return invalid("smime.cipher", "%v", err)
	}
	c.Cipher = ci
	c.CipherDomains = map[string]smime.Cipher{}
	for k, v := range c.SMIME.Domains {
		d, err := address.ParseDomainPattern(strings.TrimSpace(k))
		if err != nil {
			return invalid("smime.domains."+strconv.Quote(k), "%v", err)
		}
		ci, err := smime.ParseCipher(v)
		if err != nil {
			return invalid("smime.domains."+strconv.Quote(k), "%v", err)
		}
		c.CipherDomains[d] = ci
	}
	if c.SMIME.CertDir != "" {
		if fi, err := os.Stat(c.SMIME.CertDir); err != nil || !fi.IsDir() {
			return invalid("smime.cert_dir", "%q is not a directory", c.SMIME.CertDir)
		}
	}
	if c.SMIME.CertDirCheckInterval == 0 {
		c.SMIME.CertDirCheckInterval = Duration(30 * time.Second)
	}
	if c.SMIME.PKIXRoots != "" {
		b, err := safefile.ReadFile(c.SMIME.PKIXRoots)
		if err != nil {
			return invalidFile("smime.pkix_roots", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return invalid("smime.pkix_roots", "%s holds no PEM certificate", c.SMIME.PKIXRoots)
		}
		c.Roots = pool
	}
	if c.OpenPGP.Enabled == nil {
		t := true
		c.OpenPGP.Enabled = &t
	}
	if c.Format.Prefer == "" {
		c.Format.Prefer = "smime"
	}
	if c.Format.Prefer != "smime" && c.Format.Prefer != "openpgp" {
		return invalid("format.prefer", "want smime or openpgp, got %q", c.Format.Prefer)
	}
	c.formatDomains = map[string]string{}
	for k, v := range c.Format.Domains {
		d, err := address.ParseDomainPattern(strings.TrimSpace(k))
		if err != nil {
			return invalid("format.domains."+strconv.Quote(k), "%v", err)
		}
		if v != "smime" && v != "openpgp" {
			return invalid("format.domains."+strconv.Quote(k), "want smime or openpgp, got %q", v)
		}
		c.formatDomains[d] = v
	}
	return nil
}

// setLimitDefaults fills in and checks [limits], timeouts.idle and
// timeouts.packet.
func (c *Config) setLimitDefaults() error {
	if c.Limits.MaxPacket == 0 {
		c.Limits.MaxPacket = DefaultMaxPacket
	}
	if c.Limits.MaxPacket < 1<<20 || c.Limits.MaxPacket > 512<<20 {
		return invalid("limits.max_packet", "want 1MiB to 512MiB (an MTA may send body chunks of up to 1 MiB), got %d", int64(c.Limits.MaxPacket))
	}
	if c.Limits.MaxConnections == 0 {
		c.Limits.MaxConnections = DefaultMaxConnections
	}
	if c.Limits.MaxConnections < 0 {
		return invalid("limits.max_connections", "must not be negative")
	}
	if c.Limits.MemoryBudget == 0 {
		c.Limits.MemoryBudget = DefaultMemoryBudget
	}
	if c.Limits.MemoryBudget < c.MemoryThreshold {
		return invalid("limits.memory_budget", "%d is less than memory_threshold (%d): not even one body would fit", int64(c.Limits.MemoryBudget), int64(c.MemoryThreshold))
	}
	if c.Timeouts.Idle == 0 {
		c.Timeouts.Idle = Duration(DefaultIdleTimeout)
	}
	if c.Timeouts.Packet == 0 {
		c.Timeouts.Packet = Duration(DefaultPacketTimeout)
	}
	if c.Timeouts.Idle < Duration(time.Second) {
		return invalid("timeouts.idle", "%s is too short: the MTA's next command can wait for its SMTP client to send a whole message", time.Duration(c.Timeouts.Idle))
	}
	if c.Timeouts.Packet < Duration(time.Second) {
		return invalid("timeouts.packet", "%s is too short; want at least 1s", time.Duration(c.Timeouts.Packet))
	}
	return nil
}

// CipherFor returns the S/MIME cipher override for a recipient domain: the
// entry for the domain, else for the nearest ".parent".
func (c *Config) CipherFor(domain string) (smime.Cipher, bool) {
	ci, _, ok := address.LookupDomain(c.CipherDomains, address.NormalizeDomain(domain))
	return ci, ok
}

// PreferOpenPGP reports whether recipients at domain prefer OpenPGP when
// they have both kinds of key.
func (c *Config) PreferOpenPGP(domain string) bool {
	if v, _, ok := address.LookupDomain(c.formatDomains, address.NormalizeDomain(domain)); ok {
		return v == "openpgp"
	}
	return c.Format.Prefer == "openpgp"
}

// parseReinject accepts "host:port", "[v6]:port" or "inet:host:port".
func parseReinject(s string) (string, error) {
	v := s
	if rest, ok := strings.CutPrefix(v, "inet:"); ok {
		v = rest
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" {
		return "", fmt.Errorf("%q: want host:port, e.g. 127.0.0.1:10026", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("%q: bad port %q", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

// ParseListen turns a socket specification as written in Postfix's main.cf
// or Sendmail's .mc file into arguments for net.Listen:
//
//	unix:/path, local:/path, /path   -> ("unix", "/path")
//	inet:host:port, inet:[v6]:port   -> ("tcp", "host:port")   (Postfix)
//	inet:port@host, inet6:port@host  -> ("tcp", "host:port")   (Sendmail)
//	inet:port                        -> ("tcp", ":port")
func ParseListen(s string) (network, address string, err error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		if strings.HasPrefix(s, "/") {
			return "unix", s, nil
		}
		return "", "", fmt.Errorf("%q: want unix:/path, local:/path, inet:host:port or inet:port@host", s)
	}
	switch strings.ToLower(scheme) {
	case "unix", "local":
		if rest == "" || !strings.HasPrefix(rest, "/") {
			return "", "", fmt.Errorf("%q: socket path must be absolute", s)
		}
		return "unix", rest, nil
	case "inet", "inet6", "tcp":
		var host, port string
		if p, h, ok := strings.Cut(rest, "@"); ok { // Sendmail: port@host
			host, port = h, p
		} else if h, p, err := net.SplitHostPort(rest); err == nil { // Postfix: host:port
			host, port = h, p
		} else {
			port = rest
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			return "", "", fmt.Errorf("%q: bad port %q", s, port)
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		return "tcp", net.JoinHostPort(host, port), nil
	}
	return "", "", fmt.Errorf("%q: unknown socket type %q", s, scheme)
}

// String renders the effective configuration as TOML.
func (c *Config) String() string {
	b, err := toml.Marshal(c)
	if err != nil {
		return "# cannot render: " + err.Error()
	}
	return string(b)
}

// setGatewayDefaults checks [gateway]: every decrypt entry an address or
// domain pattern covered by local_domains (the gateway decrypts only its
// own users' mail), on_failure pass or reject.
func (c *Config) setGatewayDefaults() error {
	g := &c.Gateway
	if g.Decrypt == nil {
		g.Decrypt = []string{}
	}
	switch g.OnFailure {
	case "":
		g.OnFailure = "pass"
	case "pass":
	case "reject":
		c.DecryptReject = true
	default:
		return invalid("gateway.on_failure", "want pass or reject, got %q", g.OnFailure)
	}
	l, err := milter.NewDecryptList(g.Decrypt)
	if err != nil {
		return invalid("gateway.decrypt", "%v", err)
	}
	for _, d := range l.Domains() {
		probe := d
		if strings.HasPrefix(d, ".") {
			probe = "any" + d // a domain below the parent
		}
		if !c.IsLocal(probe) {
			return invalid("gateway.decrypt", "%s is not in local_domains: only local users' mail is decrypted", d)
		}
	}
	if len(g.Decrypt) > 0 && g.KeyDir == "" {
		return invalid("gateway.decrypt", "needs gateway.key_dir")
	}
	c.DecryptList = l
	return nil
}
