package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// secretKeys are attribute keys whose values never reach a log line,
// whatever code logs them: the handler replaces them.
var secretKeys = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "set-cookie": true,
	"x-api-key": true, "api_key": true, "apikey": true, "token": true, "access_token": true,
	"refresh_token": true, "id_token": true, "password": true, "secret": true, "client_secret": true,
}

const redacted = "[REDACTED]"

// redact is a slog ReplaceAttr that blanks secret attributes, in groups too.
func redact(_ []string, a slog.Attr) slog.Attr {
	if secretKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, redacted)
	}
	return a
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not a log level (debug, info, warn, error)", s)
	}
	return l, nil
}

// newLogger returns the operational logger: structured, secrets redacted.
func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.Level) // validated already
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redact}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
