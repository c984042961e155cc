package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/extauthz"
	"github.com/mcpauthz/mcpauthz/extauthz/decisionlog"
	"github.com/mcpauthz/mcpauthz/mcp"
)

// Config is the sidecar's configuration. Values come, each overriding the
// one before, from the defaults, the YAML file, MCPAUTHZ_* environment
// variables and command-line flags; the result is validated once.
type Config struct {
	GRPC        GRPCConfig        `yaml:"grpc"`
	HTTP        HTTPConfig        `yaml:"http"`
	Admin       AdminConfig       `yaml:"admin"`
	Policy      PolicyConfig      `yaml:"policy"`
	MCP         MCPConfig         `yaml:"mcp"`
	Headers     HeadersConfig     `yaml:"headers"`
	Log         LogConfig         `yaml:"log"`
	DecisionLog DecisionLogConfig `yaml:"decision_log"`
	Runtime     RuntimeConfig     `yaml:"runtime"`
	Identity    IdentityConfig    `yaml:"identity"`
	Credentials CredentialsConfig `yaml:"credentials"`
	Limits      LimitsConfig      `yaml:"limits"`
	Tracing     TracingConfig     `yaml:"tracing"`
}

// RuntimeConfig tunes the Go runtime's garbage collector.
type RuntimeConfig struct {
	// GCPercent is GOGC: the heap growth that triggers a collection.
	GCPercent int `yaml:"gc_percent"`
	// MemoryLimit is GOMEMLIMIT, a soft limit such as "512MiB"; empty
	// means 90% of the container's memory limit, if it has one.
	MemoryLimit ByteSize `yaml:"memory_limit"`
}

// ByteSize is a number of bytes written as "512MiB", "2GiB" or "1048576".
type ByteSize int64

// UnmarshalYAML parses a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := parseBytes(s)
	*b = ByteSize(v)
	return err
}

// GRPCConfig is the Envoy ext_authz gRPC listener.
type GRPCConfig struct {
	Addr            string    `yaml:"addr"`
	MaxRecvMsgBytes int       `yaml:"max_recv_msg_bytes"`
	TLS             TLSConfig `yaml:"tls"`
}

// HTTPConfig is the forward-auth listener (Envoy HTTP ext_authz, nginx
// auth_request, Traefik forwardAuth).
type HTTPConfig struct {
	Addr           string    `yaml:"addr"`
	PathPrefix     string    `yaml:"path_prefix"`
	TrustedProxies []string  `yaml:"trusted_proxies"`
	MaxBodyBytes   int64     `yaml:"max_body_bytes"`
	TLS            TLSConfig `yaml:"tls"`
}

// AdminConfig is the listener serving /healthz, /readyz and /metrics.
type AdminConfig struct {
	// Addr is the listen address; empty turns the listener off.
	Addr string `yaml:"addr"`
}

// TLSConfig enables TLS on a listener; ClientCAFile enables mTLS.
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// PolicyConfig selects the policy bundle and the decision.
type PolicyConfig struct {
	// Bundle is a bundle directory or .tar.gz, or the http(s) URL of a
	// .tar.gz on a bundle server, polled every BundlePoll; empty means the
	// bundle compiled into the binary.
	Bundle string `yaml:"bundle"`
	// BundlePoll is how often a bundle URL is polled (±10%; longer after
	// failures).
	BundlePoll Duration `yaml:"bundle_poll"`
	// BundleTokenFile holds a bearer token sent to the bundle server.
	BundleTokenFile string `yaml:"bundle_token_file"`
	DecisionPath    string `yaml:"decision_path"`
	// Watch reloads a bundle directory or file when it changes.
	Watch   bool     `yaml:"watch"`
	Timeout Duration `yaml:"timeout"`
	// SkipTests activates bundles without running their own Rego tests;
	// by default a bundle whose tests fail is rejected like one that does
	// not compile.
	SkipTests bool `yaml:"skip_tests"`
	// FullInput builds the whole input for every decision rather than the
	// parts the policy reads (slower; for debugging).
	FullInput bool `yaml:"full_input"`
	// DecisionCache is how many decisions of a pure policy are remembered,
	// keyed by the input the policy reads; 0 turns the cache off.
	DecisionCache int `yaml:"decision_cache"`
	// Verification, when set, makes every load of Bundle verify its
	// signature (`mcpauthz bundle sign`); the embedded bundle is part of
	// the binary and is not verified.
	Verification VerificationConfig `yaml:"verification"`
	// Shadow evaluates a candidate bundle beside the active one.
	Shadow ShadowConfig `yaml:"shadow"`
}

