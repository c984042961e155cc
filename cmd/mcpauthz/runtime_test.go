package main

import (
	"errors"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

func TestContainerMemory(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"ok/cgroup v2 limit", map[string]string{"/sys/fs/cgroup/memory.max": "268435456\n"}, 268435456},
		{"ok/cgroup v2 unlimited", map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, 0},
		{"ok/cgroup v1 limit", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "536870912"}, 536870912},
		{"ok/cgroup v1 unlimited", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712"}, 0},
		{"ok/no cgroup", nil, 0},
		{"fail/garbage", map[string]string{"/sys/fs/cgroup/memory.max": "lots"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := func(p string) ([]byte, error) {
				if s, ok := tt.files[p]; ok {
					return []byte(s), nil
				}
				return nil, errors.New("no such file")
			}
			if got := containerMemory(read); got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "1024": 1024, "512MiB": 512 << 20, "2 GiB": 2 << 30, "64KiB": 64 << 10, "10B": 10} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"lots", "-1", "1.5GiB", "1TB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
}

// TestTuneRuntime changes process-wide settings; it restores them.
func TestTuneRuntime(t *testing.T) {
	gc := debug.SetGCPercent(100)
	mem := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(mem) })
	noEnv := func(string) string { return "" }
	cgroup := func(p string) ([]byte, error) {
		if p == "/sys/fs/cgroup/memory.max" {
			return []byte("1000000000"), nil
		}
		return nil, errors.New("none")
	}
	log := slog.New(slog.DiscardHandler)

	tuneRuntime(RuntimeConfig{GCPercent: 400}, noEnv, cgroup, log)
	if got := debug.SetGCPercent(100); got != 400 {
		t.Fatalf("GOGC %d, want 400", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 900000000 {
		t.Fatalf("memory limit %d, want 90%% of the container's", got)
	}

	debug.SetMemoryLimit(math.MaxInt64)
	env := func(k string) string { return map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"}[k] }
	tuneRuntime(RuntimeConfig{GCPercent: 400, MemoryLimit: 123}, env, cgroup, log)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC from the environment was overridden: %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("GOMEMLIMIT from the environment was overridden: %d", got)
	}

	tuneRuntime(RuntimeConfig{GCPercent: 400, MemoryLimit: 256 << 20}, noEnv, cgroup, log)
	if got := debug.SetMemoryLimit(-1); got != 256<<20 {
		t.Fatalf("configured memory limit %d", got)
	}
}
