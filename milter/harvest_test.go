package milter

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/harvest"
	"github.com/danemilter/danemilter/milter/miltertest"
	"github.com/danemilter/danemilter/smime"
	"github.com/danemilter/danemilter/verify"
)

// memStore is a harvest.Store in memory.
type memStore struct {
	mu      sync.Mutex
	entries map[string][]harvest.Entry
}

func newMemStore() *memStore { return &memStore{entries: map[string][]harvest.Entry{}} }

func (m *memStore) Put(_ context.Context, e harvest.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.Address = harvest.NormalizeAddress(e.Address)
	e.Fingerprint = harvest.Fingerprint(e.Certificate)
	list := m.entries[e.Address]
	for i, o := range list {
		if o.Fingerprint == e.Fingerprint {
			list[i] = e
			return nil
		}
	}
	m.entries[e.Address] = append(list, e)
	return nil
}

func (m *memStore) Get(_ context.Context, addr string) ([]harvest.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]harvest.Entry(nil), m.entries[harvest.NormalizeAddress(addr)]...), nil
}

func (m *memStore) List(_ context.Context, f func(harvest.Entry) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.entries {
		for _, e := range l {
			if err := f(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memStore) Forget(_ context.Context, addr string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.entries[addr])
	delete(m.entries, addr)
	return n, nil
}

func (m *memStore) Expire(context.Context, time.Time) (int, error) { return 0, nil }
func (m *memStore) Close() error                                   { return nil }

// harvestRecorder is a Harvester that keeps what it is given, synchronously.
type harvestRecorder struct {
	mu  sync.Mutex
	got []harvest.Entry
}

func (r *harvestRecorder) Harvest(e harvest.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e)
}

func (r *harvestRecorder) entries() []harvest.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]harvest.Entry(nil), r.got...)
}

// newPartner is a user whose RSA certificate signs and encrypts.
func newPartner(t *testing.T, addr string) *user {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: addr},
		EmailAddresses: []string{addr}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &user{addr, key, der}
}

// publishSPKI publishes a DNSSEC-secure SMIMEA 3 1 1 record of der for addr.
func publishSPKI(t *testing.T, f *dane.Fake, addr string, der []byte) {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	name, err := dane.SMIMEAName(addr, false)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	rr := &dns.SMIMEA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 300},
		Usage: 3, Selector: 1, MatchingType: 1, Certificate: hex.EncodeToString(sum[:])}
	f.Set(name, dns.TypeSMIMEA, dane.Result{Name: name, Type: dns.TypeSMIMEA, Status: dane.StatusSecure, Records: []dns.RR{rr}, TTL: 300 * time.Second})
}