// ShadowConfig is a candidate bundle evaluated on live traffic beside the
// active one, without affecting any answer: decisions it would change are
// counted (metrics, /readyz) and logged. It is read like policy.bundle,
// with the same watch, polling, token and signature settings.
type ShadowConfig struct {
	// Bundle is a directory, a .tar.gz or an http(s) URL; empty: no shadow.
	Bundle string `yaml:"bundle"`
	// Queue is how many decisions may wait for the candidate; beyond it
	// decisions are not shadowed (and counted as dropped).
	Queue int `yaml:"queue"`
	// LogPerSecond caps the lines logging changed decisions.
	LogPerSecond float64 `yaml:"log_per_second"`
}

// isURL reports whether a bundle location names a bundle server.
func isURL(location string) bool {
	b := strings.ToLower(location)
	return strings.HasPrefix(b, "http://") || strings.HasPrefix(b, "https://")
}

// remoteOptions configure polling the bundle server: the interval and the
// bearer token, read from BundleTokenFile.
func (p PolicyConfig) remoteOptions() ([]bundles.RemoteOption, error) {
	opts := []bundles.RemoteOption{bundles.WithPollInterval(time.Duration(p.BundlePoll))}
	if p.BundleTokenFile != "" {
		data, err := os.ReadFile(p.BundleTokenFile)
		if err != nil {
			return nil, fmt.Errorf("policy.bundle_token_file: %w", err)
		}
		token := strings.TrimSpace(string(data))
		if token == "" {
			return nil, errors.New("policy.bundle_token_file: the file is empty")
		}
		opts = append(opts, bundles.WithBearerToken(token))
	}
	return opts, nil
}

// VerificationConfig is the key policy bundles must be signed with.
type VerificationConfig struct {
	PublicKeyFile string `yaml:"public_key_file"` // PEM: RSA (RS256) or P-256 (ES256)
	KeyID         string `yaml:"keyid"`           // the key id signatures must name
	Scope         string `yaml:"scope"`           // optional; signatures must carry it
}

// enabled reports whether any verification setting is present.
func (v VerificationConfig) enabled() bool {
	return v != VerificationConfig{}
}

// verification reads the key, or returns nil when verification is off.
func (v VerificationConfig) verification() (*bundles.Verification, error) {
	if !v.enabled() {
		return nil, nil
	}
	if v.PublicKeyFile == "" {
		return nil, errors.New("public_key_file is required")
	}
	if v.KeyID == "" {
		return nil, errors.New("keyid is required")
	}
	pem, err := os.ReadFile(v.PublicKeyFile)
	if err != nil {
		return nil, err
	}
	return bundles.NewVerification(pem, v.KeyID, v.Scope)
}

// MCPConfig tunes MCP parsing.
type MCPConfig struct {
	Paths        []string `yaml:"paths"`
	AllowBatches bool     `yaml:"allow_batches"`
	// Resource, when its url is set, is published as OAuth protected
	// resource metadata (RFC 9728) and named in every 401's challenge.
	Resource ResourceConfig `yaml:"resource"`
}

// ResourceConfig describes the protected MCP server for its metadata.
type ResourceConfig struct {
	URL                  string   `yaml:"url"` // what clients call: https://mcp.example.com/mcp
	AuthorizationServers []string `yaml:"authorization_servers"`
	ScopesSupported      []string `yaml:"scopes_supported"`
	Name                 string   `yaml:"name"`
	Documentation        string   `yaml:"documentation"`
}

