package milter

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
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
	"github.com/danemilter/danemilter/policy"

	"github.com/danemilter/danemilter/milter/miltertest"
)

// user is a recipient with a generated key and certificate.
type user struct {
	addr string
	key  *rsa.PrivateKey
	der  []byte
}

var (
	usersMu sync.Mutex
	users   = map[string]*user{}
)

func newUser(t testing.TB, addr string) *user {
	t.Helper()
	usersMu.Lock()
	defer usersMu.Unlock()
	if u, ok := users[addr]; ok {
		return u
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   big.NewInt(time.Now().UnixNano()),
		Subject:        pkix.Name{CommonName: addr},
		EmailAddresses: []string{addr},
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(24 * time.Hour),
		KeyUsage:       x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	u := &user{addr, key, der}
	users[addr] = u
	return u
}

func (u *user) publish(t testing.TB, f *dane.Fake) {
	t.Helper()
	name, err := dane.SMIMEAName(u.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	rr := &dns.SMIMEA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSMIMEA, Class: dns.ClassINET, Ttl: 300},
		Usage: 3, Certificate: hex.EncodeToString(u.der)}
	f.Set(name, dns.TypeSMIMEA, dane.Result{Name: name, Type: dns.TypeSMIMEA, Status: dane.StatusSecure, Records: []dns.RR{rr}, TTL: 300 * time.Second})
}

func setStatus(t testing.TB, f *dane.Fake, addr string, st dane.Status) {
	t.Helper()
	name, err := dane.SMIMEAName(addr, false)
	if err != nil {
		t.Fatal(err)
	}
	f.Set(name, dns.TypeSMIMEA, dane.Result{Name: name, Type: dns.TypeSMIMEA, Status: st, Err: errors.New("test " + st.String())})
}

