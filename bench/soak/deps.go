package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauthz/mcpauthz/internal/freeport"
)

// redisServer is where Debian's package installs the Redis server; the
// PostgreSQL binaries are found under /usr/lib/postgresql/<version>/bin.
const redisServer = "/usr/bin/redis-server"

// child is a process the soak started and waits for.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	done chan struct{}
	err  error // Wait's, once done is closed
}

// startChild runs bin with args, its output appended to logPath. The
// child gets SIGKILL if the soak dies without stopping it.
func startChild(name, logPath, bin string, args []string, env []string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

// running reports whether the child has not exited.
func (c *child) running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the child, if it still runs.
func (c *child) signal(sig syscall.Signal) error {
	if !c.running() {
		return fmt.Errorf("%s is not running", c.name)
	}
	return c.cmd.Process.Signal(sig)
}

// stop asks the child to end (SIGTERM, after resuming it in case it is
// stopped) and kills it if it has not within grace.
func (c *child) stop(grace time.Duration) {
	if !c.running() {
		return
	}
	c.cmd.Process.Signal(syscall.SIGCONT)
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// kill ends the child at once.
func (c *child) kill() {
	if c.running() {
		c.cmd.Process.Kill()
		<-c.done
	}
}

// redisProc is a private redis-server without persistence, so a restart
// loses everything, as a Redis failover without replicas would.
type redisProc struct {
	addr, dir string
	proc      *child
}

func startRedis(ctx context.Context, dir string) (*redisProc, error) {
	addr, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r := &redisProc{addr: addr, dir: dir}
	return r, r.start(ctx)
}

func (r *redisProc) start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(r.addr)
	p, err := startChild("redis", filepath.Join(r.dir, "redis.log"), redisServer, []string{
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no",
	}, nil)
	if err != nil {
		return err
	}
	r.proc = p
	return waitFor(ctx, 10*time.Second, "redis", func() error { return redisPing(r.addr) })
}

// kill is a crash: SIGKILL, nothing saved.
func (r *redisProc) kill() { r.proc.kill() }

func (r *redisProc) url(db int) string { return fmt.Sprintf("redis://%s/%d", r.addr, db) }

// redisPing sends PING and expects PONG.
func redisPing(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("redis answered %q", line)
	}
	return nil
}

// pgCluster is a private PostgreSQL cluster. initdb refuses to run as
// root, so as root every PostgreSQL command runs as the postgres user
// (runuser) on a directory that user owns.
type pgCluster struct {
	bin, dir, data, port string
	asUser               []string // the runuser prefix, or nothing
}

func startPostgres(ctx context.Context, dir string) (*pgCluster, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return nil, errors.New("PostgreSQL's initdb is not under /usr/lib/postgresql/*/bin")
	}
	port, err := freeport.Port()
	if err != nil {
		return nil, err
	}
	pg := &pgCluster{bin: filepath.Dir(bins[len(bins)-1]), dir: dir, data: filepath.Join(dir, "data"), port: strconv.Itoa(port)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		pg.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	if out, err := pg.run(ctx, "initdb", "-D", pg.data, "-U", "postgres", "-A", "trust", "--no-sync",
		"-E", "UTF8", "--locale=C"); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	if err := pg.start(ctx); err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, pg.url("postgres"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE mcpauthz"); err != nil {
		return nil, err
	}
	return pg, nil
}

// run runs a PostgreSQL binary, as the postgres user when needed.
func (pg *pgCluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, pg.asUser...), filepath.Join(pg.bin, name)), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = pg.dir
	return cmd.CombinedOutput()
}

// start starts the server and waits until it accepts connections. fsync
// is off: the soak is about the services, not the disk.
func (pg *pgCluster) start(ctx context.Context) error {
	opts := fmt.Sprintf("-p %s -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c max_connections=100",
		pg.port, pg.dir)
	if out, err := pg.run(ctx, "pg_ctl", "-D", pg.data, "-l", filepath.Join(pg.dir, "postgres.log"),
		"-o", opts, "-w", "-t", "30", "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	return nil
}

// stop is a clean shutdown: clients are disconnected, then the server
// stops.
func (pg *pgCluster) stop(ctx context.Context) error {
	if out, err := pg.run(ctx, "pg_ctl", "-D", pg.data, "-m", "fast", "-w", "-t", "30", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// kill stops the server at once, whatever its state; for cleanup. It
// does not use ctx, which may be done by then.
func (pg *pgCluster) kill() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := os.Stat(filepath.Join(pg.data, "postmaster.pid")); err == nil {
		pg.run(ctx, "pg_ctl", "-D", pg.data, "-m", "immediate", "-w", "stop")
	}
}

func (pg *pgCluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%s/%s?sslmode=disable", pg.port, db)
}

// waitFor calls probe until it succeeds, ctx is done or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, probe func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := probe()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
