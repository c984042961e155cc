package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// benchmarks are the in-process benchmarks the report runs, by package.
var benchmarks = []struct{ pkg, pattern string }{
	{"./extauthz/policy", "^(BenchmarkCheckDefaultBundle|BenchmarkCheckToolsCall)$"},
	{"./extauthz", "^BenchmarkCheckLimits$"},
	{"./extauthz/credentials", "^(BenchmarkAPIKey|BenchmarkAPIKeyMemory|BenchmarkSession|BenchmarkSessionSignedCookie|BenchmarkJWTVerify)$"},
	{"./extauthz/envoygrpc", "^BenchmarkLoopback$"},
	{"./mcp", "^BenchmarkDecodeJSON$"},
	{"./policies", "^BenchmarkDecision$"},
}

// Bench is the median of one benchmark's runs.
type Bench struct {
	Name                  string // without "Benchmark" and the GOMAXPROCS suffix
	NsPerOp, BytesPerOp   float64
	AllocsPerOp           float64
	Runs                  int
	extra                 map[string]float64
	hasBytes, hasAllocsOp bool
	order                 int // the order in which it ran
}

// Metric is a custom metric the benchmark reported (b.ReportMetric).
func (b Bench) Metric(unit string) float64 { return b.extra[unit] }

// Benches are the in-process results, by name.
type Benches map[string]Bench

// Get returns a benchmark's result, or a zero Bench when it was not
// measured (skipped, for want of Redis).
func (bs Benches) Get(name string) Bench { return bs[name] }

// Prefix returns the benchmarks under name, in the order they ran.
func (bs Benches) Prefix(name string) []Bench {
	var out []Bench
	for _, b := range bs {
		if strings.HasPrefix(b.Name, name+"/") {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b Bench) int { return a.order - b.order })
	return out
}

func runBenchmarks(root string, o options) (Benches, error) {
	out := Benches{}
	order := 0
	for _, g := range benchmarks {
		fmt.Printf("go test -bench '%s' %s …\n", g.pattern, g.pkg)
		cmd := exec.Command("go", "test", "-run", "^$", "-bench", g.pattern, "-benchmem",
			"-count", fmt.Sprint(o.count), "-benchtime", o.benchtime, g.pkg)
		cmd.Dir = root
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			os.Stderr.Write(stdout.Bytes())
			return nil, fmt.Errorf("benchmarks of %s: %w", g.pkg, err)
		}
		runs := map[string][]*benchfmt.Result{}
		var names []string
		r := benchfmt.NewReader(&stdout, g.pkg)
		for r.Scan() {
			res, ok := r.Result().(*benchfmt.Result)
			if !ok {
				continue
			}
			name := strings.TrimPrefix(string(res.Name.Full()), "Benchmark")
			if i := strings.LastIndexByte(name, '-'); i > 0 && isDigits(name[i+1:]) {
				name = name[:i]
			}
			if _, seen := runs[name]; !seen {
				names = append(names, name)
			}
			runs[name] = append(runs[name], res.Clone())
		}
		if err := r.Err(); err != nil {
			return nil, err
		}
		for _, name := range names {
			order++
			out[name] = median(name, runs[name], order)
		}
	}
	return out, nil
}

func median(name string, rs []*benchfmt.Result, order int) Bench {
	b := Bench{Name: name, Runs: len(rs), extra: map[string]float64{}, order: order}
	med := func(unit string) (float64, bool) {
		var vs []float64
		for _, r := range rs {
			if v, ok := r.Value(unit); ok {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 {
			return 0, false
		}
		slices.Sort(vs)
		return vs[len(vs)/2], true
	}
	b.NsPerOp, _ = med("sec/op")
	b.NsPerOp *= 1e9
	b.BytesPerOp, b.hasBytes = med("B/op")
	b.AllocsPerOp, b.hasAllocsOp = med("allocs/op")
	for _, v := range rs[0].Values {
		switch v.Unit {
		case "sec/op", "B/op", "allocs/op":
		default:
			b.extra[v.Unit], _ = med(v.Unit)
		}
	}
	return b
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}
