package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Memory and goroutine tolerances: after the load, each service must be
// within these of its reference.
const (
	goroutineSlack = 10   // extra goroutines allowed, or 10% of the baseline if more
	heapFactor     = 1.5  // the live heap may grow by half
	heapSlack      = 16e6 // plus 16 MB
)

// sample is a service's memory and goroutines, from its /metrics.
type sample struct {
	Goroutines float64 `json:"goroutines"`
	// Live is the heap that survived the last collection, from the heap
	// goal: next_gc = live × (1 + GOGC/100), stacks and globals aside.
	Live      float64 `json:"live_heap_bytes"`
	HeapInuse float64 `json:"heap_inuse_bytes"`
	RSS       float64 `json:"resident_bytes"`
	GCs       float64 `json:"gc_cycles"`
}

func readSample(admin string) (sample, error) {
	m, err := metrics(admin)
	if err != nil {
		return sample{}, err
	}
	gogc, ok := m["go_gc_gogc_percent"]
	if !ok || gogc <= 0 {
		gogc = 100
	}
	return sample{Goroutines: m["go_goroutines"], Live: m["go_memstats_next_gc_bytes"] / (1 + gogc/100),
		HeapInuse: m["go_memstats_heap_inuse_bytes"], RSS: m["process_resident_memory_bytes"],
		GCs: m["go_gc_duration_seconds_count"]}, nil
}

// baseline is both services' samples at one moment.
type baseline map[string]sample

func readBaseline(st *stack) (baseline, error) {
	b := baseline{}
	for name, admin := range map[string]string{"sidecar": st.sidecarAdm, "identity": st.identityAdm} {
		s, err := readSample(admin)
		if err != nil {
			return nil, fmt.Errorf("%s metrics: %w", name, err)
		}
		b[name] = s
	}
	return b, nil
}

// memCheck compares a service after the load with itself idle before it.
// The sidecar keeps a bounded cache of decisions per bundle revision,
// full after the load; a new revision releases it, as a policy rollout
// does. So after the load the bundle server sends a new signed revision,
// and once the sidecar runs it and has collected garbage, what it still
// holds beyond its idle self is what the load left behind.
type memCheck struct {
	Service string `json:"service"`
	Before  sample `json:"before"`
	Loaded  sample `json:"loaded"` // as the load stopped, caches full
	After   sample `json:"after"`
	OK      bool   `json:"ok"`
	Waited  ms     `json:"waited_ms"`
	// Collected: a garbage collection ran after the cache was released,
	// so the live heap after is what the service keeps.
	Collected bool    `json:"collected_after_load"`
	PeakRSS   float64 `json:"peak_rss_bytes"`
	Err       string  `json:"error,omitempty"`
}

func (c *memCheck) within() bool {
	g := c.After.Goroutines <= c.Before.Goroutines+max(goroutineSlack, c.Before.Goroutines/10)
	h := c.After.Live <= c.Before.Live*heapFactor+heapSlack
	return g && h
}

// settle releases the sidecar's decision cache with a new bundle
// revision, then samples both services until each has collected garbage
// since and is within tolerance, or limit passes. With no load a
// collection may come only with the runtime's forced one, two minutes
// after the last.
func settle(ctx context.Context, st *stack, before baseline, limit time.Duration) ([]memCheck, error) {
	loaded, err := readBaseline(st)
	if err != nil {
		return nil, err
	}
	st.bundles.use(bundleGood3)
	if _, ok := until(ctx, time.Minute, func() bool {
		r, err := st.readyz()
		return err == nil && r.Policy.Revision == revGood3
	}); !ok {
		return nil, fmt.Errorf("the sidecar did not activate bundle %s after the load", revGood3)
	}
	start := time.Now()
	procs := map[string]*child{"sidecar": st.sidecar, "identity": st.identity}
	admins := map[string]string{"sidecar": st.sidecarAdm, "identity": st.identityAdm}
	checks := []memCheck{{Service: "sidecar"}, {Service: "identity"}}
	released := map[string]float64{}
	for {
		done := true
		for i := range checks {
			c := &checks[i]
			if c.OK && c.Collected {
				continue
			}
			c.Before, c.Loaded = before[c.Service], loaded[c.Service]
			s, err := readSample(admins[c.Service])
			if err != nil {
				c.Err = err.Error()
				done = false
				continue
			}
			if _, ok := released[c.Service]; !ok {
				released[c.Service] = s.GCs
			}
			c.After, c.Err, c.Waited = s, "", toMS(time.Since(start))
			c.PeakRSS = float64(peakRSS(procs[c.Service].cmd.Process.Pid))
			c.Collected = s.GCs > released[c.Service]
			c.OK = c.within()
			done = done && c.OK && c.Collected
		}
		if done || time.Since(start) > limit || ctx.Err() != nil {
			return checks, nil
		}
		sleep(ctx, 5*time.Second)
	}
}

// memoryVerdict is the memory invariant: every service within tolerance
// after a collection.
func memoryVerdict(checks []memCheck) (bool, string) {
	ok := len(checks) > 0
	var parts []string
	for _, c := range checks {
		ok = ok && c.OK && c.Collected
		gc := "after a GC"
		if !c.Collected {
			gc = "no GC since"
		}
		parts = append(parts, fmt.Sprintf("%s goroutines %.0f→%.0f, live heap %.1f (idle) / %.1f (load stopped) → %.1f MB (%.0f s later, %s); peak RSS %.0f MB",
			c.Service, c.Before.Goroutines, c.After.Goroutines, c.Before.Live/1e6, c.Loaded.Live/1e6, c.After.Live/1e6,
			float64(c.Waited)/1000, gc, c.PeakRSS/1e6))
	}
	return ok, fmt.Sprintf("%s; tolerance: goroutines +max(%d, 10%%), live heap ×%.1f + %.0f MB of idle, after a new bundle revision released the decision cache",
		strings.Join(parts, "; "), goroutineSlack, heapFactor, heapSlack/1e6)
}
