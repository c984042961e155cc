package extauthz

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpauthz/mcpauthz/mcp"
	"github.com/mcpauthz/mcpauthz/quotas"
)

// DefaultTimeout bounds one decision when no timeout is configured: well
// inside Envoy's default 200 ms ext_authz timeout.
const DefaultTimeout = 100 * time.Millisecond

// IdentityHeaders names the headers that carry the verified identity to the
// upstream. Any header starting with Prefix that the client sent is removed
// before the request goes upstream, so upstreams can trust these headers.
// An anonymous request carries none of them.
type IdentityHeaders struct {
	Prefix     string
	User       string
	Tenant     string
	Roles      string
	AuthMethod string
	// DecisionID names the header carrying the decision id on denials,
	// and upstream on allows when UpstreamDecisionID is set (Envoy gets it
	// in the dynamic metadata either way).
	DecisionID         string
	UpstreamDecisionID bool
}

// DefaultIdentityHeaders are the identity header names unless configured.
var DefaultIdentityHeaders = IdentityHeaders{
	Prefix:     "x-mcpauthz-",
	User:       "x-mcpauthz-user",
	Tenant:     "x-mcpauthz-tenant",
	Roles:      "x-mcpauthz-roles",
	AuthMethod: "x-mcpauthz-auth-method",
	DecisionID: "x-mcpauthz-decision-id",
}

// Authorizer makes the decision for each request: it parses the MCP body,
// establishes the caller's identity, evaluates the policy and fails closed
// on every error. It knows no transport.
type Authorizer struct {
	policy      PolicyEvaluator
	identity    IdentityVerifier
	decisions   DecisionLogger
	observer    DecisionObserver // nil: none
	limiter     quotas.Limiter
	leaser      quotas.Leaser
	ids         func() string
	now         func() time.Time
	log         *slog.Logger
	timeout     time.Duration
	mcpOptions  mcp.Options
	mcpPaths    []string
	headers     IdentityHeaders
	resource    *ProtectedResource // nil: no metadata served, challenges without resource_metadata
	record      bool               // the decision log wants input and result documents
	signer      IdentitySigner     // nil: no upstream identity token
	tokenHeader string
}

// Option configures an Authorizer.
type Option func(*Authorizer)

// WithIdentityVerifier sets how callers are identified (default: everyone
// is anonymous).
func WithIdentityVerifier(v IdentityVerifier) Option { return func(a *Authorizer) { a.identity = v } }

// WithObserver sets who is told of every decision (metrics).
func WithObserver(o DecisionObserver) Option { return func(a *Authorizer) { a.observer = o } }

// WithDecisionLogger sets where decisions are recorded (default: nowhere).
func WithDecisionLogger(l DecisionLogger) Option { return func(a *Authorizer) { a.decisions = l } }

// WithTimeout bounds the time one decision may take (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(a *Authorizer) { a.timeout = d } }

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(a *Authorizer) { a.now = now } }

// WithLogger sets the operational logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(a *Authorizer) { a.log = l } }

// DefaultMCPPaths are the MCP endpoints unless configured.
var DefaultMCPPaths = []string{"/mcp"}

// WithMCP sets MCP parsing options and the paths that are MCP endpoints
// (each with everything below it): a POST there must be a valid MCP request.
// Elsewhere a POST is MCP when its JSON body is shaped like JSON-RPC or it
// carries Mcp-Method.
func WithMCP(opts mcp.Options, paths ...string) Option {
	return func(a *Authorizer) { a.mcpOptions, a.mcpPaths = opts, paths }
}

// IdentitySigner signs the verified identity of an allowed request into a
// token for the upstream.
type IdentitySigner interface {
	SignIdentity(id *Identity, decisionID string, now time.Time) (string, error)
}

// WithIdentityToken sends upstream, in header, a token of the verified
// identity signed by signer, on every allow of an authenticated request.
// The header should carry the identity prefix, so client-sent copies are
// removed.
func WithIdentityToken(signer IdentitySigner, header string) Option {
	return func(a *Authorizer) { a.signer, a.tokenHeader = signer, strings.ToLower(header) }
}

