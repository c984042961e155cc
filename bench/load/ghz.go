package main

import (
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

const (
	ghzModule  = "github.com/bojand/ghz/cmd/ghz@" + ghzVersion
	ghzVersion = "v0.120.0"
)

// ghzReport is what the run reads of ghz's JSON report.
type ghzReport struct {
	cpu               time.Duration  // ghz's own CPU time
	Count             uint64         `json:"count"`
	RPS               float64        `json:"rps"`
	ErrorDistribution map[string]int `json:"errorDistribution"`
	// Details has every request's latency (up to a million). ghz's
	// latencyDistribution stops at p99, so the percentiles are taken
	// from here, the way ghz takes its own.
	Details []struct {
		Latency time.Duration `json:"latency"`
		Error   string        `json:"error"`
	} `json:"details"`
}

// percentiles returns the latencies at each percentage of the successful
// requests, ranked as ghz ranks them (p50 and p99 equal ghz's).
func (r ghzReport) percentiles(ps ...float64) []time.Duration {
	var ok []time.Duration
	for _, d := range r.Details {
		if d.Error == "" {
			ok = append(ok, d.Latency)
		}
	}
	out := make([]time.Duration, len(ps))
	if len(ok) == 0 {
		return out
	}
	slices.Sort(ok)
	for i, p := range ps {
		rank := p / 100 * float64(len(ok))
		j := int(rank)
		if rank == float64(j) {
			j--
		}
		out[i] = ok[max(j, 0)]
	}
	return out
}

func (r ghzReport) errors() int {
	n := 0
	for _, c := range r.ErrorDistribution {
		n += c
	}
	return n
}

// ghz drives the server at addr with the requests in dataFile, sent in
// turn: n requests, or when n is 0 for d. Stopped by time, ghz cancels the
// requests in flight, which the server may count as denials; sent by
// count, every request ends with its answer.
func ghz(o options, addr, dataFile string, d time.Duration, n uint64) (ghzReport, error) {
	stop := []string{"-z", d.String()}
	if n > 0 {
		stop = []string{"-n", strconv.FormatUint(n, 10)}
	}
	cmd := exec.Command(o.ghz, append([]string{"--insecure",
		"--call", "envoy.service.auth.v3.Authorization/Check",
		"-D", dataFile,
		"-c", strconv.Itoa(o.concurrency),
		"--connections", strconv.Itoa(o.connections),
		"--format", "json"},
		append(stop, addr)...)...)
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

// ghzVersionOf returns the module version the ghz binary was built from
// (ghz --version says "dev" when built by go install).
func ghzVersionOf(bin string) (string, error) {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("ghz build information: %w", err)
	}
	return info.Main.Version, nil
}

// writeMix writes the requests as the JSON array ghz sends in turn.
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

// clockTicks is Linux's USER_HZ, the unit of utime and stime in /proc.
const clockTicks = 100

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

// memory returns the process's resident set (VmRSS) and its peak (VmHWM),
// in KiB.
func memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || name != "VmRSS" && name != "VmHWM" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if name == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, errors.New("no VmRSS or VmHWM in /proc status")
	}
	return rss, hwm, nil
}
