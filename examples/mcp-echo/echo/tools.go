package echo

import (
	"encoding/json"
	"net/http"
	"strings"
)

// The identity headers mcpauthz sets on an allowed request (its default
// headers.* names). It removes any copies the client sent, so behind the
// sidecar they are the verified identity.
const (
	HeaderUser       = "x-mcpauthz-user"
	HeaderTenant     = "x-mcpauthz-tenant"
	HeaderRoles      = "x-mcpauthz-roles"
	HeaderAuthMethod = "x-mcpauthz-auth-method"
)

// tool is an entry of tools/list.
type tool struct {
	Name        string          `json:"name"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"inputSchema"`
	Annotations map[string]bool `json:"annotations"`
}

var toolList = []tool{
	{
		Name:        "echo",
		Title:       "Echo",
		Description: "Returns its arguments unchanged.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"message":{"type":"string"}},"additionalProperties":true}`),
		Annotations: map[string]bool{"readOnlyHint": true, "openWorldHint": false},
	},
	{
		Name:        "whoami",
		Title:       "Who am I",
		Description: "Returns the identity headers (x-mcpauthz-*) the server received with the call.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{},"additionalProperties":false}`),
		Annotations: map[string]bool{"readOnlyHint": true, "openWorldHint": false},
	},
}

// toolResult is a tools/call result: the structured content, and the same
// as JSON text for clients that read only text content.
type toolResult struct {
	Content           []textContent `json:"content"`
	StructuredContent any           `json:"structuredContent"`
	IsError           bool          `json:"isError"`
}

type textContent struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func callTool(params json.RawMessage, h http.Header) (any, *rpcError) {
	var p struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := unmarshalParams(params, &p); err != nil {
		return nil, err
	}
	args := map[string]any{}
	if p.Arguments != nil && string(p.Arguments) != "null" {
		if p.Arguments[0] != '{' {
			return nil, &rpcError{CodeInvalidParams, "invalid params: arguments must be an object"}
		}
		if err := json.Unmarshal(p.Arguments, &args); err != nil {
			return nil, &rpcError{CodeInvalidParams, "invalid params: arguments cannot be decoded"}
		}
	}
	switch p.Name {
	case "echo":
		return result(args), nil
	case "whoami":
		return result(whoami(h)), nil
	case "":
		return nil, &rpcError{CodeInvalidParams, "invalid params: name is required"}
	}
	return nil, &rpcError{CodeInvalidParams, "unknown tool: " + p.Name}
}

// whoami is the identity the sidecar forwarded; roles are a
// comma-separated list.
func whoami(h http.Header) map[string]any {
	roles := []string{}
	for r := range strings.SplitSeq(h.Get(HeaderRoles), ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	return map[string]any{
		"user":        h.Get(HeaderUser),
		"tenant":      h.Get(HeaderTenant),
		"roles":       roles,
		"auth_method": h.Get(HeaderAuthMethod),
	}
}

func result(structured map[string]any) toolResult {
	text, _ := json.Marshal(structured) // a map of decoded JSON and strings always marshals
	return toolResult{
		Content:           []textContent{{Type: "text", Text: string(text)}},
		StructuredContent: structured,
	}
}
