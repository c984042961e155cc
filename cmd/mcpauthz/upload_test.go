package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestDecisionLogUpload: with decision_log.upload_url the sidecar's
// decisions reach the endpoint as OPA's decision-log plugin sends them,
// with the bearer token, and the last ones are flushed at shutdown.
func TestDecisionLogUpload(t *testing.T) {
	var mu sync.Mutex
	var events []map[string]any
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil || r.Header.Get("Content-Encoding") != "gzip" {
			http.Error(w, "not gzip", 400)
			return
		}
		var batch []map[string]any
		if err := json.NewDecoder(zr).Decode(&batch); err != nil {
			http.Error(w, "not a JSON array", 400)
			return
		}
		mu.Lock()
		events, auth = append(events, batch...), r.Header.Get("Authorization")
		mu.Unlock()
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("upload-secret\n"), 0o600)
	cfg := loopback(devConfig(t))
	cfg.DecisionLog.Output = ""
	cfg.DecisionLog.UploadURL = srv.URL + "/logs"
	cfg.DecisionLog.UploadTokenFile = tokenFile
	s, stop := startSidecar(t, cfg, io.Discard)
	client := dial(t, s.grpc.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		if _, err := client.Check(ctx, checkRequest("echo", nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 3 || auth != "Bearer upload-secret" || events[0]["decision_id"] == nil {
		t.Fatalf("%d events, Authorization %q: %v", len(events), auth, events)
	}
}
