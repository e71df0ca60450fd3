package openpgp

import (
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"
)

func TestKeyCacheRemembersParsingOnly(t *testing.T) {
	now := time.Now()
	cfg := &packet.Config{KeyLifetimeSecs: 3600}
	key := newKey(t, kindCv25519, alice, cfg)
	rr := recordFor(t, alice, key)
	var c KeyCache

	k1, rej := c.Select(alice, []dns.RR{rr}, now)
	if len(k1) != 1 || len(rej) != 0 {
		t.Fatalf("first select: %d keys, rejected %v", len(k1), rej)
	}
	k2, _ := c.Select(alice, []dns.RR{rr}, now)
	if len(k2) != 1 || k2[0].Entity != k1[0].Entity {
		t.Fatalf("second select did not yield the remembered entity")
	}
	if c.parses != 1 {
		t.Fatalf("record parsed %d times, want 1", c.parses)
	}

	// What depends on the recipient or the time is checked on every call.
	tests := []struct {
		name string
		addr string
		now  time.Time
	}{
		{"other address", "mallory@example.com", now},
		{"after expiry", alice, now.Add(2 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, rej := c.Select(tt.addr, []dns.RR{rr}, tt.now)
			want, wantRej := SelectKeys(tt.addr, []dns.RR{rr}, tt.now)
			if len(keys) != 0 || len(rej) != 1 {
				t.Fatalf("cached select: %d keys, rejected %v; want none", len(keys), rej)
			}
			if len(want) != 0 || len(wantRej) != 1 || wantRej[0].Reason != rej[0].Reason {
				t.Fatalf("cached reason %q differs from SelectKeys' %v", rej[0].Reason, wantRej)
			}
		})
	}
	if c.parses != 1 {
		t.Fatalf("record parsed %d times, want 1", c.parses)
	}
}

func TestKeyCacheRemembersFailures(t *testing.T) {
	bad := recordOf(t, alice, []byte("not a key"))
	var c KeyCache
	for range 3 {
		keys, rej := c.Select(alice, []dns.RR{bad}, time.Now())
		if len(keys) != 0 || len(rej) != 1 {
			t.Fatalf("garbage record: %d keys, %v", len(keys), rej)
		}
	}
	if c.parses != 1 {
		t.Fatalf("garbage parsed %d times, want 1", c.parses)
	}
}

func TestKeyCacheBounded(t *testing.T) {
	now := time.Now()
	a := recordFor(t, alice, newKey(t, kindCv25519, alice, nil))
	b := recordFor(t, alice, newKey(t, kindCv25519, alice, &packet.Config{}))
	tests := []struct {
		name  string
		max   int
		order []*dns.OPENPGPKEY
		want  int
	}{
		{"fits", 2, []*dns.OPENPGPKEY{a, b, a, b}, 2},
		{"one slot", 1, []*dns.OPENPGPKEY{a, b, a, b}, 4},
		{"one slot, same record", 1, []*dns.OPENPGPKEY{a, a, a}, 1},
		{"off", -1, []*dns.OPENPGPKEY{a, a, a}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := KeyCache{Max: tt.max}
			for _, rr := range tt.order {
				if keys, _ := c.Select(alice, []dns.RR{rr}, now); len(keys) != 1 {
					t.Fatalf("no key from a good record")
				}
			}
			if c.parses != tt.want {
				t.Fatalf("parses = %d, want %d", c.parses, tt.want)
			}
			if tt.max > 0 && c.lru.Len() > tt.max {
				t.Fatalf("cache holds %d records, max %d", c.lru.Len(), tt.max)
			}
		})
	}
}

func TestKeyCacheConcurrent(t *testing.T) {
	rr := recordFor(t, alice, newKey(t, kindCv25519, alice, nil))
	var c KeyCache
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				keys, _ := c.Select(alice, []dns.RR{rr}, time.Now())
				if len(keys) != 1 {
					t.Error("no key")
					return
				}
				// The shared entity is only read by encryption (-race).
				if _, err := EncryptMIME(io.Discard, strings.NewReader("Content-Type: text/plain\r\n\r\nhi\r\n"), []*pgp.Entity{keys[0].Entity}, Options{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if c.lru.Len() != 1 {
		t.Fatalf("%d entries for one record", c.lru.Len())
	}
}

// BenchmarkSelectKeys compares selecting a recipient's key from a record
// that comes again (as from the DNS cache) with and without KeyCache.
func BenchmarkSelectKeys(b *testing.B) {
	for _, k := range []keyKind{kindRSA3072, kindCv25519} {
		rrs := []dns.RR{recordFor(b, alice, newKey(b, k, alice, nil))}
		now := time.Now()
		b.Run("key="+string(k)+"/uncached", func(b *testing.B) {
			for b.Loop() {
				SelectKeys(alice, rrs, now)
			}
		})
		b.Run("key="+string(k)+"/cached", func(b *testing.B) {
			var c KeyCache
			for b.Loop() {
				c.Select(alice, rrs, now)
			}
		})
	}
}
