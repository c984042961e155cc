package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/mcpauthz/mcpauthz/bench/loadfile"
)

// Report is what the template renders.
type Report struct {
	Machine   Machine
	Generated string
	Took      time.Duration
	Count     int
	Benchtime string
	Redis     bool // MCPAUTHZ_TEST_REDIS_URL was set: Redis benchmarks ran
	Benches   Benches
	Load      *Load
}

// Load is the results bench/load -out writes.
type Load struct{ loadfile.File }

// Baseline is the no-op server every load figure is compared with.
func (l *Load) Baseline() loadfile.Round { return l.Target("noop").Median }

// Target returns the target named name, or a zero one.
func (l *Load) Target(name string) loadfile.Target {
	for _, t := range l.Targets {
		if t.Name == name {
			return t
		}
	}
	return loadfile.Target{}
}

// Measured lists the mcpauthz targets (those with a credential method).
func (l *Load) Measured() []loadfile.Target {
	var out []loadfile.Target
	for _, t := range l.Targets {
		if t.Method != "" {
			out = append(out, t)
		}
	}
	return out
}

// Throughput is t's throughput as a fraction of the no-op server's.
func (l *Load) Throughput(t loadfile.Target) float64 {
	return ratio(t.Median.RPS, l.Baseline().RPS)
}

// ThroughputOf is t's throughput as a fraction of the named target's.
func (l *Load) ThroughputOf(t loadfile.Target, base string) float64 {
	return ratio(t.Median.RPS, l.Target(base).Median.RPS)
}

// CPU is t's server CPU per decision as a multiple of the no-op server's.
func (l *Load) CPU(t loadfile.Target) float64 {
	return ratio(float64(t.Median.CPUPerReq), float64(l.Baseline().CPUPerReq))
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// Target is one of the performance targets and how it fared.
type Target struct {
	Name     string
	Want     string  // "≥ 0.90", "≤ 25 µs"
	Got      string  // the measured value, formatted
	Met      bool    // measured and met
	Measured bool    // false when the run could not measure it
	By       float64 // how far off, as a factor of the bound, when missed
}

// Verdict is a one-line summary.
func (t Target) Verdict() string {
	switch {
	case !t.Measured:
		return "not measured"
	case t.Met:
		return fmt.Sprintf("met: %s (target %s)", t.Got, t.Want)
	}
	return fmt.Sprintf("MISSED: %s (target %s, %s)", t.Got, t.Want, t.Off())
}

// Off says how far a missed target is from its bound.
func (t Target) Off() string {
	switch {
	case t.By >= 2:
		return fmt.Sprintf("%.1f× the bound", t.By)
	case t.By > 1:
		return fmt.Sprintf("%.0f%% over", (t.By-1)*100)
	}
	return fmt.Sprintf("%.0f%% under", (1-t.By)*100)
}

// Targets checks every target the run measured.
func (r *Report) Targets() []Target {
	var out []Target
	atMost := func(name string, got, bound float64, format func(float64) string, measured bool) {
		out = append(out, Target{Name: name, Want: "≤ " + format(bound), Got: format(got),
			Met: measured && got <= bound, Measured: measured, By: got / bound})
	}
	atLeast := func(name string, got, bound float64, measured bool) {
		out = append(out, Target{Name: name, Want: fmt.Sprintf("≥ %.2f", bound), Got: fmt.Sprintf("%.2f", got),
			Met: measured && got >= bound, Measured: measured, By: got / bound})
	}
	us := func(v float64) string { return fmt.Sprintf("%.1f µs", v/1e3) }
	count := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	times := func(v float64) string { return fmt.Sprintf("%.2f×", v) }
	mib := func(v float64) string { return fmt.Sprintf("%.0f MiB", v) }

	for _, name := range []string{"CheckDefaultBundle/cached", "CheckDefaultBundle/uncached"} {
		b, ok := r.Benches[name]
		atMost("in-process Check, default bundle, "+strings.TrimPrefix(name, "CheckDefaultBundle/")+": time", b.NsPerOp, 25e3, us, ok)
		atMost("in-process Check, default bundle, "+strings.TrimPrefix(name, "CheckDefaultBundle/")+": allocations", b.AllocsPerOp, 150, count, ok)
	}
	if r.Load != nil {
		for _, t := range r.Load.Measured() {
			tput, cpu := 0.90, 2.0
			if t.Limiter == "redis" {
				tput, cpu = 0.80, 3.0
			}
			atLeast("load "+t.Name+": throughput / no-op", r.Load.Throughput(t), tput, true)
			atMost("load "+t.Name+": server CPU per decision / no-op", r.Load.CPU(t), cpu, times, true)
		}
		for _, k := range r.Load.Keys {
			if k.Keys == 100000 {
				atMost("RSS with 100,000 API keys cached", float64(k.RSSKiB)/1024, 100, mib, true)
			}
		}
	}
	return out
}

var funcs = template.FuncMap{
	"us": func(ns float64) string {
		switch {
		case ns == 0:
			return "—"
		case ns >= 1e6:
			return fmt.Sprintf("%.2f ms", ns/1e6)
		case ns >= 1e4:
			return fmt.Sprintf("%.0f µs", ns/1e3)
		}
		return fmt.Sprintf("%.2f µs", ns/1e3)
	},
	"dur": func(d time.Duration) string {
		switch {
		case d == 0:
			return "—"
		case d >= time.Millisecond:
			return fmt.Sprintf("%.2f ms", float64(d)/1e6)
		}
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	},
	"int": func(v float64) string { return thousands(int64(math.Round(v))) },
	"n":   func(v int) string { return thousands(int64(v)) },
	"mib": func(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) },
	"x": func(v float64) string {
		if math.IsNaN(v) {
			return "—"
		}
		return fmt.Sprintf("%.2f×", v)
	},
	"f2": func(v float64) string {
		if math.IsNaN(v) {
			return "—"
		}
		return fmt.Sprintf("%.2f", v)
	},
	"pct": func(v float64) string { return fmt.Sprintf("%.2f%%", v*100) },
	"ratio": func(a, b float64) float64 {
		return ratio(a, b)
	},
	"secs": func(d time.Duration) string { return d.Round(time.Second).String() },
	"trim": strings.TrimPrefix,
	"orgs": func(name string) string { return nameParam(name, "orgs") },
	"gcFactor": func(gogc string) string {
		n, err := strconv.Atoi(gogc)
		if err != nil {
			return "?"
		}
		return fmt.Sprintf("%g", 1+float64(n)/100)
	},
	"rules": func(name string) string { return nameParam(name, "rules") },
}

// nameParam returns the value of key=value in a benchmark name.
func nameParam(name, key string) string {
	for part := range strings.SplitSeq(name, "/") {
		if v, ok := strings.CutPrefix(part, key+"="); ok {
			return v
		}
	}
	return "?"
}

// thousands formats n with commas: 12,345.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
