package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// invariant is one line of the verdict.
type invariant struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// check evaluates the invariants; the services must still run.
func (r *report) check(ctx context.Context, st *stack, rec *recorder, ids *idClient, watch *bundleWatch) {
	r.Phases, r.JWTByKid, r.Slowest, r.Writes = rec.phases, rec.jwtByKid, rec.slow, ids.counts()
	r.Refused = map[string]*counts{}
	for _, kind := range []string{kindAPIKey, kindSession, kindJWT} {
		for _, label := range rec.kinds[kind] {
			if c := rec.byLabel[label]; c != nil && c.Denies[401] > 0 {
				r.Refused[label] = c
			}
		}
	}
	r.checkPanics(st)
	r.checkCredentials(rec)
	r.checkLatency()
	r.checkErrors(rec)
	r.checkAudit(ctx, st)
	ok, detail := memoryVerdict(r.Memory)
	if r.MemoryErr != "" {
		ok, detail = false, r.MemoryErr+"; "+detail
	}
	r.add("memory and goroutines back to baseline", ok, "%s", detail)

	// The sidecar kept its last good bundle and took the next good one.
	r.Revisions = watch.revisions()
	bad := slices.DeleteFunc(slices.Clone(r.Revisions), func(s string) bool { return s == revGood || s == revGood2 })
	took := slices.Contains(r.Revisions, revGood2)
	r.add("bad bundles never activated", len(bad) == 0 && took,
		"revisions seen active %v; the new signed one (%s) activated %t", r.Revisions, revGood2, took)
}