// signedBy is a message From from, signed by u with `openssl cms -sign`
// (which adds its default SMIMECapabilities: AES-CBC, no GCM, no OAEP).
func signedBy(t *testing.T, u *user, from string) string {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	kb, _ := x509.MarshalPKCS8PrivateKey(u.key)
	must(t, os.WriteFile(filepath.Join(dir, "c.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.der}), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "k.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "in.txt"), []byte("Content-Type: text/plain\r\n\r\nSigned hello.\r\n"), 0o600))
	out, err := exec.Command(openssl, "cms", "-sign", "-in", filepath.Join(dir, "in.txt"), "-signer", filepath.Join(dir, "c.pem"),
		"-inkey", filepath.Join(dir, "k.pem")).Output()
	if err != nil {
		t.Fatalf("openssl cms -sign: %v", err)
	}
	entity := strings.ReplaceAll(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n", "\r\n")
	return "From: " + from + "\r\nTo: user@local.example\r\nSubject: signed\r\nDate: Mon, 1 Dec 2026 10:00:00 +0000\r\n" + entity
}

const outboundMsg = "From: user@local.example\r\nTo: partner@partner.example\r\nSubject: reply\r\n\r\nSecret reply.\r\n"

// sendOut sends outboundMsg from submission and returns the result.
func sendOut(t *testing.T, addr, rcpt string) *miltertest.Result {
	t.Helper()
	res, err := miltertest.Postfix("ORIGINATING", "198.51.100.7").Simulate("tcp", addr, "QOUT", "user@local.example", []string{rcpt}, []byte(outboundMsg))
	if err != nil {
		t.Fatal(err)
	}
	if res.Final == nil || res.Final.Type != gomilter.ActionAccept {
		t.Fatalf("final %+v", res.Final)
	}
	return res
}

// envelopeDER is the CMS of an encrypted message.
func envelopeDER(t *testing.T, msg []byte) []byte {
	t.Helper()
	_, body, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	der, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func capsDER(t *testing.T, oids ...asn1.ObjectIdentifier) []byte {
	t.Helper()
	type capability struct{ ID asn1.ObjectIdentifier }
	var list []capability
	for _, o := range oids {
		list = append(list, capability{o})
	}
	b, err := asn1.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHarvestThenEncrypt is issue 14 end to end through the milter: a
// signed message from a partner whose zone publishes only SMIMEA 3 1 1
// passes and its signer certificate is stored; afterwards a message to the
// partner is encrypted to that certificate, with AES-256-CBC under "auto"
// while the stored capabilities (OpenSSL's) announce no GCM, and with
// AES-256-GCM and RSA-OAEP once they do; `openssl cms -decrypt` reads both.
func TestHarvestThenEncrypt(t *testing.T) {
	const partnerAddr = "partner@partner.example"
	partner := newPartner(t, partnerAddr)
	fake := &dane.Fake{}
	publishSPKI(t, fake, partnerAddr, partner.der)
	store := newMemStore()
	opts := inboundOpts(&verify.Verifier{Resolver: fake}, nil)
	opts.Resolver, opts.Store = fake, store
	opts.SMIME = smime.Options{Cipher: smime.CipherAuto}
	addr := start(t, opts)

	// Before: nothing known, the 3 1 1 record alone gives no key.
	if res := sendOut(t, addr, partnerAddr); len(header(res.Message, "Content-Type")) != 0 {
		t.Fatalf("encrypted before anything was harvested: %q", header(res.Message, "Content-Type"))
	}

	res := simulate(t, addr, mtas[0].mta, []string{"user@local.example"}, signedBy(t, partner, "Partner <partner@Partner.Example>"))
	if ar := strings.Join(authResultsOf(res.Message), "\n"); !strings.Contains(ar, "smime=pass") {
		t.Fatalf("inbound not a pass: %s", ar)
	}
	var entries []harvest.Entry
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if entries, _ = store.Get(context.Background(), partnerAddr); len(entries) > 0 {
			break
		}
	}
	if len(entries) != 1 || !bytes.Equal(entries[0].Certificate, partner.der) || entries[0].Address != partnerAddr || entries[0].LastSeen.IsZero() {
		t.Fatalf("stored %+v", entries)
	}
	caps, err := harvest.ParseCapabilities(entries[0].Capabilities)
	if err != nil || len(caps) == 0 {
		t.Fatalf("stored capabilities %v %v", caps, err)
	}

	oaepOID, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7})
	for _, tc := range []struct {
		name   string
		caps   []byte // nil: as harvested
		cipher string
		oaep   bool
	}{
		{"OpenSSL's capabilities: CBC", nil, "cipher=aes256-cbc", false},
		{"GCM and OAEP announced", capsDER(t, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42},
			asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7}), "cipher=aes256-gcm", true},
		{"only aes128-GCM announced", capsDER(t, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 6}), "cipher=aes128-gcm", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.caps != nil {
				e := entries[0]
				e.Capabilities = tc.caps
				must(t, store.Put(context.Background(), e))
			}
			res := sendOut(t, addr, partnerAddr)
			if ct := header(res.Message, "Content-Type"); len(ct) != 1 || !strings.HasPrefix(ct[0], "application/pkcs7-mime") {
				t.Fatalf("not encrypted: Content-Type %q, %s %q", ct, TraceHeader, header(res.Message, TraceHeader))
			}
			if tr := header(res.Message, TraceHeader); len(tr) != 1 || !strings.Contains(tr[0], tc.cipher) {
				t.Errorf("%s = %q, want %s", TraceHeader, tr, tc.cipher)
			}
			if got := bytes.Contains(envelopeDER(t, res.Message), oaepOID); got != tc.oaep {
				t.Errorf("RSA-OAEP %v, want %v", got, tc.oaep)
			}
			if pt := partner.decrypt(t, res.Message); !bytes.Contains(pt, []byte("Secret reply.")) {
				t.Errorf("decrypted %q", pt)
			}
		})
	}
}

