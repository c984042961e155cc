package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// report is everything the soak prints, and writes with -out.
type report struct {
	Duration    string  `json:"duration"`
	Machine     string  `json:"machine"`
	CapacityRPS float64 `json:"capacity_rps"`
	TargetRPS   float64 `json:"target_rps"`
	Skipped     int64   `json:"generator_skipped"`
	Achieved    float64 `json:"achieved_share_of_target"`
	Budget      ms      `json:"latency_budget_ms"`
	Allowance   ms      `json:"transport_allowance_ms"`
	P999        ms      `json:"p99_9_ms"`
	Max         ms      `json:"max_ms"`
	// ServerSlow is how many decisions of the sustained load the sidecar
	// itself timed above ServerBound, its histogram bound at or above the
	// decision timeout.
	ServerSlow  float64  `json:"server_decisions_over_bound"`
	ServerBound ms       `json:"server_bound_ms"`
	Phases      []*phase `json:"phases"`
	// Refused are valid credentials answered 401 at least once: a JWT
	// that expired while the identity service could not renew it, or a
	// fault.
	Refused    map[string]*counts    `json:"valid_credentials_refused"`
	Revoked    []*revokedStats       `json:"revoked_credentials"`
	JWTByKid   map[string]*counts    `json:"jwt_by_signing_key"`
	Writes     map[string]writeCount `json:"identity_writes"`
	AuditRows  map[string]int        `json:"audit_rows"`
	Memory     []memCheck            `json:"memory"`
	MemoryErr  string                `json:"memory_error,omitempty"`
	Slowest    []slowest             `json:"slowest"`
	Revisions  []string              `json:"bundle_revisions_seen"`
	Invariants []invariant           `json:"invariants"`
	WorkDir    string                `json:"work_dir"`
	Latencies  []time.Duration       `json:"-"` // of the budgeted phases, sorted
}

// ok reports whether every invariant holds.
func (r *report) ok() bool {
	for _, inv := range r.Invariants {
		if !inv.OK {
			return false
		}
	}
	return len(r.Invariants) > 0
}

// statusList writes answers by status: "401:12 503:3".
func statusList(m map[int]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// print writes the report as tables.
func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nsoak %s: capacity %.0f checks/s, sustained %.0f/s (%.0f%% reached; %d sends skipped)\n%s\n\n",
		r.Duration, r.CapacityRPS, r.TargetRPS, 100*r.Achieved, r.Skipped, r.Machine)
	fmt.Fprintf(w, "%-14s %5s %9s %6s %8s  %-34s %5s %8s %8s %9s\n",
		"phase", "secs", "requests", "rps", "allows", "denies by status", "gRPC", "p99 ms", "max ms", "live MB")
	for _, p := range r.Phases {
		secs := p.End.Sub(p.Start).Seconds()
		heap := "-"
		if p.Sidecar != nil {
			heap = fmt.Sprintf("%.0f", p.Sidecar.Live/1e6)
		}
		fmt.Fprintf(w, "%-14s %5.0f %9d %6.0f %8d  %-34s %5d %8.1f %8.1f %9s\n",
			p.Name, secs, p.Requests, float64(p.Requests)/max(secs, 1e-9), p.Allows, statusList(p.Denies),
			p.errors(), float64(p.P99), float64(p.Max), heap)
	}
	fmt.Fprintln(w)
	for _, p := range r.Phases {
		fmt.Fprintf(w, "%s: %s\n", p.Name, p.What)
		for _, kind := range slices.Sorted(maps.Keys(p.ByKind)) {
			c := p.ByKind[kind]
			fmt.Fprintf(w, "    %-10s %8d requests, %8d allowed, denied %s", kind, c.Requests, c.Allows, statusList(c.Denies))
			if n := c.errors(); n > 0 {
				fmt.Fprintf(w, ", gRPC errors %v", c.Errors)
			}
			fmt.Fprintln(w)
		}
		for _, n := range p.Notes {
			fmt.Fprintf(w, "    • %s\n", n)
		}
	}
	if len(r.Revoked) > 0 {
		fmt.Fprintf(w, "\nrevoked credentials (bound: credentials.live_max_age %s):\n", liveMaxAge)
		for _, v := range r.Revoked {
			fmt.Fprintf(w, "    %-44s %6d sent after revocation, %d allowed, %d past the bound; answers %s\n",
				v.Credential, v.Sent, v.Allowed, v.PastBound, statusList(v.Statuses))
		}
	}
	if len(r.Refused) > 0 {
		fmt.Fprintln(w, "\nvalid credentials answered 401 to requests that need no fresh session (a JWT that expired while it could not be renewed, or a fault):")
		for _, label := range slices.Sorted(maps.Keys(r.Refused)) {
			c := r.Refused[label]
			fmt.Fprintf(w, "    %-44s %8d requests, %8d allowed, denied %s\n", label, c.Requests, c.Allows, statusList(c.Denies))
		}
	}
	if len(r.JWTByKid) > 0 {
		fmt.Fprintln(w, "\nvalid JWTs by signing key, on requests that need no fresh session:")
		for _, kid := range slices.Sorted(maps.Keys(r.JWTByKid)) {
			c := r.JWTByKid[kid]
			fmt.Fprintf(w, "    %-44s %8d requests, %8d allowed, denied %s\n", kid, c.Requests, c.Allows, statusList(c.Denies))
		}
	}
	if len(r.Slowest) > 0 {
		fmt.Fprintln(w, "\nslowest Checks at the sustained rate:")
		for _, s := range r.Slowest {
			fmt.Fprintf(w, "    %8.1f ms  %-14s %6.1f s in  %-32s %-24s status %d %s\n",
				float64(s.Latency), s.Phase, float64(s.Into)/1000, s.Kind, s.Op, s.Status, s.Code)
		}
	}
	fmt.Fprintf(w, "\n%-56s %-6s %s\n", "invariant", "result", "detail")
	for _, inv := range r.Invariants {
		verdict := "PASS"
		if !inv.OK {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "%-56s %-6s %s\n", inv.Name, verdict, inv.Detail)
	}
	if r.ok() {
		fmt.Fprintln(w, "\nall invariants hold")
	} else {
		fmt.Fprintln(w, "\nINVARIANTS FAILED")
	}
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
