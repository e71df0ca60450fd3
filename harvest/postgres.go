package harvest

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema, one step each; step i brings schema_version
// to i+1. A step is never edited once released: add one.
var migrations = []string{
	// 1: the entries. (address, fingerprint) is the key Put upserts on;
	// last_seen is ordered for Expire and for dropping the least recently
	// seen past MaxEntries.
	`CREATE TABLE harvest_entries (
		address      text        NOT NULL,
		fingerprint  text        NOT NULL,
		certificate  bytea       NOT NULL,
		capabilities bytea,
		first_seen   timestamptz NOT NULL,
		last_seen    timestamptz NOT NULL,
		PRIMARY KEY (address, fingerprint)
	);
	CREATE INDEX harvest_entries_last_seen ON harvest_entries (last_seen);`,
}

// migrationLock is the pg_advisory_xact_lock key under which the schema is
// migrated, so that daemons starting at once do not race ("danemilter"
// as ASCII, truncated to fit an int8).
const migrationLock int64 = 0x64616e656d696c74

// Postgres is the shared Store: a table in a PostgreSQL database that
// several danemilter hosts use at once.
type Postgres struct {
	pool   *pgxpool.Pool
	opts   Options
	logger *slog.Logger
	expiry expiry
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to the database dsn names (a libpq connection
// string or URL; a password is best kept in PGPASSFILE, not in dsn) and
// creates or migrates the schema. Every call is bounded by opts.Timeout.
// Errors are pgx's, wrapped with what was being done.
func OpenPostgres(ctx context.Context, dsn string, opts Options, logger *slog.Logger) (*Postgres, error) {
	opts = opts.withDefaults()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("harvest: postgres dsn: %w", err)
	}
	cfg.ConnConfig.ConnectTimeout = opts.Timeout
	if cfg.MaxConns > 8 {
		cfg.MaxConns = 8 // a few lookups at once; not one per message
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("harvest: postgres: %w", err)
	}
	s := &Postgres{pool: pool, opts: opts, logger: logger}
	s.expiry.due(time.Now())
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if _, err := s.Expire(ctx, time.Now().Add(-opts.ExpireAfter)); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// migrate brings the schema to the newest version in one transaction
// under an advisory lock: a second daemon waits, then finds nothing to do.
func (s *Postgres) migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*s.opts.Timeout)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("harvest: postgres: %w", err)
	}
	defer tx.Rollback(ctx) // after Commit a no-op
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("harvest: postgres: migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS harvest_schema_version (
		version integer PRIMARY KEY,
		applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("harvest: postgres: schema_version: %w", err)
	}
	var version int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM harvest_schema_version").Scan(&version); err != nil {
		return fmt.Errorf("harvest: postgres: schema_version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("harvest: postgres: schema version %d is newer than this danemilter knows (%d)", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return fmt.Errorf("harvest: postgres: migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO harvest_schema_version (version) VALUES ($1)", i+1); err != nil {
			return fmt.Errorf("harvest: postgres: migration %d: %w", i+1, err)
		}
		if s.logger != nil {
			s.logger.Info("harvest store schema migrated", "version", i+1)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("harvest: postgres: migration: %w", err)
	}
	return nil
}

