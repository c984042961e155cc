package testpg

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mcpauthz/mcpauthz/internal/freeport"
)

// Server is a PostgreSQL server of a test's own, which it may stop and
// start without disturbing the shared one.
type Server struct {
	t    testing.TB
	bin  string
	data string
	port int
	// URL connects to its postgres database.
	URL string
}

// Private starts a PostgreSQL server for the test (initdb in a temporary
// directory, loopback only, fsync off), run as the postgres user when the
// test runs as root, as PostgreSQL requires. It is stopped and removed
// when the test ends. Like Schema, it skips without
// MCPAUTHZ_TEST_POSTGRES_URL: that is where the server is installed.
func Private(t testing.TB) *Server {
	t.Helper()
	if os.Getenv("MCPAUTHZ_TEST_POSTGRES_URL") == "" {
		t.Skip("MCPAUTHZ_TEST_POSTGRES_URL is not set")
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Fatal("initdb not found under /usr/lib/postgresql")
	}
	dir, err := os.MkdirTemp("", "mcpauthz-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: filepath.Dir(bins[len(bins)-1]), data: filepath.Join(dir, "data"), port: port}
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	s.run("initdb", "-D", s.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	s.Start()
	t.Cleanup(func() { s.pgctl("stop", "-m", "immediate") })
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	return s
}

// Start starts the server and waits until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	s.pgctl("start", "-w", "-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", s.port, filepath.Dir(s.data)))
}

// Stop stops the server at once, as a crash would.
func (s *Server) Stop() {
	s.t.Helper()
	s.pgctl("stop", "-w", "-m", "immediate")
}

func (s *Server) pgctl(args ...string) {
	s.t.Helper()
	s.run("pg_ctl", append([]string{"-D", s.data, "-l", filepath.Join(filepath.Dir(s.data), "log")}, args...)...)
}

func (s *Server) run(name string, args ...string) {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(s.bin, name)}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("%s: %v\n%s", name, err, out)
	}
}
