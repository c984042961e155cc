// Command load measures mcpauthz over loopback gRPC against no-op ext_authz
// servers in the same run. It builds the servers, drives each with ghz
// (pinned to v0.120.0) sending the same mix of MCP tools/call
// CheckRequests, reads each server's CPU time from /proc, and prints
// throughput, p50, p99, server and client CPU per request and peak RSS, and
// the ratios mcpauthz / no-op.
//
// Two baselines are measured. "noop" answers every check with an empty OK:
// the cost of the gRPC layer alone. "noop-answer" answers with the very
// response mcpauthz gives (its headers and dynamic metadata): the same
// bytes on the wire, so mcpauthz / noop-answer is the cost of deciding
// alone. ghz decodes responses with dynamic messages, so a larger answer
// costs the client noticeably.
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

// defaultGOGC is mcpauthz's default garbage collector setting; every server
// in the run gets the same one.
const defaultGOGC = 400

// clockTicks is Linux's USER_HZ, the unit of utime and stime in /proc.
const clockTicks = 100

type options struct {
	duration, warmup time.Duration
	concurrency      int
	connections      int
	rounds           int
	variants         int
	ghz              string
	out              string
	gogc             string
}

// result is one target's measurement in one round.
type result struct {
	Target     string        `json:"target"`
	Requests   uint64        `json:"requests"`
	RPS        float64       `json:"rps"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	CPUPerReq  time.Duration `json:"cpu_per_request_ns"`
	ClientCPU  time.Duration `json:"client_cpu_per_request_ns"`
	PeakRSSKiB int64         `json:"peak_rss_kib"`
	Errors     int           `json:"errors"`
}

type target struct {
	name string
	bin  string
	args func(addr string) []string
	env  []string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measured load per target and round")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured load before each measurement")
	flag.IntVar(&o.concurrency, "c", 50, "concurrent ghz workers")
	flag.IntVar(&o.connections, "connections", 2, "gRPC connections (Envoy opens one per worker thread)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every target, the median round is reported")
	flag.IntVar(&o.variants, "variants", 64, "distinct requests in the mix, sent round-robin")
	flag.StringVar(&o.ghz, "ghz", "", "ghz binary (default: go install "+ghzModule+")")
	flag.StringVar(&o.out, "out", "", "also write the results as JSON to this file")
	flag.StringVar(&o.gogc, "gogc", strconv.Itoa(defaultGOGC), "GOGC for every server")
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
	noopBin, mcpBin := filepath.Join(tmp, "noopauthz"), filepath.Join(tmp, "mcpauthz")
	if err := gobuild(root, noopBin, "./bench/noopauthz"); err != nil {
		return err
	}
	if err := gobuild(root, mcpBin, "./cmd/mcpauthz"); err != nil {
		return err
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

	template, err := os.ReadFile(filepath.Join(root, "bench/rbac/checkrequest.json"))
	if err != nil {
		return err
	}
	mix, err := requestMix(template, o.variants)
	if err != nil {
		return err
	}
	dataFile := filepath.Join(tmp, "requests.json")
	if err := writeMix(dataFile, mix); err != nil {
		return err
	}

	mcpArgs := func(addr string) []string {
		return []string{"serve", "--grpc-addr", addr, "--http-addr", "off", "--log-level", "error",
			"--bundle", filepath.Join(root, "bench/rbac")}
	}
	mcp := target{name: "mcpauthz", bin: mcpBin, args: mcpArgs}
	// The canned answer is mcpauthz's own answer to the first request.
	answer, err := capture(o, mcp, mix[0])
	if err != nil {
		return fmt.Errorf("capturing mcpauthz's answer: %w", err)
	}
	answerFile := filepath.Join(tmp, "answer.json")
	if err := os.WriteFile(answerFile, answer, 0o600); err != nil {
		return err
	}
	targets := []target{
		{name: "noop", bin: noopBin, args: func(addr string) []string { return []string{"-addr", addr} }},
		{name: "noop-answer", bin: noopBin, args: func(addr string) []string { return []string{"-addr", addr, "-response", answerFile} }},
		mcp,
		// The same with the decision cache off: every check evaluates.
		{name: "mcp-uncached", bin: mcpBin, args: mcpArgs, env: []string{"MCPAUTHZ_POLICY_DECISION_CACHE=0"}},
	}

	results := map[string][]result{}
	for round := 1; round <= o.rounds; round++ {
		for _, t := range targets {
			r, err := measure(o, t, dataFile, mix)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, t.name, err)
			}
			r.Target = t.name
			fmt.Printf("round %d  %-12s %8.0f req/s  p50 %8s  p99 %8s  cpu/req %7s  ghz cpu/req %7s  errors %d\n",
				round, t.name, r.RPS, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond),
				r.CPUPerReq.Round(100*time.Nanosecond), r.ClientCPU.Round(100*time.Nanosecond), r.Errors)
			results[t.name] = append(results[t.name], r)
		}
	}
	report(o, targets, results)
	if o.out != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(o.out, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// requestMix makes n variants of the template: different roles, tools,
// sessions, request and JSON-RPC ids and arguments, all allowed by the
// RBAC bundle.
func requestMix(template []byte, n int) ([]*authv3.CheckRequest, error) {
	grants := []struct{ role, tool string }{
		{"member", "echo"}, {"member", "search"}, {"member", "summarize"},
		{"viewer", "search"},
		{"admin", "echo"}, {"admin", "search"}, {"admin", "summarize"}, {"admin", "delete"},
	}
	out := make([]*authv3.CheckRequest, n)
	for i := range out {
		var cr authv3.CheckRequest
		if err := protojson.Unmarshal(template, &cr); err != nil {
			return nil, fmt.Errorf("the check request template: %w", err)
		}
		g := grants[i%len(grants)]
		h := cr.Attributes.Request.Http
		id := fmt.Sprintf("%08x-5e6f-4a8b-9c0d-%012x", i*7919, i)
		h.Id = id
		h.Headers["x-request-id"] = id
		h.Headers["x-role"] = g.role
		h.Headers["mcp-session-id"] = fmt.Sprintf("sess-%d", i%16)
		h.Body = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"query":"report %d","limit":%d}}}`,
			i+1, g.tool, i, 10+i%5)
		out[i] = &cr
	}
	return out, nil
}

