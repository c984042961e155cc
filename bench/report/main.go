// Command report measures mcpauthz and writes docs/PERFORMANCE.md: the
// in-process benchmarks (go test -bench, with allocations), the policy's
// scaling with organizations and rules, and the loopback load test
// (bench/load: ghz against a no-op ext_authz server and mcpauthz for each
// credential method and limiter, and the API-key scaling). Every figure in
// the report comes from one run of this command on one machine.
//
//	go run ./bench/report                    # about 20 minutes on 2 cores
//	go run ./bench/report -load-json l.json  # reuse a bench/load -out file
//
// Benchmarks that need Redis (MCPAUTHZ_TEST_REDIS_URL) are reported as not
// measured when it is unset.
package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/template"
	"time"
)

//go:embed PERFORMANCE.md.tmpl
var reportTemplate string

type options struct {
	out          string
	count        int
	benchtime    string
	loadDuration time.Duration
	loadWarmup   time.Duration
	loadRounds   int
	keys         string
	loadJSON     string
	skipLoad     bool
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "docs/PERFORMANCE.md", "the report to write")
	flag.IntVar(&o.count, "count", 3, "runs of each in-process benchmark; the median is reported")
	flag.StringVar(&o.benchtime, "benchtime", "1s", "go test -benchtime")
	flag.DurationVar(&o.loadDuration, "load-duration", 12*time.Second, "measured load per target and round")
	flag.DurationVar(&o.loadWarmup, "load-warmup", 2*time.Second, "unmeasured load before each measurement")
	flag.IntVar(&o.loadRounds, "load-rounds", 3, "load rounds; the median round is reported")
	flag.StringVar(&o.keys, "keys", "1,1000,10000,100000", "API keys held by the sidecar in the scaling phase")
	flag.StringVar(&o.loadJSON, "load-json", "", "read the load results from this bench/load -out file instead of running it")
	flag.BoolVar(&o.skipLoad, "skip-load", false, "leave the load test out of the report")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	start := time.Now()
	r := &Report{Machine: machine(), Count: o.count, Benchtime: o.benchtime,
		Redis: os.Getenv("MCPAUTHZ_TEST_REDIS_URL") != ""}
	if r.Benches, err = runBenchmarks(root, o); err != nil {
		return err
	}
	switch {
	case o.skipLoad:
	case o.loadJSON != "":
		if r.Load, err = readLoad(o.loadJSON); err != nil {
			return err
		}
	default:
		if r.Load, err = runLoad(root, o); err != nil {
			return err
		}
	}
	r.Took = time.Since(start).Round(time.Minute)
	r.Generated = time.Now().UTC().Format("2006-01-02")

	tmpl, err := template.New("report").Funcs(funcs).Parse(reportTemplate)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, r); err != nil {
		return err
	}
	out := o.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", out)
	for _, t := range r.Targets() {
		fmt.Printf("%-58s %s\n", t.Name, t.Verdict())
	}
	return nil
}

// runLoad runs bench/load and reads its results, which it keeps in
// bench/out/load.json: -load-json renders them again.
func runLoad(root string, o options) (*Load, error) {
	file := filepath.Join(root, "bench", "out", "load.json")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "run", "./bench/load",
		"-duration", o.loadDuration.String(), "-warmup", o.loadWarmup.String(),
		"-rounds", fmt.Sprint(o.loadRounds), "-keys", o.keys, "-out", file)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bench/load: %w", err)
	}
	fmt.Println("load results kept in", file)
	return readLoad(file)
}

func readLoad(file string) (*Load, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var l Load
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(l.Targets) == 0 {
		return nil, fmt.Errorf("%s: no load targets", file)
	}
	return &l, nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Machine describes where the figures were measured.
type Machine struct {
	CPU, Kernel, Go, OPA, GRPC string
	Cores                      int
	MemGiB                     int
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), CPU: "unknown", Kernel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kib); err == nil {
			m.MemGiB = (kib + 1<<19) >> 20
		}
	}
	m.OPA = moduleVersion("github.com/open-policy-agent/opa")
	m.GRPC = moduleVersion("google.golang.org/grpc")
	return m
}

func moduleVersion(path string) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", path).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
