// Command load measures mcpauthz over loopback gRPC against a no-op
// ext_authz server in the same run: it builds both, drives each with ghz
// (pinned to v0.120.0) sending the same MCP tools/call CheckRequest, reads
// the server's CPU time from /proc, and prints throughput, p50, p99, CPU
// per request and peak RSS, and the ratios mcpauthz / no-op.
//
//	go run ./bench/load -duration 15s -rounds 3
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

const ghzModule = "github.com/bojand/ghz/cmd/ghz@v0.120.0"

// defaultGOGC is mcpauthz's default garbage collector setting
// (runtime.gc_percent).
const defaultGOGC = 400

// clockTicks is Linux's USER_HZ, the unit of utime and stime in /proc.
const clockTicks = 100

type options struct {
	duration, warmup time.Duration
	concurrency      int
	connections      int
	rounds           int
	ghz              string
	out              string
	gogc             string
}

// result is one target's measurement in one round.
type result struct {
	Target      string        `json:"target"`
	Requests    uint64        `json:"requests"`
	RPS         float64       `json:"rps"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	CPUPerReq   time.Duration `json:"cpu_per_request_ns"`
	ClientCPU   time.Duration `json:"client_cpu_per_request_ns"`
	PeakRSSKiB  int64         `json:"peak_rss_kib"`
	Errors      int           `json:"errors"`
	CPUSeconds  float64       `json:"cpu_seconds"`
	WallSeconds float64       `json:"wall_seconds"`
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measured load per target and round")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured load before each measurement")
	flag.IntVar(&o.concurrency, "c", 50, "concurrent ghz workers")
	flag.IntVar(&o.connections, "connections", 1, "gRPC connections (Envoy multiplexes checks on few)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs both targets, the median round is reported")
	flag.StringVar(&o.ghz, "ghz", "", "ghz binary (default: go install "+ghzModule+")")
	flag.StringVar(&o.out, "out", "", "also write the results as JSON to this file")
	flag.StringVar(&o.gogc, "gogc", "", "GOGC for both servers (default: mcpauthz's own default, given to both)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mcpauthz-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	fmt.Println("building mcpauthz and the no-op server …")
	bin := map[string]string{"noop": filepath.Join(tmp, "noopauthz"), "mcpauthz": filepath.Join(tmp, "mcpauthz")}
	if err := gobuild(root, bin["noop"], "./bench/noopauthz"); err != nil {
		return err
	}
	if err := gobuild(root, bin["mcpauthz"], "./cmd/mcpauthz"); err != nil {
		return err
	}
	if o.gogc == "" {
		o.gogc = strconv.Itoa(defaultGOGC)
	}
	if o.ghz == "" {
		fmt.Println("installing", ghzModule, "…")
		gobin := filepath.Join(tmp, "gobin")
		cmd := exec.Command("go", "install", ghzModule)
		cmd.Env = append(os.Environ(), "GOBIN="+gobin)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("installing ghz: %w", err)
		}
		o.ghz = filepath.Join(gobin, "ghz")
	}
	data, err := os.ReadFile(filepath.Join(root, "bench/rbac/checkrequest.json"))
	if err != nil {
		return err
	}

	targets := []struct {
		name string
		args func(addr string) []string
	}{
		{"noop", func(addr string) []string { return []string{"-addr", addr} }},
		{"mcpauthz", func(addr string) []string {
			return []string{"serve", "--grpc-addr", addr, "--http-addr", "off", "--log-level", "warn",
				"--bundle", filepath.Join(root, "bench/rbac")}
		}},
	}
	results := map[string][]result{}
	for round := 1; round <= o.rounds; round++ {
		for _, t := range targets {
			r, err := measure(o, bin[t.name], t.args, string(data))
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, t.name, err)
			}
			r.Target = t.name
			fmt.Printf("round %d  %-9s %9.0f req/s  p50 %8s  p99 %8s  cpu/req %7s  ghz cpu/req %7s  errors %d\n",
				round, t.name, r.RPS, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond),
				r.CPUPerReq.Round(100*time.Nanosecond), r.ClientCPU.Round(100*time.Nanosecond), r.Errors)
			results[t.name] = append(results[t.name], r)
		}
	}
	report(o, results)
	if o.out != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(o.out, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func gobuild(dir, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// measure starts a server, checks it answers the request with an allow,
// warms it up, then drives it with ghz and reads its CPU time.
func measure(o options, bin string, args func(string) []string, data string) (result, error) {
	addr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	srv := exec.Command(bin, args(addr)...)
	srv.Stderr = os.Stderr
	// Both servers run with the same garbage collector setting, so the
	// ratio measures deciding, not runtime tuning.
	srv.Env = append(os.Environ(), "GOGC="+o.gogc)
	if err := srv.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	if err := preflight(addr, data); err != nil {
		return result{}, err
	}
	if _, err := ghz(o, addr, data, o.warmup); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	cpu0, err := cpuTime(srv.Process.Pid)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	rep, err := ghz(o, addr, data, o.duration)
	if err != nil {
		return result{}, err
	}
	wall := time.Since(start)
	cpu1, err := cpuTime(srv.Process.Pid)
	if err != nil {
		return result{}, err
	}
	r := result{Requests: rep.Count, RPS: rep.RPS, CPUSeconds: (cpu1 - cpu0).Seconds(), WallSeconds: wall.Seconds()}
	for _, l := range rep.LatencyDistribution {
		switch l.Percentage {
		case 50:
			r.P50 = l.Latency
		case 99:
			r.P99 = l.Latency
		}
	}
	for _, n := range rep.ErrorDistribution {
		r.Errors += n
	}
	if rep.Count > 0 {
		r.CPUPerReq = (cpu1 - cpu0) / time.Duration(rep.Count)
		r.ClientCPU = rep.cpu / time.Duration(rep.Count)
	}
	r.PeakRSSKiB, _ = peakRSS(srv.Process.Pid)
	return r, nil
}

// preflight waits for the server and makes sure the request is allowed, so
// the run measures allows, not errors or denials.
func preflight(addr, data string) error {
	var cr authv3.CheckRequest
	if err := protojson.Unmarshal([]byte(data), &cr); err != nil {
		return fmt.Errorf("the check request: %w", err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := client.Check(ctx, &cr)
		cancel()
		if err == nil {
			if resp.GetStatus().GetCode() != int32(codes.OK) {
				return fmt.Errorf("the benchmark request is denied: %v", resp)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server did not answer: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type ghzReport struct {
	cpu                 time.Duration // ghz's own CPU time
	Count               uint64        `json:"count"`
	RPS                 float64       `json:"rps"`
	LatencyDistribution []struct {
		Percentage int           `json:"percentage"`
		Latency    time.Duration `json:"latency"`
	} `json:"latencyDistribution"`
	ErrorDistribution map[string]int `json:"errorDistribution"`
}

func ghz(o options, addr, data string, d time.Duration) (ghzReport, error) {
	cmd := exec.Command(o.ghz, "--insecure",
		"--call", "envoy.service.auth.v3.Authorization/Check",
		"-d", data,
		"-c", strconv.Itoa(o.concurrency),
		"--connections", strconv.Itoa(o.connections),
		"-z", d.String(),
		"--format", "json",
		addr)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return ghzReport{}, fmt.Errorf("ghz: %w: %s", err, stderr.String())
	}
	var rep ghzReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return ghzReport{}, fmt.Errorf("ghz output: %w", err)
	}
	rep.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if rep.Count == 0 {
		return rep, errors.New("ghz made no requests")
	}
	return rep, nil
}

// cpuTime is the process's user plus system CPU time.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM")
}

// median returns the round with the median throughput.
func median(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case a.RPS < b.RPS:
			return -1
		case a.RPS > b.RPS:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func report(o options, results map[string][]result) {
	a, b := median(results["noop"]), median(results["mcpauthz"])
	fmt.Printf("\nloopback gRPC, %d workers on %d connection(s), %s per round, median of %d rounds, GOGC=%s for both servers\n\n",
		o.concurrency, o.connections, o.duration, o.rounds, o.gogc)
	fmt.Printf("%-10s %12s %10s %10s %12s %12s %10s %8s\n", "target", "req/s", "p50", "p99", "cpu/request", "ghz cpu/req", "peak RSS", "errors")
	for _, r := range []result{a, b} {
		fmt.Printf("%-10s %12.0f %10s %10s %12s %12s %7d KiB %8d\n", r.Target, r.RPS,
			r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.CPUPerReq.Round(100*time.Nanosecond),
			r.ClientCPU.Round(100*time.Nanosecond), r.PeakRSSKiB, r.Errors)
	}
	fmt.Printf("\nmcpauthz / no-op: throughput %.2f (target ≥ 0.90), CPU per request %.2f× (target ≤ 2.00×)\n",
		b.RPS/a.RPS, float64(b.CPUPerReq)/float64(a.CPUPerReq))
}
