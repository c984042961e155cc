package main

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryFiles hold the container's memory limit: cgroup v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// tuneRuntime applies the garbage collector settings. A sidecar keeps a
// small live heap and allocates briskly per request, so collecting at 100%
// growth spends much of its CPU in the collector; a higher percentage
// trades memory for CPU. A soft memory limit below the container's keeps
// that trade from ending in an out-of-memory kill. GOGC and GOMEMLIMIT in
// the environment win over both settings.
func tuneRuntime(cfg RuntimeConfig, getenv func(string) string, readFile func(string) ([]byte, error), log *slog.Logger) {
	if getenv("GOGC") == "" && cfg.GCPercent != 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(cfg.MemoryLimit)
	if limit == 0 {
		if c := containerMemory(readFile); c > 0 {
			limit = c / 10 * 9
		}
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
		log.Debug("memory limit set", slog.Int64("bytes", limit))
	}
}

// containerMemory returns the cgroup memory limit, or 0 if there is none.
func containerMemory(readFile func(string) ([]byte, error)) int64 {
	for _, f := range cgroupMemoryFiles {
		b, err := readFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		// cgroup v1 reports "no limit" as a huge number.
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0
		}
		return n
	}
	return 0
}

// parseBytes reads sizes such as "512MiB", "2GiB", "1048576".
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (such as 512MiB)", s)
	}
	return n * mult, nil
}