// protectedResource builds the metadata, or nil without a url.
func (r ResourceConfig) protectedResource() (*extauthz.ProtectedResource, error) {
	if r.URL == "" {
		return nil, nil
	}
	return extauthz.NewProtectedResource(mcp.ResourceMetadata{
		Resource: r.URL, AuthorizationServers: r.AuthorizationServers, ScopesSupported: r.ScopesSupported,
		ResourceName: r.Name, ResourceDocumentation: r.Documentation,
	})
}

// HeadersConfig names the identity headers sent upstream. It has the
// fields of extauthz.IdentityHeaders, so each converts to the other.
type HeadersConfig struct {
	Prefix     string `yaml:"prefix"`
	User       string `yaml:"user"`
	Tenant     string `yaml:"tenant"`
	Roles      string `yaml:"roles"`
	AuthMethod string `yaml:"auth_method"`
	DecisionID string `yaml:"decision_id"`
	// UpstreamDecisionID also sends the decision id header upstream on
	// allows (Envoy has it in the dynamic metadata regardless).
	UpstreamDecisionID bool `yaml:"upstream_decision_id"`
}

// LogConfig configures the operational log (stderr).
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// DecisionLogConfig configures the decision log.
type DecisionLogConfig struct {
	// Output is "" (off), "stdout", "stderr" or a file path.
	Output string   `yaml:"output"`
	Mask   []string `yaml:"mask"`
	Buffer int      `yaml:"buffer"`
	// UploadURL, when set, receives the decisions in batches as OPA's
	// decision-log plugin sends them (gzip JSON arrays), besides Output.
	UploadURL string `yaml:"upload_url"`
	// UploadTokenFile holds a bearer token for the upload.
	UploadTokenFile string `yaml:"upload_token_file"`
}

// uploader builds the decision-log uploader, or nil without an upload URL.
func (c DecisionLogConfig) uploader(log *slog.Logger) (*decisionlog.Uploader, error) {
	if c.UploadURL == "" {
		return nil, nil
	}
	opts := []decisionlog.UploaderOption{decisionlog.WithLogger(log)}
	if c.UploadTokenFile != "" {
		tok, err := os.ReadFile(c.UploadTokenFile)
		if err != nil {
			return nil, fmt.Errorf("decision_log.upload_token_file: %w", err)
		}
		opts = append(opts, decisionlog.WithToken(strings.TrimSpace(string(tok))))
	}
	up, err := decisionlog.NewUploader(c.UploadURL, opts...)
	if err != nil {
		return nil, errors.New("decision_log.upload_url: not an http(s) URL") // it may hold a password
	}
	return up, nil
}

// Duration is a time.Duration written as "100ms", "2s".
type Duration time.Duration

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// DefaultGCPercent is the garbage collector setting unless configured.
const DefaultGCPercent = 400

// DefaultAdminAddr is where /healthz, /readyz and /metrics are served.
const DefaultAdminAddr = ":9194"

// Defaults returns the configuration used where nothing else is set.
func Defaults() Config {
	return Config{
		GRPC: GRPCConfig{Addr: ":9191", MaxRecvMsgBytes: 4 << 20},
		HTTP: HTTPConfig{
			Addr:           ":9192",
			TrustedProxies: []string{"127.0.0.1/32", "::1/128"},
			MaxBodyBytes:   1 << 20,
		},
		Admin: AdminConfig{Addr: DefaultAdminAddr},
		Policy: PolicyConfig{
			DecisionPath:  bundles.DefaultDecisionPath,
			BundlePoll:    Duration(bundles.DefaultPollInterval),
			Watch:         true,
			Timeout:       Duration(extauthz.DefaultTimeout),
			DecisionCache: bundles.DefaultDecisionCacheSize,
			Shadow:        ShadowConfig{Queue: 1024, LogPerSecond: 10},
		},
		MCP:         MCPConfig{Paths: slices.Clone(extauthz.DefaultMCPPaths)},
		Headers:     HeadersConfig(extauthz.DefaultIdentityHeaders),
		Log:         LogConfig{Level: "info", Format: "json"},
		DecisionLog: DecisionLogConfig{Buffer: decisionlog.DefaultBuffer},
		Runtime:     RuntimeConfig{GCPercent: DefaultGCPercent},
		Identity:    identityDefaults(),
		Credentials: credentialsDefaults(),
		Limits:      limitsDefaults(),
		Tracing:     tracingDefaults(),
	}
}

