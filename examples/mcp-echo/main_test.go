package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusOK)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name, url string
		ok        bool
	}{
		{"ok/2xx", srv.URL + "/ok", true},
		{"fail/503", srv.URL + "/down", false},
		{"fail/timeout", srv.URL + "/slow", false},
		{"fail/nothing listening", closed.URL + "/ok", false},
		{"fail/not a URL", "://", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := probe(context.Background(), tc.url, 200*time.Millisecond)
			if (err == nil) != tc.ok {
				t.Fatalf("probe(%s) = %v, want ok=%v", tc.url, err, tc.ok)
			}
		})
	}
}