// Put implements Store with INSERT ... ON CONFLICT DO UPDATE, which
// PostgreSQL makes atomic against concurrent upserts of the same key from
// other daemons. Once an hour Put also expires entries not seen for
// Options.ExpireAfter.
func (s *Postgres) Put(ctx context.Context, e Entry) error {
	now := time.Now()
	e, err := normalize(e, s.opts, now)
	if err != nil {
		return err
	}
	if s.expiry.due(now) {
		if _, err := s.Expire(ctx, now.Add(-s.opts.ExpireAfter)); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	var inserted bool
	err = s.pool.QueryRow(ctx, `
		INSERT INTO harvest_entries AS h (address, fingerprint, certificate, capabilities, first_seen, last_seen)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (address, fingerprint) DO UPDATE SET
			first_seen   = LEAST(h.first_seen, EXCLUDED.first_seen),
			last_seen    = GREATEST(h.last_seen, EXCLUDED.last_seen),
			capabilities = CASE WHEN EXCLUDED.last_seen >= h.last_seen AND EXCLUDED.capabilities IS NOT NULL
			                    THEN EXCLUDED.capabilities ELSE h.capabilities END
		RETURNING (xmax = 0)`,
		e.Address, e.Fingerprint, e.Certificate, e.Capabilities, e.FirstSeen, e.LastSeen).Scan(&inserted)
	if err != nil {
		return fmt.Errorf("harvest: postgres: put %s: %w", e.Address, err)
	}
	if !inserted {
		return nil
	}
	// A new entry: past MaxEntries the least recently seen go first.
	_, err = s.pool.Exec(ctx, `
		DELETE FROM harvest_entries WHERE (address, fingerprint) IN (
			SELECT address, fingerprint FROM harvest_entries
			ORDER BY last_seen DESC, address, fingerprint OFFSET $1)`, s.opts.MaxEntries)
	if err != nil {
		return fmt.Errorf("harvest: postgres: bound entries: %w", err)
	}
	return nil
}

const entryColumns = "address, fingerprint, certificate, capabilities, first_seen, last_seen"

func scanEntries(rows pgx.Rows, f func(Entry) error) error {
	defer rows.Close()
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.Address, &e.Fingerprint, &e.Certificate, &e.Capabilities, &e.FirstSeen, &e.LastSeen); err != nil {
			return err
		}
		e.FirstSeen, e.LastSeen = e.FirstSeen.UTC(), e.LastSeen.UTC()
		if err := f(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Get implements Store. When the database cannot be reached it returns an
// error within Options.Timeout; callers read that as "not known".
func (s *Postgres) Get(ctx context.Context, addr string) ([]Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT "+entryColumns+` FROM harvest_entries
		WHERE address = $1 AND last_seen >= $2 ORDER BY last_seen DESC, fingerprint`,
		NormalizeAddress(addr), time.Now().Add(-s.opts.ExpireAfter))
	if err != nil {
		return nil, fmt.Errorf("harvest: postgres: get: %w", err)
	}
	var out []Entry
	if err := scanEntries(rows, func(e Entry) error { out = append(out, e); return nil }); err != nil {
		return nil, fmt.Errorf("harvest: postgres: get: %w", err)
	}
	return out, nil
}

// List implements Store. Only its first answer is bounded by
// Options.Timeout; ctx bounds the walk.
func (s *Postgres) List(ctx context.Context, f func(Entry) error) error {
	rows, err := s.pool.Query(ctx, "SELECT "+entryColumns+" FROM harvest_entries ORDER BY address, fingerprint")
	if err != nil {
		return fmt.Errorf("harvest: postgres: list: %w", err)
	}
	var ferr error
	err = scanEntries(rows, func(e Entry) error {
		ferr = f(e)
		return ferr
	})
	if ferr != nil {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("harvest: postgres: list: %w", err)
	}
	return nil
}

// Forget implements Store.
func (s *Postgres) Forget(ctx context.Context, addr string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	tag, err := s.pool.Exec(ctx, "DELETE FROM harvest_entries WHERE address = $1", NormalizeAddress(addr))
	if err != nil {
		return 0, fmt.Errorf("harvest: postgres: forget: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Expire implements Store.
func (s *Postgres) Expire(ctx context.Context, notSeenSince time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	tag, err := s.pool.Exec(ctx, "DELETE FROM harvest_entries WHERE last_seen < $1", notSeenSince)
	if err != nil {
		return 0, fmt.Errorf("harvest: postgres: expire: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Close implements Store.
func (s *Postgres) Close() error {
	s.pool.Close()
	return nil
}