// decodeFile applies a YAML document to cfg. Unknown keys are errors.
func decodeFile(cfg *Config, r io.Reader, name string) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("config %s: %w", name, err)
	}
	return nil
}

// EnvPrefix starts every configuration variable. Names under
// MCPAUTHZ_TEST_ belong to the test suite and are not configuration.
const EnvPrefix = "MCPAUTHZ_"

// envFields maps each MCPAUTHZ_* variable to its field: the YAML path in
// upper case joined with "_" (grpc.addr → MCPAUTHZ_GRPC_ADDR).
func envFields(cfg *Config) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := range t.NumField() {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			name := prefix + strings.ToUpper(tag)
			f := v.Field(i)
			if f.Kind() == reflect.Struct {
				walk(f, name+"_")
				continue
			}
			out[name] = f
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), EnvPrefix)
	return out
}

// applyEnv applies MCPAUTHZ_* variables from environ ("K=V" pairs).
// Lists are comma-separated. Unknown variables are errors.
func applyEnv(cfg *Config, environ []string) error {
	fields := envFields(cfg)
	var errs []error
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, EnvPrefix) || strings.HasPrefix(k, EnvPrefix+"TEST_") {
			continue
		}
		f, ok := fields[k]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown configuration variable %s", k))
			continue
		}
		if err := setField(f, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// setField parses s into a configuration field.
func setField(f reflect.Value, s string) error {
	switch f.Interface().(type) {
	case Secret:
		b, err := decodeSecret(s)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(Secret(b)))
		return nil
	case ByteSize:
		n, err := parseBytes(s)
		if err != nil {
			return err
		}
		f.SetInt(n)
		return nil
	case Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(Duration(d)))
		return nil
	case []string:
		var list []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		f.Set(reflect.ValueOf(list))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		f.SetFloat(n)
	case reflect.Uint8, reflect.Uint32:
		n, err := strconv.ParseUint(s, 10, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetUint(n)
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// Validate checks the configuration once, at start.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if err := checkAddr(c.GRPC.Addr); err != nil {
		bad("grpc.addr: %v", err)
	}
	if c.Admin.Addr != "" {
		if err := checkAddr(c.Admin.Addr); err != nil {
			bad("admin.addr: %v", err)
		}
	}
	if c.HTTP.Addr != "" {
		if err := checkAddr(c.HTTP.Addr); err != nil {
			bad("http.addr: %v", err)
		}
	}
	if c.GRPC.MaxRecvMsgBytes < 64<<10 {
		bad("grpc.max_recv_msg_bytes: %d is below 64 KiB", c.GRPC.MaxRecvMsgBytes)
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		bad("http.max_body_bytes: must be positive")
	}
	if _, err := c.trustedProxies(); err != nil {
		bad("http.trusted_proxies: %v", err)
	}
	if c.HTTP.PathPrefix != "" && !strings.HasPrefix(c.HTTP.PathPrefix, "/") {
		bad("http.path_prefix: %q must start with /", c.HTTP.PathPrefix)
	}
	for name, t := range map[string]TLSConfig{"grpc.tls": c.GRPC.TLS, "http.tls": c.HTTP.TLS} {
		if err := t.check(); err != nil {
			bad("%s: %v", name, err)
		}
	}
	if _, err := bundles.ParseDecisionPath(c.Policy.DecisionPath); err != nil {
		bad("policy.decision_path: %v", err)
	}
	checkBundle := func(name, location string) {
		switch {
		case isURL(location):
			// The URL may carry a secret: errors do not quote it.
			if u, err := url.Parse(location); err != nil || u.Host == "" {
				bad("%s: not a valid http(s) URL", name)
			}
		case location != "":
			if _, err := os.Stat(location); err != nil {
				bad("%s: %v", name, err)
			}
		}
	}
	checkBundle("policy.bundle", c.Policy.Bundle)
	checkBundle("policy.shadow.bundle", c.Policy.Shadow.Bundle)
	if c.Policy.BundleTokenFile != "" {
		if !isURL(c.Policy.Bundle) && !isURL(c.Policy.Shadow.Bundle) {
			bad("policy.bundle_token_file: neither policy.bundle nor policy.shadow.bundle is an http(s) URL")
		} else if _, err := c.Policy.remoteOptions(); err != nil {
			bad("%v", err)
		}
	}
	if q := c.Policy.Shadow.Queue; q < 1 || q > 1<<20 {
		bad("policy.shadow.queue: %d is outside [1, 1048576]", q)
	}
	if r := c.Policy.Shadow.LogPerSecond; r <= 0 || r > 10000 {
		bad("policy.shadow.log_per_second: %g is outside (0, 10000]", r)
	}
	if p := time.Duration(c.Policy.BundlePoll); p < time.Second || p > 24*time.Hour {
		bad("policy.bundle_poll: %s is outside [1s, 24h]", p)
	}
	if c.Policy.Verification.enabled() {
		if _, err := c.Policy.Verification.verification(); err != nil {
			bad("policy.verification: %v", err)
		}
		if c.Policy.Bundle == "" {
			bad("policy.verification: set policy.bundle; the embedded bundle is not verified")
		}
	}
	if t := time.Duration(c.Policy.Timeout); t <= 0 || t > 10*time.Second {
		bad("policy.timeout: %s is outside (0, 10s]", t)
	}
	if c.Policy.DecisionCache < 0 || c.Policy.DecisionCache > 1<<22 {
		bad("policy.decision_cache: %d is outside [0, 4194304]", c.Policy.DecisionCache)
	}
	for _, p := range c.MCP.Paths {
		if !strings.HasPrefix(p, "/") {
			bad("mcp.paths: %q must start with /", p)
		}
	}
	if c.Headers.Prefix != "" && c.Headers.Prefix != strings.ToLower(c.Headers.Prefix) {
		bad("headers.prefix: must be lower case")
	}
	for _, h := range []string{c.Headers.User, c.Headers.Tenant, c.Headers.Roles, c.Headers.AuthMethod, c.Headers.DecisionID} {
		if h != strings.ToLower(h) {
			bad("headers: %q must be lower case", h)
		}
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level: %v", err)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format: %q is neither json nor text", c.Log.Format)
	}
	if c.Runtime.GCPercent < -1 || c.Runtime.GCPercent == 0 || c.Runtime.GCPercent > 10000 {
		bad("runtime.gc_percent: %d is not -1 (off) or in [1, 10000]", c.Runtime.GCPercent)
	}
	if c.Runtime.MemoryLimit < 0 {
		bad("runtime.memory_limit: must not be negative")
	}
	for _, m := range c.DecisionLog.Mask {
		if err := decisionlog.CheckMask(m); err != nil {
			bad("decision_log.mask: %v", err)
		}
	}
	if _, err := c.DecisionLog.uploader(slog.New(slog.DiscardHandler)); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.MCP.Resource.protectedResource(); err != nil {
		bad("mcp.resource: %v", err)
	}
	// The upstream token's header carries the identity prefix, so a copy
	// the client sends is removed.
	if h := strings.ToLower(c.Credentials.UpstreamToken.Header); c.Credentials.UpstreamToken.KeyFile != "" &&
		(c.Headers.Prefix == "" || !strings.HasPrefix(h, c.Headers.Prefix) || strings.ContainsFunc(h, func(r rune) bool {
			return !(r == '-' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
		})) {
		bad("credentials.upstream_token.header: %q must be a header name starting with headers.prefix", h)
	}
	if err := c.Credentials.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Identity.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Limits.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Tracing.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

func (c *Config) trustedProxies() ([]netip.Prefix, error) {
	return parsePrefixes(c.HTTP.TrustedProxies)
}

// parsePrefixes parses CIDR prefixes and single addresses.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix nor an address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (t TLSConfig) check() error {
	if t.CertFile == "" && t.KeyFile == "" {
		if t.ClientCAFile != "" {
			return errors.New("client_ca_file needs cert_file and key_file")
		}
		return nil
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return errors.New("cert_file and key_file go together")
	}
	for _, f := range []string{t.CertFile, t.KeyFile, t.ClientCAFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return err
		}
	}
	return nil
}
