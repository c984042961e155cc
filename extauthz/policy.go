package extauthz

import (
	"context"
	"strings"
	"time"

	"github.com/mcpauthz/mcpauthz/mcp"
)

// PolicyInput is everything the policy decides on.
type PolicyInput struct {
	Request *Request
	// Body is the request body decoded as strict JSON, or nil when the body
	// is not JSON, is empty or was truncated.
	Body *mcp.Value
	// MCP is the parsed MCP request, or nil for other requests; Message is
	// the message being decided (one of MCP.Messages).
	MCP        *mcp.Request
	Message    *mcp.Message
	Identity   *Identity
	DecisionID string
	// Record asks the evaluator for the documents the decision log records.
	Record bool
}

// PolicyResult is the policy's decision with what the decision log records.
type PolicyResult struct {
	Decision Decision
	Path     string   // the decision path evaluated
	Revision string   // the policy bundle's revision
	Input    Document // the input document the policy saw
	Result   Document // the policy's raw result
	// EvalTime is how long evaluation took (set by the Authorizer).
	EvalTime time.Duration
}

// PolicyEvaluator evaluates the active policy. It returns an error wrapping
// ErrPolicyUndefined when the policy produced no decision and ErrPolicyResult
// when the decision has the wrong shape; the Authorizer denies on any error.
type PolicyEvaluator interface {
	Evaluate(ctx context.Context, in *PolicyInput) (PolicyResult, error)
}

// Document is a JSON value the decision log serializes after the answer has
// been sent; implementations must not change after they are returned.
type Document interface {
	// AppendJSON appends the JSON encoding of the value to dst, leaving out
	// what mask selects, and returns the JSON pointers of the parts it left out.
	AppendJSON(dst []byte, mask *Mask) ([]byte, []string)
}

// Mask selects parts of a JSON document by path. The zero Mask (and nil)
// selects nothing.
type Mask struct {
	leaf     bool
	children map[string]*Mask
}

// NewMask builds a mask from JSON pointers (RFC 6901) such as
// "/attributes/request/http/headers/authorization".
func NewMask(pointers ...string) *Mask {
	root := &Mask{}
	for _, p := range pointers {
		node := root
		for seg := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
			seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
			if node.children == nil {
				node.children = map[string]*Mask{}
			}
			next, ok := node.children[seg]
			if !ok {
				next = &Mask{}
				node.children[seg] = next
			}
			node = next
		}
		node.leaf = true
	}
	return root
}

// Child returns the mask for the member key below m, or nil if nothing
// below it is masked.
func (m *Mask) Child(key string) *Mask {
	if m == nil {
		return nil
	}
	return m.children[key]
}

// Selected reports whether m selects the whole value it stands for.
func (m *Mask) Selected() bool {
	return m != nil && m.leaf
}

// DecisionEvent is one decision as the decision log records it.
type DecisionEvent struct {
	DecisionID string
	Time       time.Time
	Duration   time.Duration
	Path       string
	Revision   string
	Input      Document // nil when the policy was not evaluated
	Result     Document // nil when the policy was not evaluated
	Allowed    bool
	Status     int
	Reason     string
	Err        error
	// Method is how the caller was identified (MethodNone, MethodJWT, ...),
	// "" when no credential verified.
	Method string
	// PolicyTime is the time spent evaluating the policy (every message
	// of a batch).
	PolicyTime time.Duration
}

// DecisionObserver is told of every decision, for metrics: unlike a
// DecisionLogger it never makes the Authorizer build the input and result
// documents. ObserveDecision must not block.
type DecisionObserver interface {
	ObserveDecision(*DecisionEvent)
}

// DecisionLogger records decisions. LogDecision must not block.
type DecisionLogger interface {
	LogDecision(DecisionEvent)
}

// NopDecisionLogger discards decisions.
type NopDecisionLogger struct{}

// LogDecision does nothing.
func (NopDecisionLogger) LogDecision(DecisionEvent) {}
