module github.com/danemilter/danemilter

go 1.26.8

require (
	github.com/ProtonMail/go-crypto v1.5.2
	github.com/d--j/go-milter v0.10.1
	github.com/emersion/go-message v0.18.2
	github.com/emersion/go-msgauth v0.7.0
	github.com/jackc/pgx/v5 v5.13.0
	github.com/miekg/dns v1.1.73
	github.com/pelletier/go-toml/v2 v2.4.3
	go.etcd.io/bbolt v1.5.0
	golang.org/x/net v0.57.0
	software.sslmate.com/src/go-pkcs12 v0.7.4
)

require (
	github.com/cloudflare/circl v1.6.3 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)

// go-milter v0.10.1 with the fixes in third_party/go-milter/PATCHES.md: a
// malformed packet ends its connection instead of panicking the process, a
// panic in a session is recovered, packet size, packet timeout and connection
// count can be bounded, and temporary accept errors are retried. Drop this
// line once upstream has released the fixes.
replace github.com/d--j/go-milter => ./third_party/go-milter
