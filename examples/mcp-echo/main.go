// Command mcp-echo serves the example MCP server of package echo over
// Streamable HTTP: POST /mcp and GET /healthz on -addr (MCP_ECHO_ADDR,
// default :8080).
//
// With -probe URL it serves nothing: it sends GET URL and exits 0 if the
// answer is 2xx, 1 otherwise. The distroless image has no shell, curl or
// wget, so the compose stack's health checks run this.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mcpauthz/mcpauthz/examples/mcp-echo/echo"
)

func main() {
	addr := flag.String("addr", envOr("MCP_ECHO_ADDR", ":8080"), "listen `address` (MCP_ECHO_ADDR)")
	probeURL := flag.String("probe", "", "send GET `URL`, exit 0 on a 2xx answer and 1 otherwise, serve nothing")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mcp-echo: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if *probeURL != "" {
		if err := probe(context.Background(), *probeURL, 3*time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "mcp-echo: probe: %v\n", err)
			os.Exit(1)
		}
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *addr, log); err != nil {
		log.Error("mcp-echo stopped", slog.Any("error", err))
		os.Exit(1)
	}
}

// serve runs the server until ctx is done, then stops it within 10 s.
func serve(ctx context.Context, addr string, log *slog.Logger) error {
	srv := &http.Server{
		Addr:              addr,
		Handler:           echo.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("mcp-echo serving", slog.String("addr", addr), slog.String("protocol_version", echo.ProtocolVersion))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// probe sends GET url and fails unless the answer is 2xx.
func probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