// WithIdentityHeaders sets the identity header names.
func WithIdentityHeaders(h IdentityHeaders) Option { return func(a *Authorizer) { a.headers = h } }

// NewAuthorizer returns an Authorizer that decides with policy and labels
// decisions with ids from ids.
func NewAuthorizer(policy PolicyEvaluator, ids func() string, opts ...Option) *Authorizer {
	a := &Authorizer{
		policy:    policy,
		identity:  AnonymousVerifier{},
		decisions: NopDecisionLogger{},
		limiter:   NoLimiter{},
		leaser:    NoLimiter{},
		ids:       ids,
		now:       time.Now,
		log:       slog.New(slog.DiscardHandler),
		timeout:   DefaultTimeout,
		headers:   DefaultIdentityHeaders,
		mcpPaths:  DefaultMCPPaths,
	}
	for _, o := range opts {
		o(a)
	}
	_, nop := a.decisions.(NopDecisionLogger)
	a.record = !nop
	return a
}

// Check decides one request. The returned Decision is always the answer to
// send: on any internal fault it is a denial, and the error says what went
// wrong for logs and metrics (it is never a reason to allow).
func (a *Authorizer) Check(ctx context.Context, req *Request) (Decision, error) {
	start := a.now()
	id := a.ids()
	// The budget runs on real time; the injectable clock stamps decisions.
	b := newBudget(ctx, a.timeout, time.Now)
	defer b.release()
	ctx = b

	in := PolicyInput{Request: req, DecisionID: id, Record: a.record}
	var res PolicyResult
	d, err := a.decide(ctx, &in, &res)
	var leased []quotas.Lease
	if err == nil && d.Allowed && (!d.Take.Empty() || len(d.Leases) > 0) {
		d, leased, err = a.take(ctx, &in, d)
	}
	switch {
	case err == nil && ctx.Err() != nil:
		// The answer came too late to be trusted as complete: fail closed.
		d, err = Deny(http.StatusServiceUnavailable, ReasonDeadline), fmt.Errorf("decision: %w", ctx.Err())
	case d.Allowed && req.FixedQuery && (len(d.QueryParametersToSet) > 0 || len(d.QueryParametersToRemove) > 0):
		// Allowing would send upstream what the policy meant to change.
		d, err = Deny(http.StatusInternalServerError, ReasonInternal), errQueryRewrite
	case !d.Allowed:
		if cerr := a.challenge(&d); cerr != nil {
			d, err = Deny(http.StatusServiceUnavailable, ReasonPolicyError), cerr
		}
	}
	d.DecisionID = id
	if d.Allowed && a.signer != nil && in.Identity != nil && !in.Identity.IsAnonymous() {
		tok, serr := a.signer.SignIdentity(in.Identity, id, a.now())
		if serr != nil {
			// The upstream was promised a token: no allow without one.
			d, err = Deny(http.StatusInternalServerError, ReasonInternal), fmt.Errorf("upstream identity token: %w", serr)
			d.DecisionID = id
		} else {
			d.Headers = append(slices.Clip(d.Headers), Header{a.tokenHeader, tok})
		}
	}
	if !d.Allowed && len(leased) > 0 {
		// Denied after its slots were taken (past the budget, no identity
		// token): no proxy will report this request finished.
		a.release(ctx, id, leased)
	}
	a.finish(&in, &d)

	if err != nil {
		// A caller that gave up (Envoy's own timeout) is not a fault here.
		level := slog.LevelWarn
		if errors.Is(err, context.Canceled) {
			level = slog.LevelDebug
		}
		a.log.LogAttrs(ctx, level, "request denied by a fault",
			slog.String("decision_id", id), slog.String("reason", d.Reason), slog.Any("error", err))
	}
	ev := DecisionEvent{
		DecisionID: id,
		Time:       start,
		Duration:   a.now().Sub(start),
		Path:       res.Path,
		Revision:   res.Revision,
		Input:      res.Input,
		Result:     res.Result,
		Allowed:    d.Allowed,
		Status:     d.Status,
		Reason:     d.Reason,
		Err:        err,
		PolicyTime: res.EvalTime,
	}
	if in.Identity != nil {
		ev.Method = cmp.Or(in.Identity.Method, MethodNone)
	}
	if a.observer != nil {
		a.observer.ObserveDecision(&ev)
	}
	a.decisions.LogDecision(ev)
	return d, err
}

