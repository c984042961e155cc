package httpapi

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

type auditJSON struct {
	Events []identity.AuditRecord `json:"events"`
	// NextAfter is the cursor of the next page (the after parameter);
	// absent on the last page.
	NextAfter int64 `json:"next_after,omitempty"`
}

// auditLog serves the audit log: a page as JSON, or with format=jsonl or
// format=csv every matching event from the cursor on, as a download.
func (h *Handler) auditLog(w http.ResponseWriter, r *http.Request, c *caller) error {
	q := r.URL.Query()
	f, err := auditFilter(q)
	if err != nil {
		return err
	}
	switch format := q.Get("format"); format {
	case "", "json":
		evs, err := h.svc.AuditLog(r.Context(), c.sess, f)
		if err != nil {
			return err
		}
		out := auditJSON{Events: make([]identity.AuditRecord, len(evs))}
		for i := range evs {
			out.Events[i] = evs[i].Record()
		}
		limit := f.Limit
		if limit == 0 {
			limit = identity.MaxAuditPage // what the service applies
		}
		if len(evs) == limit {
			out.NextAfter = evs[len(evs)-1].Seq
		}
		return writeJSON(w, http.StatusOK, out)
	case "jsonl", "csv":
		return h.exportAudit(w, r, c, f, format)
	default:
		return badRequest("format", "format: must be json, jsonl or csv")
	}
}

// exportPageTimeout bounds writing one page of an export.
const exportPageTimeout = 30 * time.Second

// exportAudit streams every matching event, page by page, to the first
// empty page. Once the first
// page is written the status is sent, so a later failure aborts the
// response: the client sees a broken transfer, never a short file that
// looks whole.
func (h *Handler) exportAudit(w http.ResponseWriter, r *http.Request, c *caller, f identity.AuditFilter, format string) error {
	f.Limit = identity.MaxAuditPage
	evs, err := h.svc.AuditLog(r.Context(), c.sess, f)
	if err != nil {
		return err
	}
	ctype, write := "application/jsonl", identity.WriteAuditJSONL
	if format == "csv" {
		first := true
		ctype, write = "text/csv; charset=utf-8", func(w io.Writer, evs []identity.AuditEvent) error {
			err := identity.WriteAuditCSV(w, evs, first)
			first = false
			return err
		}
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="mcpauthz-audit.`+format+`"`)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for {
		// Each page gets its own write deadline: a long export is fine, a
		// reader that stalls is not.
		_ = rc.SetWriteDeadline(time.Now().Add(exportPageTimeout))
		if err := write(w, evs); err != nil {
			return h.abort(r, err)
		}
		if len(evs) == 0 {
			return nil
		}
		f.AfterSeq = evs[len(evs)-1].Seq
		if evs, err = h.svc.AuditLog(r.Context(), c.sess, f); err != nil {
			return h.abort(r, err)
		}
	}
}

// auditFilter reads the filter parameters.
func auditFilter(q url.Values) (identity.AuditFilter, error) {
	f := identity.AuditFilter{OrgID: q.Get("org_id"), ActorID: q.Get("actor_id"), Action: q.Get("action")}
	var err error
	if f.Since, err = timeParam(q, "since"); err != nil {
		return f, err
	}
	if f.Until, err = timeParam(q, "until"); err != nil {
		return f, err
	}
	if f.AfterSeq, err = intParam(q, "after", 0, 1<<62); err != nil {
		return f, err
	}
	limit, err := intParam(q, "limit", 1, identity.MaxAuditPage)
	f.Limit = int(limit)
	return f, err
}

func timeParam(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, badRequest(name, name+": must be an RFC 3339 time")
	}
	return t, nil
}

// intParam reads an optional integer parameter in [lo, hi]; absent is 0.
func intParam(q url.Values, name string, lo, hi int64) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, badRequest(name, name+": must be an integer from "+strconv.FormatInt(lo, 10)+" to "+strconv.FormatInt(hi, 10))
	}
	return n, nil
}
