package harvest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/danemilter/danemilter/harvest/pgtest"
)

// testPG is the one PostgreSQL every test of the package shares (TestMain);
// nil when it could not be started, and pgErr says why.
var (
	testPG *pgtest.Server
	pgErr  error
)

func TestMain(m *testing.M) {
	if os.Getenv("HARVEST_CRASH_FILE") != "" {
		os.Exit(m.Run()) // TestBoltCrash's child
	}
	testPG, pgErr = pgtest.Start()
	code := m.Run()
	if testPG != nil {
		if err := testPG.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping PostgreSQL:", err)
		}
	}
	os.Exit(code)
}

// requirePG skips t without a test PostgreSQL, or fails it when
// DANEMILTER_INTEGRATION=1 (as integration/env_test.go does).
func requirePG(t testing.TB) *pgtest.Server {
	t.Helper()
	if testPG == nil {
		if os.Getenv("DANEMILTER_INTEGRATION") == "1" {
			t.Fatalf("DANEMILTER_INTEGRATION=1 but no PostgreSQL: %v", pgErr)
		}
		t.Skipf("no PostgreSQL (run setup.sh): %v", pgErr)
	}
	return testPG
}

// newSchema makes an empty schema and returns the DSN that uses it: each
// test gets a database of its own in the shared server.
func newSchema(t testing.TB) string {
	t.Helper()
	dsn, err := requirePG(t).NewSchema(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func openPG(t *testing.T, o Options) Store {
	t.Helper()
	return openPGAt(t, newSchema(t), o)
}

func openPGAt(t testing.TB, dsn string, o Options) *Postgres {
	t.Helper()
	s, err := OpenPostgres(context.Background(), dsn, o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	testBehaviour(t, openPG)
}

func TestPostgresMigrate(t *testing.T) {
	t.Parallel()
	dsn := newSchema(t)
	// Daemons starting at once: one migrates, the others wait and find
	// the schema current.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			s, err := OpenPostgres(context.Background(), dsn, Options{}, nil)
			if err == nil {
				s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// And once more, later: nothing to do.
	s := openPGAt(t, dsn, Options{})
	var n, v int
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*), max(version) FROM harvest_schema_version").Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations) || v != len(migrations) {
		t.Errorf("schema_version has %d rows, max %d; want %d", n, v, len(migrations))
	}
	// A schema newer than this code is refused.
	if _, err := s.pool.Exec(context.Background(), "INSERT INTO harvest_schema_version (version) VALUES (99)"); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPostgres(context.Background(), dsn, Options{}, nil); err == nil {
		t.Error("schema version 99 accepted")
	}
}

// TestPostgresTwoDaemons has two Stores (two daemons) upsert the same
// entries and entries of their own at once.
func TestPostgresTwoDaemons(t *testing.T) {
	t.Parallel()
	dsn := newSchema(t)
	a, b := openPGAt(t, dsn, Options{}), openPGAt(t, dsn, Options{})
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	shared := make([][]byte, 10)
	for i := range shared {
		shared[i] = newCert(t, fmt.Sprintf("s%d@x.example", i))
	}
	own := newCert(t, "own@x.example")
	var wg sync.WaitGroup
	for d, s := range []*Postgres{a, b} {
		for w := range 4 {
			wg.Go(func() {
				for round := range 20 {
					seen := base.Add(time.Duration(d*1000+w*100+round) * time.Second)
					for i, c := range shared {
						if err := s.Put(ctx, Entry{Address: fmt.Sprintf("s%d@x.example", i), Certificate: c, LastSeen: seen}); err != nil {
							t.Error(err)
							return
						}
					}
					c := append(append([]byte{}, own...), byte(d), byte(w), byte(round))
					if err := s.Put(ctx, Entry{Address: fmt.Sprintf("d%d@x.example", d), Certificate: c, LastSeen: seen}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for i := range shared {
		es := getAll(t, a, fmt.Sprintf("s%d@x.example", i))
		if len(es) != 1 {
			t.Fatalf("shared entry %d: %d rows", i, len(es))
		}
		// The earliest and the latest sighting of all workers.
		if !es[0].FirstSeen.Equal(base) || !es[0].LastSeen.Equal(base.Add(1319*time.Second)) {
			t.Errorf("shared entry %d: first %v last %v", i, es[0].FirstSeen.Sub(base), es[0].LastSeen.Sub(base))
		}
	}
	for d := range 2 {
		if es := getAll(t, b, fmt.Sprintf("d%d@x.example", d)); len(es) != 80 {
			t.Errorf("daemon %d's own entries: %d, want 80", d, len(es))
		}
	}
}

// TestPostgresOutage stops the shared PostgreSQL: Get fails within the
// timeout, a harvested entry waits in the Harvester's queue and is written
// once PostgreSQL is back on the same port and data directory. Not
// parallel: it runs while no other test uses the server.
func TestPostgresOutage(t *testing.T) {
	p := requirePG(t)
	dsn := newSchema(t)
	const timeout = 500 * time.Millisecond
	s := openPGAt(t, dsn, Options{Timeout: timeout})
	h := NewHarvester(s, nil, HarvesterOptions{MinBackoff: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond})
	defer h.Close()
	ctx := context.Background()
	mustPut(t, s, Entry{Address: "before@x.example", Certificate: newCert(t, "before@x.example")})

	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			if err := p.Restart(); err != nil {
				t.Errorf("restarting PostgreSQL: %v", err)
			}
		}
	}()
	start := time.Now()
	if _, err := s.Get(ctx, "before@x.example"); err == nil {
		t.Error("Get with PostgreSQL stopped: no error")
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Errorf("Get took %v with a %v timeout", d, timeout)
	}
	cert := newCert(t, "during@x.example")
	hstart := time.Now()
	h.Harvest(Entry{Address: "during@x.example", Certificate: cert})
	if d := time.Since(hstart); d > 200*time.Millisecond { // a mutex and an append; generous for a loaded machine
		t.Errorf("Harvest blocked %v", d)
	}
	time.Sleep(3 * timeout)
	if n := h.Pending(); n != 1 {
		t.Errorf("pending with PostgreSQL down: %d, want 1", n)
	}

	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	deadline := time.Now().Add(15 * time.Second)
	for {
		es, err := s.Get(ctx, "during@x.example")
		if err == nil && len(es) == 1 && es[0].Fingerprint == Fingerprint(cert) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queued entry not written after restart: %v, %d entries, %d pending", err, len(es), h.Pending())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := h.Pending(); n != 0 {
		t.Errorf("pending after restart: %d", n)
	}
	if es := getAll(t, s, "before@x.example"); len(es) != 1 {
		t.Errorf("entry from before the outage: %d", len(es))
	}
}
