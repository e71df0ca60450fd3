// Package pgtest runs a throwaway PostgreSQL from Debian's packages for
// tests: its own data directory in a temporary directory, listening on
// 127.0.0.1 only, trust authentication, run as the postgres system user
// (so the tests need root, or to run as postgres). Package harvest's tests
// and the integration tests (two danemilter processes sharing one store)
// use it; nothing here is needed to run the daemon.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running (or stopped) test PostgreSQL.
type Server struct {
	bin      string // /usr/lib/postgresql/N/bin
	dir      string
	port     int
	uid, gid uint32
	cmd      *exec.Cmd
	exited   chan struct{}
	schemas  atomic.Int64
}

// Start initialises a data directory in a new temporary directory and starts
// PostgreSQL on a free port of 127.0.0.1. It returns an error when PostgreSQL
// is not installed, there is no postgres user, or the caller may not run
// programs as that user. Close stops the server and removes the directory.
func Start() (*Server, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		return nil, errors.New("pgtest: no /usr/lib/postgresql/*/bin/postgres (run setup.sh)")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if os.Geteuid() != 0 && os.Geteuid() != uid {
		return nil, errors.New("pgtest: PostgreSQL runs as the postgres user: the tests need root")
	}
	dir, err := os.MkdirTemp("", "danemilter-pg-")
	if err != nil {
		return nil, err
	}
	p := &Server{bin: filepath.Dir(bins[len(bins)-1]), dir: dir, uid: uint32(uid), gid: uint32(gid)}
	if err := p.setUp(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

func (p *Server) cred(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: p.uid, Gid: p.gid}}
	c.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=" + p.dir}
	c.Dir = p.dir
}

func (p *Server) setUp() error {
	// The postgres user must reach its directories.
	if err := os.Chmod(p.dir, 0o755); err != nil {
		return err
	}
	if err := os.Chown(p.dir, int(p.uid), int(p.gid)); err != nil {
		return err
	}
	init := exec.Command(filepath.Join(p.bin, "initdb"), "-D", filepath.Join(p.dir, "data"), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
	p.cred(init)
	if out, err := init.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	p.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p.Restart()
}

// Restart starts postgres again on the same data directory and port (after
// Stop) and waits until it answers.
func (p *Server) Restart() error {
	if p.cmd != nil {
		return errors.New("pgtest: already running")
	}
	log, err := os.OpenFile(p.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	c := exec.Command(filepath.Join(p.bin, "postgres"), "-D", filepath.Join(p.dir, "data"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(p.port), "-k", p.dir,
		"-c", "fsync=off", "-c", "max_connections=200")
	p.cred(c)
	c.Stdout, c.Stderr = log, log
	if err := c.Start(); err != nil {
		return err
	}
	p.cmd, p.exited = c, make(chan struct{})
	exited := p.exited
	go func() { c.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, p.DSN(""))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			p.cmd = nil
			b, _ := os.ReadFile(p.LogPath())
			return fmt.Errorf("pgtest: postgres exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("pgtest: postgres did not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop shuts postgres down (SIGINT: fast shutdown) by its PID, keeping the
// data directory for Restart.
func (p *Server) Stop() error {
	if p.cmd == nil {
		return nil
	}
	c := p.cmd
	p.cmd = nil
	if err := c.Process.Signal(syscall.SIGINT); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		c.Process.Kill()
		<-p.exited
		return errors.New("pgtest: postgres did not stop in 30s; killed")
	}
}

// Close stops postgres and removes its directory.
func (p *Server) Close() error {
	err := p.Stop()
	if rerr := os.RemoveAll(p.dir); err == nil {
		err = rerr
	}
	return err
}

// LogPath is postgres's log file, for a failing test to show.
func (p *Server) LogPath() string { return filepath.Join(p.dir, "postgres.log") }

// DSN is the connection URL, with search_path set to schema when given.
func (p *Server) DSN(schema string) string {
	s := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	if schema != "" {
		s += "&search_path=" + schema
	}
	return s
}

// NewSchema makes an empty schema with a fresh name and returns the DSN that
// uses it: each test gets a database of its own in the shared server.
func (p *Server) NewSchema(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d", p.schemas.Add(1))
	conn, err := pgx.Connect(ctx, p.DSN(""))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", err
	}
	return p.DSN(name), nil
}
