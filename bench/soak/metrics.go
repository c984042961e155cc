package main

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// metrics reads a Prometheus text exposition: each sample by its name
// and labels as written ("go_goroutines", "x_bucket{le=\"0.1\"}").
func metrics(adminAddr string) (map[string]float64, error) {
	resp, err := probeClient.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, '}') + 1 // 0 without labels
		name, value, ok := strings.Cut(line[i:], " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.Fields(value)[0], 64); err == nil {
			out[line[:i]+name] = v
		}
	}
	return out, sc.Err()
}

// slowDecisions is how many decisions the sidecar itself timed above the
// smallest bucket bound of its latency histogram at or above limit, and
// that bound in seconds.
func slowDecisions(m map[string]float64, limit time.Duration) (float64, float64) {
	const prefix = `mcpauthz_decision_duration_seconds_bucket{`
	type bucket struct{ le, n float64 }
	var buckets []bucket
	bound, total := math.Inf(1), 0.0
	for k, v := range m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		_, le, _ := strings.Cut(k, `le="`)
		le, _, _ = strings.Cut(le, `"`)
		b, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		buckets = append(buckets, bucket{b, v})
		if math.IsInf(b, 1) {
			total += v
		} else if b >= limit.Seconds() {
			bound = min(bound, b)
		}
	}
	within := 0.0
	for _, b := range buckets {
		if b.le == bound {
			within += b.n
		}
	}
	return total - within, bound
}

// peakRSS is a process's high-water resident memory, in bytes.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}
