package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestErrorsAfterTheResponseStarted: an error before anything is sent is
// answered in full; once the status is out, it only ends the body.
func TestErrorsAfterTheResponseStarted(t *testing.T) {
	h := &Handler{log: slog.New(slog.DiscardHandler)}
	for _, c := range []struct {
		name   string
		serve  func(h *Handler, w http.ResponseWriter, r *http.Request, c *caller) error
		status int
		body   string
	}{
		{"ok/an unencodable value is a 500", func(_ *Handler, w http.ResponseWriter, _ *http.Request, _ *caller) error {
			return writeJSON(w, http.StatusOK, map[string]any{"c": make(chan int)})
		}, 500, `{"error":{"code":"internal","message":"internal error"}}`},
		{"ok/a failure after the body began adds nothing", func(_ *Handler, w http.ResponseWriter, _ *http.Request, _ *caller) error {
			if err := writeJSON(w, http.StatusCreated, map[string]string{"a": "b"}); err != nil {
				return err
			}
			return errors.New("the client went away")
		}, 201, `{"a":"b"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.endpoint(route{method: "GET", path: "/", access: public, serve: c.serve}).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if rec.Code != c.status || strings.TrimSpace(rec.Body.String()) != c.body {
				t.Fatalf("%d %s, want %d %s", rec.Code, rec.Body, c.status, c.body)
			}
		})
	}
}