var errQueryRewrite = errors.New("the decision rewrites the query, which this transport cannot do")

func (a *Authorizer) decide(ctx context.Context, in *PolicyInput, res *PolicyResult) (Decision, error) {
	req := in.Request
	if err := validRequest(req); err != nil {
		return Deny(http.StatusBadRequest, ReasonBadRequest), nil
	}
	// The metadata tells clients how to get a credential: it needs none.
	if d, ok := a.resource.Serve(req.Method, req.Path); ok {
		return d, nil
	}
	if err := a.parseBody(in); err != nil {
		return a.rejectBody(in, err)
	}

	id, err := a.identity.Verify(ctx, req)
	switch {
	case errors.Is(err, ErrInvalidCredential):
		// Not a fault: the reason (never a token) is for debugging.
		a.log.LogAttrs(ctx, slog.LevelDebug, "credential refused", slog.String("decision_id", in.DecisionID), slog.Any("reason", err))
		d := Deny(http.StatusUnauthorized, ReasonUnauthorized)
		d.Challenge = &invalidCredential
		return d, nil
	case err != nil:
		return Deny(http.StatusServiceUnavailable, ReasonBackendFailure), fmt.Errorf("identity: %w", err)
	}
	in.Identity = &id

	if in.MCP == nil {
		return a.evaluate(ctx, in, res)
	}
	// Every message of a batch is decided on its own; one denial denies
	// the batch, and an allowed batch carries its first message's headers
	// and takes every message's limits.
	var first Decision
	for i := range in.MCP.Messages {
		in.Message = &in.MCP.Messages[i]
		d, err := a.evaluate(ctx, in, res)
		if err != nil || !d.Allowed {
			return d, err
		}
		if i == 0 {
			first = d
			continue
		}
		first.Take = mergeTake(first.Take, d.Take)
		first.RateLimitHeaders = first.RateLimitHeaders || d.RateLimitHeaders
		first.Leases = appendLeases(first.Leases, d.Leases)
	}
	if n := len(first.Take.Limits) + len(first.Take.Quotas); n > maxBatchTake {
		d := Deny(http.StatusRequestEntityTooLarge, ReasonBadRequest)
		d.Body = string(mcp.ErrorReply(in.MCP, mcp.CodeInvalidRequest, "the batch asks for too many rate limits and quotas at once; send fewer messages"))
		d.Headers = append(d.Headers, Header{"content-type", "application/json"})
		return d, nil
	}
	return first, nil
}

func (a *Authorizer) evaluate(ctx context.Context, in *PolicyInput, res *PolicyResult) (Decision, error) {
	start := time.Now()
	r, err := a.policy.Evaluate(ctx, in)
	r.EvalTime = res.EvalTime + time.Since(start)
	*res = r
	switch {
	case err == nil:
		return r.Decision, nil
	case errors.Is(err, ErrPolicyUndefined):
		return Deny(http.StatusForbidden, ReasonPolicyUndef), err
	case ctx.Err() != nil:
		// OPA reports a cancelled evaluation with its own error; wrap the
		// context's too, so callers can tell a deadline by errors.Is.
		return Deny(http.StatusServiceUnavailable, ReasonDeadline), fmt.Errorf("policy: %w: %w", ctx.Err(), err)
	default:
		return Deny(http.StatusServiceUnavailable, ReasonPolicyError), fmt.Errorf("policy: %w", err)
	}
}

