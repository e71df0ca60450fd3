package harvest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// benchStore fills s with n addresses of one certificate each.
func benchStore(b *testing.B, s Store, n int) [][]byte {
	b.Helper()
	cert := newCert(b, "bench@x.example")
	certs := make([][]byte, n)
	for i := range n {
		certs[i] = append(append([]byte{}, cert...), byte(i), byte(i>>8), byte(i>>16))
		if err := s.Put(context.Background(), Entry{Address: fmt.Sprintf("b%d@x.example", i), Certificate: certs[i]}); err != nil {
			b.Fatal(err)
		}
	}
	return certs
}

func benchGet(b *testing.B, s Store) {
	const n = 1000
	benchStore(b, s, n)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		es, err := s.Get(ctx, fmt.Sprintf("b%d@x.example", i%n))
		if err != nil || len(es) != 1 {
			b.Fatal(err, len(es))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}

func benchPut(b *testing.B, s Store) {
	const n = 1000
	certs := benchStore(b, s, n)
	ctx := context.Background()
	now := time.Now()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Upserts of known entries: what harvesting mostly does.
		e := Entry{Address: fmt.Sprintf("b%d@x.example", i%n), Certificate: certs[i%n], LastSeen: now.Add(time.Duration(i) * time.Microsecond)}
		if err := s.Put(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

func benchBolt(b *testing.B) Store {
	s, err := OpenBolt(filepath.Join(b.TempDir(), "harvest.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkBoltGet(b *testing.B)     { benchGet(b, benchBolt(b)) }
func BenchmarkBoltPut(b *testing.B)     { benchPut(b, benchBolt(b)) }
func BenchmarkPostgresGet(b *testing.B) { benchGet(b, openPGAt(b, newSchema(b), Options{})) }
func BenchmarkPostgresPut(b *testing.B) { benchPut(b, openPGAt(b, newSchema(b), Options{})) }
