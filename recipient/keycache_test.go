package recipient

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"
	"time"

	pgp "github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/policy"
)

// TestOpenPGPRecordParsedOnce: a record that comes again (from the DNS
// cache) yields the same parsed key, for every recipient of every message
// (issue 10: the self-signatures are verified once per record, not per
// recipient).
func TestOpenPGPRecordParsedOnce(t *testing.T) {
	const addr = "carol@pgp.example"
	e, err := pgp.NewEntity("Carol", "", addr, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := e.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	name, err := dane.OPENPGPKEYName(addr, false)
	if err != nil {
		t.Fatal(err)
	}
	rr := &dns.OPENPGPKEY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeOPENPGPKEY, Class: dns.ClassINET, Ttl: 3600},
		PublicKey: base64.StdEncoding.EncodeToString(b.Bytes())}
	fake := &dane.Fake{}
	fake.Set(name, dns.TypeOPENPGPKEY, dane.Result{Name: name, Type: dns.TypeOPENPGPKEY, Status: dane.StatusSecure, Records: []dns.RR{rr}, TTL: time.Hour})
	c := &Config{Resolver: fake, Levels: policy.NewTable(policy.LevelDane), OpenPGP: true}

	first := c.Evaluate(context.Background(), addr, "")
	second := c.Evaluate(context.Background(), addr, "")
	for _, r := range []Recipient{first, second} {
		if r.OPENPGPKEY == nil || len(r.OPENPGPKEY.Usable()) != 1 {
			t.Fatalf("no usable OpenPGP key: %+v", r.OPENPGPKEY)
		}
	}
	if first.OPENPGPKEY.Keys[0].Entity != second.OPENPGPKEY.Keys[0].Entity {
		t.Fatal("the record was parsed again for the second evaluation")
	}
}
