// Package loadfile is the results file of the loopback load test:
// bench/load -out writes it and bench/report renders it.
package loadfile

import "time"

// File is one run of bench/load.
type File struct {
	Meta    Meta      `json:"meta"`
	Targets []Target  `json:"targets"`
	Keys    []KeysRow `json:"keys"`
}

// Meta is how the run was made.
type Meta struct {
	Duration    time.Duration `json:"duration_ns"`
	Warmup      time.Duration `json:"warmup_ns"`
	Rounds      int           `json:"rounds"`
	Concurrency int           `json:"concurrency"`
	Connections int           `json:"connections"`
	Variants    int           `json:"variants"`
	GOGC        string        `json:"gogc"`
	GHZ         string        `json:"ghz"`
	CPUs        int           `json:"cpus"`
	Go          string        `json:"go"`
}

// Target is one server measured: a baseline (no method, no limiter) or
// mcpauthz with a credential method and a limiter.
type Target struct {
	Name    string  `json:"name"`
	Method  string  `json:"method"`
	Limiter string  `json:"limiter"`
	Note    string  `json:"note"`
	Rounds  []Round `json:"rounds"`
	Median  Round   `json:"median"` // the round with the median throughput
}

// Round is one measurement of a target.
type Round struct {
	Requests        uint64        `json:"requests"`
	RPS             float64       `json:"rps"`
	P50             time.Duration `json:"p50_ns"`
	P99             time.Duration `json:"p99_ns"`
	P999            time.Duration `json:"p999_ns"`
	CPUPerReq       time.Duration `json:"cpu_per_request_ns"`
	ClientCPU       time.Duration `json:"client_cpu_per_request_ns"`
	PeakRSSKiB      int64         `json:"peak_rss_kib"`
	Errors          int           `json:"errors"`
	AllowedFraction float64       `json:"allowed_fraction"`
}

// KeysRow is the keys phase at one number of keys: a sidecar (api_key,
// limits in process) whose store holds that many keys, each verified once
// so every one is cached.
type KeysRow struct {
	Keys   int           `json:"keys"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	RSSKiB int64         `json:"rss_kib"` // VmRSS after warming and the latency run
	HWMKiB int64         `json:"hwm_kib"` // VmHWM
	// LiveKiB is the heap the last garbage collection found live, which
	// the collector lets grow to (1 + GOGC/100) times before the next.
	LiveKiB int64         `json:"live_kib"`
	Setup   time.Duration `json:"setup_ns"` // inserting the keys into the store
}
