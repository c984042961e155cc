package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcpauthz/mcpauthz/policies"
)

// limitScale multiplies every limit and quota of the default bundle's
// data. Unscaled, they refuse a principal's 121st request in a minute and
// a free organization's 1,001st tool call of the day. Scaled, the
// tightest, a user's or key's 120 a minute, admits 20,000 a second, while
// a run sends each of its 16 principals about a thousand; a free
// organization's daily tool calls become 10 million. Every limit and
// quota is still computed by the policy and taken by the limiter.
const limitScale = 10_000

// writeBundle writes the default bundle's Rego modules (not its tests:
// they check the unscaled numbers) and its data with every limit and
// quota multiplied by limitScale into dir.
func writeBundle(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	src := policies.FS()
	modules, err := fs.Glob(src, "*.rego")
	if err != nil {
		return err
	}
	for _, name := range modules {
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		b, err := fs.ReadFile(src, name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	raw, err := fs.ReadFile(src, "data.json")
	if err != nil {
		return err
	}
	var data struct {
		MCPAuthz struct {
			Config map[string]any `json:"config"`
		} `json:"mcpauthz"`
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		return fmt.Errorf("policies/data.json: %w", err)
	}
	cfg := data.MCPAuthz.Config
	for _, section := range []string{"limits", "quotas", "concurrency"} {
		scaleLimits(cfg[section])
	}
	out, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "data.json"), out, 0o600)
}

// scaleLimits multiplies, anywhere under v, the numbers named "limit" and
// the values of "limit_by_role" and "limit_by_tier" objects by limitScale.
func scaleLimits(v any) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			scaleLimits(e)
		}
	case map[string]any:
		for k, e := range v {
			switch k {
			case "limit":
				if n, ok := e.(float64); ok {
					v[k] = n * limitScale
				}
			case "limit_by_role", "limit_by_tier":
				if m, ok := e.(map[string]any); ok {
					for r, n := range m {
						if n, ok := n.(float64); ok {
							m[r] = n * limitScale
						}
					}
				}
			default:
				scaleLimits(e)
			}
		}
	}
}
