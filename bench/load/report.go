package main

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/mcpauthz/mcpauthz/bench/loadfile"
)

// targetReport is a target's rounds, with the Redis CPU of its median
// round, which is printed but not kept in the file.
type targetReport struct {
	loadfile.Target
	redisCPU time.Duration
}

// median returns the round with the median throughput.
func median(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int { return cmp.Compare(a.RPS, b.RPS) })
	return s[len(s)/2]
}

// Targets of mcpauthz against noop, by limiter.
var (
	minThroughput = map[string]float64{"mem": 0.90, "redis": 0.80}
	maxCPU        = map[string]float64{"mem": 2, "redis": 3}
)

func printTargets(o options, ts []targetReport) {
	fmt.Printf("\nloopback gRPC, %d ghz workers on %d connections, %d distinct requests, %s per round, median of %d rounds, GOGC=%s for every server\n\n",
		o.concurrency, o.connections, o.variants, o.duration, o.rounds, o.gogc)
	fmt.Printf("%-20s %8s %9s %9s %9s %11s %9s %10s %10s %6s %8s\n",
		"target", "req/s", "p50", "p99", "p99.9", "server cpu", "ghz cpu", "redis cpu", "peak RSS", "errors", "allowed")
	for _, t := range ts {
		r := t.Median
		fmt.Printf("%-20s %8.0f %9s %9s %9s %11s %9s %10s %6d KiB %6d %7.1f%%\n", t.Name, r.RPS,
			r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.P999.Round(time.Microsecond),
			r.CPUPerReq.Round(100*time.Nanosecond), r.ClientCPU.Round(100*time.Nanosecond), t.redisCPU.Round(100*time.Nanosecond),
			r.PeakRSSKiB, r.Errors, 100*r.AllowedFraction)
	}
	fmt.Println()
	for _, t := range ts {
		fmt.Printf("%-20s %s\n", t.Name, t.Note)
	}
	i := slices.IndexFunc(ts, func(t targetReport) bool { return t.Name == "noop" })
	if i < 0 {
		return
	}
	noop := ts[i].Median
	fmt.Println()
	for _, t := range ts {
		if t.Method == "" {
			continue
		}
		tp := t.Median.RPS / noop.RPS
		cpu := float64(t.Median.CPUPerReq) / float64(noop.CPUPerReq)
		fmt.Printf("%-20s / noop  throughput %.2f (target ≥ %.2f%s)   server CPU per request %.2f× (target ≤ %.2f×%s)\n",
			t.Name, tp, minThroughput[t.Limiter], missed(tp >= minThroughput[t.Limiter]),
			cpu, maxCPU[t.Limiter], missed(cpu <= maxCPU[t.Limiter]))
	}
}

func missed(met bool) string {
	if met {
		return ""
	}
	return ", missed"
}

func printKeys(r keysResult) {
	fmt.Printf("keys %7d  inserted in %8s, each verified once in %8s (%d sent again after a 503)  p50 %8s  p99 %8s  VmRSS %6.1f MiB  VmHWM %6.1f MiB\n",
		r.Keys, r.Setup.Round(time.Millisecond), r.warm.Round(time.Millisecond), r.retried, r.P50.Round(time.Microsecond),
		r.P99.Round(time.Microsecond), float64(r.RSSKiB)/1024, float64(r.HWMKiB)/1024)
}