func writeMix(path string, mix []*authv3.CheckRequest) error {
	var b strings.Builder
	b.WriteByte('[')
	for i, cr := range mix {
		if i > 0 {
			b.WriteByte(',')
		}
		j, err := protojson.Marshal(cr)
		if err != nil {
			return err
		}
		b.Write(j)
	}
	b.WriteByte(']')
	return os.WriteFile(path, []byte(b.String()), 0o600)
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

// start runs a target on a free loopback port.
func start(o options, t target) (*exec.Cmd, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	srv := exec.Command(t.bin, t.args(addr)...)
	srv.Stderr = os.Stderr
	srv.Env = append(append(os.Environ(), "GOGC="+o.gogc), t.env...)
	if err := srv.Start(); err != nil {
		return nil, "", err
	}
	return srv, addr, nil
}

func stop(srv *exec.Cmd) {
	srv.Process.Signal(syscall.SIGTERM)
	srv.Wait()
}

// capture returns a target's answer to one request, as protojson.
func capture(o options, t target, cr *authv3.CheckRequest) ([]byte, error) {
	srv, addr, err := start(o, t)
	if err != nil {
		return nil, err
	}
	defer stop(srv)
	resps, err := check(addr, []*authv3.CheckRequest{cr}, 20*time.Second)
	if err != nil {
		return nil, err
	}
	return protojson.Marshal(resps[0])
}

// check waits for a server to answer, then sends the requests on the same
// connection.
func check(addr string, crs []*authv3.CheckRequest, wait time.Duration) ([]*authv3.CheckResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	resps := make([]*authv3.CheckResponse, len(crs))
	deadline := time.Now().Add(wait)
	for i := 0; i < len(crs); {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resps[i], err = client.Check(ctx, crs[i])
		cancel()
		switch {
		case err == nil:
			i++
		case time.Now().After(deadline):
			return nil, fmt.Errorf("server did not answer: %w", err)
		default:
			time.Sleep(100 * time.Millisecond)
		}
	}
	return resps, nil
}

// measure starts a server, checks that it allows every request of the mix,
// warms it up, then drives it with ghz and reads its CPU time.
func measure(o options, t target, dataFile string, mix []*authv3.CheckRequest) (result, error) {
	srv, addr, err := start(o, t)
	if err != nil {
		return result{}, err
	}
	defer stop(srv)
	resps, err := check(addr, mix, 20*time.Second)
	if err != nil {
		return result{}, err
	}
	for i, resp := range resps {
		if resp.GetStatus().GetCode() != int32(codes.OK) {
			return result{}, fmt.Errorf("request %d of the mix is denied: %v", i, resp)
		}
	}
	if _, err := ghz(o, addr, dataFile, o.warmup); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	cpu0, err := cpuTime(srv.Process.Pid)
	if err != nil {
		return result{}, err
	}
	rep, err := ghz(o, addr, dataFile, o.duration)
	if err != nil {
		return result{}, err
	}
	cpu1, err := cpuTime(srv.Process.Pid)
	if err != nil {
		return result{}, err
	}
	r := result{Requests: rep.Count, RPS: rep.RPS}
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
	r.CPUPerReq = (cpu1 - cpu0) / time.Duration(rep.Count)
	r.ClientCPU = rep.cpu / time.Duration(rep.Count)
	r.PeakRSSKiB, _ = peakRSS(srv.Process.Pid)
	return r, nil
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

func ghz(o options, addr, dataFile string, d time.Duration) (ghzReport, error) {
	cmd := exec.Command(o.ghz, "--insecure",
		"--call", "envoy.service.auth.v3.Authorization/Check",
		"-D", dataFile,
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
	if rep.Count == 0 {
		return rep, errors.New("ghz made no requests")
	}
	rep.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return rep, nil
}

// cpuTime is the process's user plus system CPU time.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
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

func report(o options, targets []target, results map[string][]result) {
	fmt.Printf("\nloopback gRPC, %d ghz workers on %d connections, %d distinct requests, %s per round, median of %d rounds, GOGC=%s for every server\n\n",
		o.concurrency, o.connections, o.variants, o.duration, o.rounds, o.gogc)
	fmt.Printf("%-12s %10s %10s %10s %12s %12s %11s %7s\n", "target", "req/s", "p50", "p99", "server cpu", "ghz cpu", "peak RSS", "errors")
	med := map[string]result{}
	for _, t := range targets {
		r := median(results[t.name])
		med[t.name] = r
		fmt.Printf("%-12s %10.0f %10s %10s %12s %12s %7d KiB %7d\n", r.Target, r.RPS,
			r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.CPUPerReq.Round(100*time.Nanosecond),
			r.ClientCPU.Round(100*time.Nanosecond), r.PeakRSSKiB, r.Errors)
	}
	fmt.Println()
	for _, name := range []string{"mcpauthz", "mcp-uncached"} {
		m := med[name]
		for _, base := range []string{"noop", "noop-answer"} {
			b := med[base]
			fmt.Printf("%-12s / %-11s throughput %.2f (target ≥ 0.90)   server CPU per request %.2f× (target ≤ 2.00×)\n",
				name, base, m.RPS/b.RPS, float64(m.CPUPerReq)/float64(b.CPUPerReq))
		}
	}
}