// validRequest rejects requests no policy should be asked about: no method,
// or a path that is not an origin-form path with valid percent-encoding.
func validRequest(req *Request) error {
	if req.Method == "" {
		return fmt.Errorf("%w: no method", ErrBadRequest)
	}
	path, _, _ := strings.Cut(req.Path, "?")
	if path == "" || path[0] != '/' {
		if req.Method == http.MethodOptions && path == "*" {
			return nil
		}
		return fmt.Errorf("%w: path %q is not an absolute path", ErrBadRequest, path)
	}
	for i := 0; i < len(path); i++ {
		if path[i] != '%' {
			continue
		}
		if i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2]) {
			return fmt.Errorf("%w: invalid percent-encoding in the path", ErrBadRequest)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// bodyError is a request body that cannot be authorized.
type bodyError struct {
	status int
	reason string
	err    error
}

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// parseBody decodes a JSON body strictly and, for MCP requests, parses the
// JSON-RPC message(s).
func (a *Authorizer) parseBody(in *PolicyInput) error {
	req := in.Request
	truncated := req.Truncated()
	if req.IsJSON() && len(req.Body) > 0 && !truncated {
		v, err := mcp.DecodeJSON(req.Body)
		if err != nil {
			return &bodyError{http.StatusBadRequest, ReasonBadRequest, err}
		}
		in.Body = &v
	}
	if !a.isMCP(in, truncated) {
		return nil
	}
	switch {
	case truncated:
		return &bodyError{http.StatusRequestEntityTooLarge, ReasonBodyTruncated,
			errors.New("the MCP request body was not received whole; it cannot be authorized")}
	case in.Body == nil:
		return &bodyError{http.StatusBadRequest, ReasonMCPInvalid,
			&mcp.Error{Code: mcp.CodeParseError, Message: "MCP requests must be JSON (Content-Type: application/json)"}}
	}
	m, err := mcp.Parse(in.Body, mcp.Headers{
		Method:          req.Headers["mcp-method"],
		Name:            req.Headers["mcp-name"],
		ProtocolVersion: req.Headers["mcp-protocol-version"],
		SessionID:       req.Headers["mcp-session-id"],
		HasMethod:       has(req.Headers, "mcp-method"),
		HasName:         has(req.Headers, "mcp-name"),
	}, a.mcpOptions)
	if err != nil {
		return &bodyError{http.StatusBadRequest, ReasonMCPInvalid, err}
	}
	in.MCP = m
	return nil
}

func has(h map[string]string, name string) bool {
	_, ok := h[name]
	return ok
}

// isMCP reports whether a request is an MCP JSON-RPC request: a POST whose
// JSON body is shaped like JSON-RPC, that carries Mcp-Method, or that goes
// to a configured MCP endpoint. Of a truncated JSON body only a prefix
// arrived; if "jsonrpc" shows in it, it is taken for MCP so it is refused
// rather than decided as a plain POST. (A body that hides the member past
// the cut is not recognized: MCP endpoints should be configured, and
// Envoy's allow_partial_message left off.)
func (a *Authorizer) isMCP(in *PolicyInput, truncated bool) bool {
	req := in.Request
	if req.Method != http.MethodPost {
		return false
	}
	if in.Body != nil && mcp.LooksLikeJSONRPC(in.Body) {
		return true
	}
	if truncated && req.IsJSON() && strings.Contains(req.Body, `"jsonrpc"`) {
		return true
	}
	if has(req.Headers, "mcp-method") {
		return true
	}
	path, _, _ := strings.Cut(req.Path, "?")
	for _, p := range a.mcpPaths {
		if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}

func (a *Authorizer) rejectBody(in *PolicyInput, err error) (Decision, error) {
	var be *bodyError
	if !errors.As(err, &be) {
		return Deny(http.StatusBadRequest, ReasonBadRequest), nil
	}
	d := Deny(be.status, be.reason)
	var me *mcp.Error
	if errors.As(err, &me) {
		d.Body = string(mcp.ErrorReplyID(me.ID, me.Code, me.Message))
		d.Headers = append(d.Headers, Header{"content-type", "application/json"})
	} else if in.Body != nil && mcp.LooksLikeJSONRPC(in.Body) || be.reason == ReasonBodyTruncated {
		d.Body = string(mcp.ErrorReplyID(nil, mcp.CodeParseError, err.Error()))
		d.Headers = append(d.Headers, Header{"content-type", "application/json"})
	}
	// A malformed request is the client's fault, not a fault of ours: the
	// denial is the answer, not an error.
	return d, nil
}

// finish adds what every answer carries: on allow, the verified identity
// headers and the removal of client-sent copies; on denial of an MCP
// request, a JSON-RPC error body.
func (a *Authorizer) finish(in *PolicyInput, d *Decision) {
	if !d.Allowed {
		if d.Status == 0 {
			d.Status = http.StatusForbidden
		}
		if in.MCP != nil && d.Body == "" {
			d.Body = string(mcp.ErrorReply(in.MCP, jsonRPCCode(d.Status), StatusText(d.Status)))
			d.Headers = append(d.Headers, Header{"content-type", "application/json"})
		}
		if a.headers.DecisionID != "" {
			d.Headers = append(d.Headers, Header{a.headers.DecisionID, d.DecisionID})
		}
		return
	}
	d.Status = 0
	h := a.headers
	// Identity headers replace whatever the client sent (the adapters set
	// them with overwrite semantics). Other client-sent headers with the
	// prefix are removed; proxies apply removals after additions, so names
	// this decision sets must not be in the removal list.
	if id := in.Identity; id != nil && !id.IsAnonymous() {
		d.Headers = appendNonEmpty(d.Headers, h.AuthMethod, id.Method)
		d.Headers = appendNonEmpty(d.Headers, h.User, id.Subject)
		d.Headers = appendNonEmpty(d.Headers, h.Tenant, id.Tenant)
		if len(id.Roles) > 0 {
			d.Headers = appendNonEmpty(d.Headers, h.Roles, strings.Join(id.Roles, ","))
		}
		if id.SetCookie != "" {
			d.ResponseHeadersToAdd = append(slices.Clip(d.ResponseHeadersToAdd), Header{"set-cookie", id.SetCookie})
		}
	}
	if h.UpstreamDecisionID {
		d.Headers = appendNonEmpty(d.Headers, h.DecisionID, d.DecisionID)
	}
	if h.Prefix != "" {
		for name := range in.Request.Headers {
			if strings.HasPrefix(name, h.Prefix) && !HasHeader(d.Headers, name) {
				d.RequestHeadersToRemove = append(d.RequestHeadersToRemove, name)
			}
		}
	}
	if d.DynamicMetadata == nil {
		d.DynamicMetadata = map[string]any{"decision_id": d.DecisionID}
	} else if _, ok := d.DynamicMetadata["decision_id"]; !ok {
		// The policy's map may be shared; never write into it.
		m := maps.Clone(d.DynamicMetadata)
		m["decision_id"] = d.DecisionID
		d.DynamicMetadata = m
	}
}

func appendNonEmpty(hs []Header, name, value string) []Header {
	if name == "" || value == "" {
		return hs
	}
	return append(hs, Header{name, value})
}

// jsonRPCCode is the JSON-RPC error code a denied MCP request gets for an
// HTTP status. The codes are in JSON-RPC's implementation-defined range.
func jsonRPCCode(status int) int {
	switch status {
	case http.StatusBadRequest:
		return mcp.CodeInvalidRequest
	case http.StatusUnauthorized:
		return -32001
	case http.StatusForbidden:
		return -32003
	case http.StatusTooManyRequests:
		return -32029
	}
	return mcp.CodeInternalError
}
