// Package testredis starts a redis-server of a test's own, on a free
// loopback port, so a test can pause, kill or misconfigure it without
// disturbing the shared one. Tests that use it run where
// MCPAUTHZ_TEST_REDIS_URL is set (CI), which is where redis-server is
// installed, and skip elsewhere.
package testredis

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/internal/freeport"
)

// Start starts the server and returns it and its address; the test's
// cleanup stops it, paused or not.
func Start(t testing.TB) (*exec.Cmd, string) {
	t.Helper()
	if os.Getenv("MCPAUTHZ_TEST_REDIS_URL") == "" {
		t.Skip("MCPAUTHZ_TEST_REDIS_URL is not set")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return cmd, addr
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
	}
}