func (r *report) add(name string, ok bool, format string, args ...any) {
	r.Invariants = append(r.Invariants, invariant{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// checkPanics: no log line of either service mentions a panic (recovered
// ones included), and both still run.
func (r *report) checkPanics(st *stack) {
	var panics []string
	for _, c := range []*child{st.identity, st.sidecar} {
		lines, err := grepPanics(c.log)
		if err != nil {
			panics = append(panics, err.Error())
		}
		for _, l := range lines {
			panics = append(panics, c.name+": "+l)
		}
	}
	id, sc := st.identity.running(), st.sidecar.running()
	r.add("no panics", len(panics) == 0 && id && sc, "%d log lines mention a panic%s; identity running %t, sidecar running %t",
		len(panics), firstOf(panics), id, sc)
}

// checkCredentials: no allow for a credential that cannot verify, for an
// anonymous tool call, or for a revoked credential past the bound; and
// every revoked credential was tried after its revocation.
func (r *report) checkCredentials(rec *recorder) {
	var invalid []string
	nInvalid := 0
	for label, n := range rec.invalidOK {
		invalid = append(invalid, fmt.Sprintf("%s ×%d", label, n))
		nInvalid += n
	}
	sent, allowed, past, unchecked := 0, 0, 0, 0
	var latest ms
	for _, v := range rec.revoked {
		r.Revoked = append(r.Revoked, v)
		sent, allowed, past = sent+v.Sent, allowed+v.Allowed, past+v.PastBound
		latest = max(latest, v.LastAllow)
	}
	slices.SortFunc(r.Revoked, func(a, b *revokedStats) int { return strings.Compare(a.Credential, b.Credential) })
	for _, label := range rec.victims {
		if rec.revoked[label] == nil {
			unchecked++
		}
	}
	r.add("no allow for invalid, anonymous or revoked credentials",
		nInvalid == 0 && rec.anonMCPOK == 0 && past == 0 && unchecked == 0,
		"invalid allowed %d%s; anonymous tool calls allowed %d; revoked credentials: %d requests after revocation, %d allowed (the latest %.1f ms after), %d past the %s bound, %d never sent after revocation",
		nInvalid, firstOf(invalid), rec.anonMCPOK, sent, allowed, float64(latest), past, liveMaxAge, unchecked)
}

// checkLatency: every Check of the sustained load answered within the
// decision budget, as the client measured it. The sidecar's own timing
// and whether the load kept its rate tell a slow sidecar from a saturated
// machine.
func (r *report) checkLatency() {
	if n := len(r.Latencies); n > 0 {
		r.P999, r.Max = toMS(quantile(r.Latencies, 0.999)), toMS(r.Latencies[n-1])
	}
	sent, secs := 0, 0.0
	for _, p := range r.Phases {
		if p.Budgeted {
			sent += p.Requests
			secs += p.End.Sub(p.Start).Seconds()
		}
	}
	if secs > 0 && r.TargetRPS > 0 {
		r.Achieved = float64(sent) / secs / r.TargetRPS
	}
	r.add("every Check within the decision budget", len(r.Latencies) > 0 && r.Max <= r.Budget,
		"%d Checks at the sustained rate: p99.9 %.1f ms, max %.1f ms, %d over the budget of %.0f ms (policy.timeout %s + %.0f ms transport); the sidecar timed %.0f decisions over %.0f ms; the load reached %.0f%% of its target rate (%d sends skipped: the client could not keep up)",
		len(r.Latencies), float64(r.P999), float64(r.Max), overBudget(r.Latencies, r.Budget), float64(r.Budget), decisionTimeout,
		float64(r.Allowance), r.ServerSlow, float64(r.ServerBound), 100*r.Achieved, r.Skipped)
}

// checkErrors: the sidecar answers every Check, with a denial when it
// must, never with a gRPC error.
func (r *report) checkErrors(rec *recorder) {
	errs, total := map[string]int{}, 0
	for _, p := range r.Phases {
		for code, n := range p.Errors {
			errs[code] += n
			total += n
		}
	}
	r.add("zero gRPC errors", total == 0, "%d errors %v%s", total, errs, firstOf(rec.errs))
}

// overBudget counts the sorted latencies above the budget.
func overBudget(sorted []time.Duration, budget ms) int {
	i, _ := slices.BinarySearch(sorted, time.Duration(float64(budget)*float64(time.Millisecond))+1)
	return len(sorted) - i
}

// checkAudit compares the audit log with the identity writes that
// succeeded, action by action, and verifies the chain.
func (r *report) checkAudit(ctx context.Context, st *stack) {
	const name = "audit rows = successful identity writes"
	conn, err := pgx.Connect(ctx, st.pg.url("mcpauthz"))
	if err != nil {
		r.add(name, false, "reading the audit log: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT action, count(*) FROM audit_events GROUP BY action")
	if err != nil {
		r.add(name, false, "reading the audit log: %v", err)
		return
	}
	r.AuditRows = map[string]int{}
	for rows.Next() {
		var action string
		var n int
		if err := rows.Scan(&action, &n); err != nil {
			r.add(name, false, "reading the audit log: %v", err)
			return
		}
		r.AuditRows[action] = n
	}
	if err := rows.Err(); err != nil {
		r.add(name, false, "reading the audit log: %v", err)
		return
	}
	ok := true
	var diffs []string
	wrote, stored, failed, unknown := 0, 0, 0, 0
	for action, w := range r.Writes {
		n := r.AuditRows[action]
		wrote, stored, failed, unknown = wrote+w.OK, stored+n, failed+w.Failed, unknown+w.Unknown
		if n < w.OK || n > w.OK+w.Unknown {
			ok = false
			diffs = append(diffs, fmt.Sprintf("%s: %d rows for %d writes (+%d unanswered)", action, n, w.OK, w.Unknown))
		}
	}
	for action, n := range r.AuditRows {
		if _, made := r.Writes[action]; !made && action != "signing_key.create" {
			ok = false
			diffs = append(diffs, fmt.Sprintf("%s: %d rows, no such write", action, n))
		}
	}
	detail := fmt.Sprintf("%d rows for %d successful writes (%d refused writes, %d unanswered); %d signing keys made by the service",
		stored, wrote, failed, unknown, r.AuditRows["signing_key.create"])
	if len(diffs) > 0 {
		slices.Sort(diffs)
		detail += "; " + strings.Join(diffs, "; ")
	}
	r.add(name, ok, "%s", detail)

	cmd := exec.CommandContext(ctx, st.bin, "audit", "verify", "--config", filepath.Join(st.work, "identity.yaml"))
	out, err := cmd.CombinedOutput()
	r.add("audit chain verifies", err == nil, "mcpauthz audit verify: %s", oneLine(string(out), err))
}

// grepPanics returns the log lines that mention a panic.
func grepPanics(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(strings.ToLower(l), "panic") {
			out = append(out, truncate(l, 300))
		}
	}
	return out, sc.Err()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func firstOf(list []string) string {
	if len(list) == 0 {
		return ""
	}
	return " (first: " + list[0] + ")"
}

func oneLine(out string, err error) string {
	s := strings.Join(strings.Fields(out), " ")
	if err != nil {
		s += " (" + err.Error() + ")"
	}
	return truncate(s, 300)
}