// decrypt runs openssl cms -decrypt, the independent implementation.
func (u *user) decrypt(t testing.TB, msg []byte) []byte {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("DANEMILTER_INTEGRATION") != "" {
			t.Fatal("openssl not installed")
		}
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	kb, _ := x509.MarshalPKCS8PrivateKey(u.key)
	must(t, os.WriteFile(filepath.Join(dir, "c.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.der}), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "k.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "m.eml"), msg, 0o600))
	out, err := exec.Command(openssl, "cms", "-decrypt", "-binary", "-in", filepath.Join(dir, "m.eml"),
		"-recip", filepath.Join(dir, "c.pem"), "-inkey", filepath.Join(dir, "k.pem")).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("openssl cms -decrypt: %v: %s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// start runs a milter server on loopback and returns its address.
func start(t testing.TB, opts Options) string {
	t.Helper()
	if opts.Levels == nil {
		opts.Levels = policy.NewTable(policy.LevelDane)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func readEML(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	// testdata files are stored with LF; SMTP and milter carry CRLF.
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

// entity returns the MIME entity of a message: its Content-* fields and body.
func entity(t testing.TB, msg []byte) []byte {
	t.Helper()
	hdrs, body, err := miltertest.SplitMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, h := range hdrs {
		if strings.HasPrefix(strings.ToLower(h.Name), "content-") {
			b.WriteString(h.Name + ":" + h.Value + "\r\n")
		}
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

func header(msg []byte, name string) []string {
	hdrs, _, _ := miltertest.SplitMessage(msg)
	var out []string
	for _, h := range hdrs {
		if strings.EqualFold(h.Name, name) {
			out = append(out, strings.TrimSpace(h.Value))
		}
	}
	return out
}

func TestEncryptRoundTrip(t *testing.T) {
	fake := &dane.Fake{}
	alice, bob := newUser(t, "alice@partner.example"), newUser(t, "bob@partner.example")
	alice.publish(t, fake)
	bob.publish(t, fake)
	addr := start(t, Options{Resolver: fake, MemoryThreshold: 4096})

	for _, file := range []string{"plain.eml", "utf8-8bit.eml", "multipart-attachment.eml", "folded-headers.eml", "no-content-type.eml"} {
		t.Run(file, func(t *testing.T) {
			in := readEML(t, file)
			res, err := miltertest.Simulate("tcp", addr, "Q1", "sender@local.example", []string{"alice@partner.example", "<bob@partner.example>"}, in)
			if err != nil {
				t.Fatal(err)
			}
			if res.Final == nil || res.Final.Type != gomilter.ActionAccept {
				t.Fatalf("final action %+v", res.Final)
			}
			out := res.Message
			ct := header(out, "Content-Type")
			if len(ct) != 1 || !strings.HasPrefix(ct[0], "application/pkcs7-mime") || !strings.Contains(ct[0], "enveloped-data") {
				t.Fatalf("Content-Type = %q", ct)
			}
			if cte := header(out, "Content-Transfer-Encoding"); len(cte) != 1 || cte[0] != "base64" {
				t.Errorf("Content-Transfer-Encoding = %q", cte)
			}
			for _, h := range []string{"From", "To", "Subject", "Date", "Message-ID", "Received"} {
				if got, want := header(out, h), header(in, h); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s changed: %q -> %q", h, want, got)
				}
			}
			if tr := header(out, TraceHeader); len(tr) != 1 || !strings.Contains(tr[0], "smime") || !strings.Contains(tr[0], "keys=2") {
				t.Errorf("trace header %q", tr)
			}
			if mv := header(out, "MIME-Version"); len(mv) != 1 {
				t.Errorf("MIME-Version %q", mv)
			}
			for _, m := range res.Modifications {
				if m.Type == gomilter.ActionReplaceBody && len(m.Body) > 65535 {
					t.Errorf("body chunk of %d bytes", len(m.Body))
				}
			}
			want := entity(t, in)
			for _, u := range []*user{alice, bob} {
				got := u.decrypt(t, out)
				if !bytes.Equal(got, want) {
					t.Errorf("%s decrypted entity differs:\n got %q\nwant %q", u.addr, trunc(got), trunc(want))
				}
			}
		})
	}
}

func trunc(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}

func TestLargeBodyChunks(t *testing.T) {
	fake := &dane.Fake{}
	alice := newUser(t, "alice@partner.example")
	alice.publish(t, fake)
	addr := start(t, Options{Resolver: fake, MemoryThreshold: 64 << 10, SpoolDir: t.TempDir()})
	var b bytes.Buffer
	b.WriteString("From: a@local.example\r\nTo: alice@partner.example\r\nSubject: big\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	line := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 3)[:76] + "\r\n"
	for b.Len() < 3<<20 {
		b.WriteString(line)
	}
	in := b.Bytes()
	res, err := miltertest.Simulate("tcp", addr, "Q2", "a@local.example", []string{"alice@partner.example"}, in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Final.Type != gomilter.ActionAccept {
		t.Fatalf("final %+v", res.Final)
	}
	chunks := 0
	for _, m := range res.Modifications {
		if m.Type == gomilter.ActionReplaceBody {
			chunks++
			if len(m.Body) > 65535 {
				t.Fatalf("chunk of %d bytes", len(m.Body))
			}
		}
	}
	if chunks < 60 {
		t.Errorf("only %d body chunks for a 4 MB body", chunks)
	}
	if got := alice.decrypt(t, res.Message); !bytes.Equal(got, entity(t, in)) {
		t.Errorf("large body does not round-trip (%d vs %d bytes)", len(got), len(entity(t, in)))
	}
}

func TestDryRun(t *testing.T) {
	fake := &dane.Fake{}
	newUser(t, "alice@partner.example").publish(t, fake)
	setStatus(t, fake, "bogus@bogus.example", dane.StatusBogus)
	addr := start(t, Options{Resolver: fake, DryRun: true})
	plain := readEML(t, "plain.eml")
	for rcpt, would := range map[string]string{"alice@partner.example": "would encrypt", "bogus@bogus.example": "would tempfail"} {
		res, err := miltertest.Simulate("tcp", addr, "Q4", "s@local.example", []string{rcpt}, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Final.Type != gomilter.ActionAccept {
			t.Fatalf("%s: dry run refused: %+v", rcpt, res.Final)
		}
		_, body, _ := miltertest.SplitMessage(res.Message)
		_, origBody, _ := miltertest.SplitMessage(plain)
		if !bytes.Equal(body, origBody) {
			t.Errorf("%s: dry run changed the body", rcpt)
		}
		if tr := header(res.Message, TraceHeader); len(tr) != 1 || !strings.Contains(tr[0], would) {
			t.Errorf("%s: trace %q, want %q", rcpt, tr, would)
		}
	}
}

// panicResolver simulates a bug in the DNS layer.
type panicResolver struct{}

func (panicResolver) Lookup(context.Context, string, uint16) dane.Result { panic("boom") }

// slowResolver never answers before the context ends.
type slowResolver struct{}

func (slowResolver) Lookup(ctx context.Context, name string, _ uint16) dane.Result {
	<-ctx.Done()
	return dane.Result{Name: name, Status: dane.StatusIndeterminate, Err: ctx.Err()}
}

func TestFailuresDefer(t *testing.T) {
	plain := readEML(t, "plain.eml")
	for name, opts := range map[string]Options{
		"resolver panics": {Resolver: panicResolver{}},
		"message timeout": {Resolver: slowResolver{}, MessageTimeout: 200 * time.Millisecond},
		"spool dir gone":  {Resolver: &dane.Fake{}, MemoryThreshold: 10, SpoolDir: "/nonexistent-danemilter-dir"},
	} {
		t.Run(name, func(t *testing.T) {
			addr := start(t, opts)
			res, err := miltertest.Simulate("tcp", addr, "Q5", "s@local.example", []string{"alice@partner.example"}, plain)
			if err != nil {
				t.Fatal(err)
			}
			// The failure may surface at RCPT TO (the lookup) or at end
			// of message; either way it must be a 451 and nothing may pass.
			act := res.Final
			if len(res.Rcpts) == 1 && res.Rcpts[0] != nil {
				act = res.Rcpts[0]
			}
			if act == nil || act.Type != gomilter.ActionRejectWithCode || !strings.HasPrefix(act.SMTPReply, "451 4.") {
				t.Fatalf("rcpt %+v final %+v, want a 451 tempfail", res.Rcpts, res.Final)
			}
		})
	}
}

func TestOverSizeLimit(t *testing.T) {
	fake := &dane.Fake{}
	newUser(t, "alice@partner.example").publish(t, fake)
	addr := start(t, Options{Resolver: fake, MaxMessageSize: 100, MemoryThreshold: 50})
	res, err := miltertest.Simulate("tcp", addr, "Q6", "s@local.example", []string{"alice@partner.example"}, readEML(t, "multipart-attachment.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Final.Type != gomilter.ActionRejectWithCode || !strings.HasPrefix(res.Final.SMTPReply, "552 5.3.4") {
		t.Fatalf("final %+v", res.Final)
	}
	// Without a key the size does not matter.
	res, err = miltertest.Simulate("tcp", addr, "Q7", "s@local.example", []string{"carol@partner.example"}, readEML(t, "multipart-attachment.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Final.Type != gomilter.ActionAccept {
		t.Fatalf("final %+v", res.Final)
	}
}

// barrierResolver blocks every lookup until n lookups are in flight at once:
// serial lookups can never get past it (they time out instead).
type barrierResolver struct {
	mu      sync.Mutex
	n       int
	waiting int
	release chan struct{}
	called  chan string
	next    dane.Resolver
}

func (b *barrierResolver) Lookup(ctx context.Context, name string, qtype uint16) dane.Result {
	select {
	case b.called <- name:
	default:
	}
	b.mu.Lock()
	b.waiting++
	if b.waiting == b.n {
		close(b.release)
	}
	b.mu.Unlock()
	select {
	case <-b.release:
		return b.next.Lookup(ctx, name, qtype)
	case <-ctx.Done():
		return dane.Result{Name: name, Status: dane.StatusIndeterminate, Err: errors.New("barrier: lookups are not concurrent")}
	}
}

// TestLookupsConcurrent proves that a message's lookups run concurrently.
func TestLookupsConcurrent(t *testing.T) {
	fake := &dane.Fake{}
	var rcpts []string
	for i := range 10 {
		a := "user" + string(rune('a'+i)) + "@partner.example"
		rcpts = append(rcpts, a)
		newUser(t, a).publish(t, fake)
	}
	br := &barrierResolver{n: 10, release: make(chan struct{}), next: fake}
	addr := start(t, Options{Resolver: br, MessageTimeout: 10 * time.Second})
	res, err := miltertest.Simulate("tcp", addr, "Q8", "s@local.example", rcpts, readEML(t, "plain.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Final.Type != gomilter.ActionAccept || !strings.Contains(strings.Join(header(res.Message, "Content-Type"), ""), "pkcs7") {
		t.Errorf("not encrypted: %+v", res.Final)
	}
}

// TestLookupStartsAtRcpt proves the lookup begins at RCPT TO, before DATA.
func TestLookupStartsAtRcpt(t *testing.T) {
	br := &barrierResolver{n: 1, release: make(chan struct{}), called: make(chan string, 1), next: &dane.Fake{}}
	addr := start(t, Options{Resolver: br})
	client := gomilter.NewClient("tcp", addr)
	s, err := client.Session(gomilter.NewMacroBag())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Conn("localhost", gomilter.FamilyInet, 25, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Helo("localhost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mail("s@local.example", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rcpt("alice@partner.example", ""); err != nil {
		t.Fatal(err)
	}
	want, _ := dane.SMIMEAName("alice@partner.example", false)
	select {
	case name := <-br.called:
		if name != want {
			t.Errorf("looked up %q, want %q", name, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no lookup started after RCPT TO")
	}
}