// TestHarvestOnlyPasses: a signature that does not pass (no record, a
// record of another certificate, From not the signer, unsigned) stores
// nothing; and a stored certificate that no secure record matches is never
// encrypted to.
func TestHarvestOnlyPasses(t *testing.T) {
	const partnerAddr = "partner@partner.example"
	partner, other := newPartner(t, partnerAddr), newPartner(t, partnerAddr)
	for _, tc := range []struct {
		name    string
		publish func(f *dane.Fake)
		msg     func() string
		stored  int
	}{
		{"pass", func(f *dane.Fake) { publishSPKI(t, f, partnerAddr, partner.der) }, func() string { return signedBy(t, partner, partnerAddr) }, 1},
		{"record of another certificate", func(f *dane.Fake) { publishSPKI(t, f, partnerAddr, other.der) }, func() string { return signedBy(t, partner, partnerAddr) }, 0},
		{"no record", func(f *dane.Fake) { setStatus(t, f, partnerAddr, dane.StatusSecureDenial) }, func() string { return signedBy(t, partner, partnerAddr) }, 0},
		{"insecure", func(f *dane.Fake) { setStatus(t, f, partnerAddr, dane.StatusInsecure) }, func() string { return signedBy(t, partner, partnerAddr) }, 0},
		{"From is not the signer", func(f *dane.Fake) { publishSPKI(t, f, partnerAddr, partner.der) }, func() string { return signedBy(t, partner, "ceo@partner.example") }, 0},
		{"unsigned", func(f *dane.Fake) { publishSPKI(t, f, partnerAddr, partner.der) }, func() string {
			return "From: " + partnerAddr + "\r\nTo: user@local.example\r\nSubject: x\r\n\r\nHello.\r\n"
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &dane.Fake{}
			tc.publish(fake)
			rec := &harvestRecorder{}
			opts := inboundOpts(&verify.Verifier{Resolver: fake}, nil)
			opts.Resolver, opts.Store, opts.Harvester = fake, newMemStore(), rec
			addr := start(t, opts)
			simulate(t, addr, mtas[1].mta, []string{"user@local.example"}, tc.msg())
			if got := rec.entries(); len(got) != tc.stored {
				t.Fatalf("harvested %d entries, want %d", len(got), tc.stored)
			} else if tc.stored == 1 && (!bytes.Equal(got[0].Certificate, partner.der) || got[0].Capabilities == nil) {
				t.Errorf("harvested %+v", got[0])
			}
		})
	}

	t.Run("stored certificate without a matching record", func(t *testing.T) {
		fake := &dane.Fake{}
		publishSPKI(t, fake, partnerAddr, other.der)
		store := newMemStore()
		must(t, store.Put(context.Background(), harvest.Entry{Address: partnerAddr, Certificate: partner.der}))
		opts := inboundOpts(nil, nil)
		opts.Resolver, opts.Store = fake, store
		res := sendOut(t, start(t, opts), partnerAddr)
		if ct := header(res.Message, "Content-Type"); len(ct) != 0 {
			t.Errorf("encrypted to a certificate no record matches: %q", ct)
		}
	})
}
