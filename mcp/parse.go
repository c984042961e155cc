package mcp

import (
	"encoding/base64"
	"strings"
)

// JSON-RPC 2.0 error codes, and the MCP transport's header mismatch code.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	CodeHeaderMismatch = -32020
)

// HeaderVersion is the first protocol version whose HTTP transport mirrors the
// method and name into the Mcp-Method and Mcp-Name headers. Requests that
// declare it (or a later version) must carry the headers.
const HeaderVersion = "2026-07-28"

// Error is a request that is not acceptable MCP. Code is the JSON-RPC error
// code for the reply; ID is the id of the offending request when it is known.
type Error struct {
	Code    int
	Message string
	ID      *Value
}

func (e *Error) Error() string { return "mcp: " + e.Message }

// Headers holds the MCP transport headers of an HTTP request.
type Headers struct {
	Method          string // Mcp-Method
	Name            string // Mcp-Name
	ProtocolVersion string // MCP-Protocol-Version
	SessionID       string // Mcp-Session-Id
	HasMethod       bool
	HasName         bool
}

// MessageKind tells JSON-RPC requests, notifications and responses apart.
type MessageKind uint8

// The kinds of JSON-RPC message.
const (
	KindRequest MessageKind = iota + 1
	KindNotification
	KindResponse
)

func (k MessageKind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	}
	return "invalid"
}

// Message is one JSON-RPC message of an MCP request.
type Message struct {
	Kind   MessageKind
	Method string
	ID     *Value // nil for notifications
	Tool   string // params.name of tools/call
	Prompt string // params.name of prompts/get
	URI    string // params.uri of resources/read, resources/subscribe, resources/unsubscribe
}

// Target returns what the message acts on: the tool, prompt or resource URI.
func (m *Message) Target() string {
	switch {
	case m.Tool != "":
		return m.Tool
	case m.Prompt != "":
		return m.Prompt
	}
	return m.URI
}

// Request is an MCP request as the HTTP transport carries it: one JSON-RPC
// message, or several when batches are allowed.
type Request struct {
	Messages        []Message
	Batch           bool
	ProtocolVersion string
	SessionID       string
}

// Options tune Parse.
type Options struct {
	// AllowBatches accepts JSON-RPC batches (arrays), which MCP removed in
	// protocol version 2025-06-18.
	AllowBatches bool
}

// LooksLikeJSONRPC reports whether a decoded body is shaped like JSON-RPC:
// an object with a "jsonrpc" member, or an array holding one.
func LooksLikeJSONRPC(body *Value) bool {
	switch body.Kind {
	case Object:
		_, ok := body.Get("jsonrpc")
		return ok
	case Array:
		for i := range body.Items {
			if _, ok := body.Items[i].Get("jsonrpc"); ok {
				return true
			}
		}
	}
	return false
}

// Parse validates a decoded JSON-RPC body against MCP and the transport
// headers that mirror it, and extracts what authorization needs.
func Parse(body *Value, h Headers, opts Options) (*Request, error) {
	req := &Request{ProtocolVersion: h.ProtocolVersion, SessionID: h.SessionID}
	switch body.Kind {
	case Object:
		msg, err := parseMessage(body)
		if err != nil {
			return nil, err
		}
		if err := checkHeaders(&msg, h); err != nil {
			return nil, err
		}
		req.Messages = []Message{msg}
	case Array:
		if !opts.AllowBatches {
			return nil, &Error{Code: CodeInvalidRequest, Message: "JSON-RPC batches are not supported"}
		}
		if len(body.Items) == 0 {
			return nil, &Error{Code: CodeInvalidRequest, Message: "empty JSON-RPC batch"}
		}
		if h.HasMethod || h.HasName {
			return nil, &Error{Code: CodeHeaderMismatch, Message: "Mcp-Method and Mcp-Name headers cannot describe a batch"}
		}
		req.Batch = true
		req.Messages = make([]Message, 0, len(body.Items))
		for i := range body.Items {
			msg, err := parseMessage(&body.Items[i])
			if err != nil {
				return nil, err
			}
			req.Messages = append(req.Messages, msg)
		}
	default:
		return nil, &Error{Code: CodeInvalidRequest, Message: "a JSON-RPC message must be an object"}
	}
	return req, nil
}

func parseMessage(v *Value) (Message, error) {
	if v.Kind != Object {
		return Message{}, &Error{Code: CodeInvalidRequest, Message: "a JSON-RPC message must be an object"}
	}
	var msg Message
	id, hasID := v.Get("id")
	if hasID {
		if id.Kind != String && id.Kind != Number {
			return Message{}, &Error{Code: CodeInvalidRequest, Message: "id must be a string or a number"}
		}
		msg.ID = id
	}
	if version, ok := v.Get("jsonrpc"); !ok || version.Kind != String || version.Text != "2.0" {
		return Message{}, &Error{Code: CodeInvalidRequest, Message: `jsonrpc must be "2.0"`, ID: msg.ID}
	}
	method, hasMethod := v.Get("method")
	_, hasResult := v.Get("result")
	_, hasError := v.Get("error")
	switch {
	case hasMethod:
		if hasResult || hasError {
			return Message{}, &Error{Code: CodeInvalidRequest, Message: "a request cannot carry result or error", ID: msg.ID}
		}
		if method.Kind != String || method.Text == "" {
			return Message{}, &Error{Code: CodeInvalidRequest, Message: "method must be a non-empty string", ID: msg.ID}
		}
		msg.Method = method.Text
		msg.Kind = KindNotification
		if hasID {
			msg.Kind = KindRequest
		}
		if err := parseParams(v, &msg); err != nil {
			return Message{}, err
		}
	case hasResult != hasError && hasID:
		msg.Kind = KindResponse
	default:
		return Message{}, &Error{Code: CodeInvalidRequest, Message: "not a JSON-RPC request, notification or response", ID: msg.ID}
	}
	return msg, nil
}

// parseParams extracts the name or URI the method acts on. MCP params are
// always objects; the methods authorization keys on must name their target.
func parseParams(v *Value, msg *Message) error {
	params, ok := v.Get("params")
	if ok && params.Kind != Object {
		return &Error{Code: CodeInvalidParams, Message: "params must be an object", ID: msg.ID}
	}
	var field string
	var dst *string
	switch msg.Method {
	case "tools/call":
		field, dst = "name", &msg.Tool
	case "prompts/get":
		field, dst = "name", &msg.Prompt
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		field, dst = "uri", &msg.URI
	default:
		return nil
	}
	if !ok {
		return &Error{Code: CodeInvalidParams, Message: msg.Method + " requires params." + field, ID: msg.ID}
	}
	target, ok := params.Get(field)
	if !ok || target.Kind != String || target.Text == "" {
		return &Error{Code: CodeInvalidParams, Message: msg.Method + " requires params." + field + " to be a non-empty string", ID: msg.ID}
	}
	*dst = target.Text
	return nil
}

// checkHeaders enforces that Mcp-Method and Mcp-Name agree with the body, so
// an intermediary that routed or authorized on the headers and a server that
// acts on the body see the same request.
func checkHeaders(msg *Message, h Headers) error {
	if msg.Kind == KindResponse {
		if h.HasMethod || h.HasName {
			return &Error{Code: CodeHeaderMismatch, Message: "a JSON-RPC response cannot carry Mcp-Method or Mcp-Name", ID: msg.ID}
		}
		return nil
	}
	required := msg.Kind == KindRequest && h.ProtocolVersion >= HeaderVersion
	switch {
	case h.HasMethod && h.Method != msg.Method:
		return &Error{Code: CodeHeaderMismatch, Message: "Mcp-Method header does not match the body's method", ID: msg.ID}
	case !h.HasMethod && required:
		return &Error{Code: CodeHeaderMismatch, Message: "missing Mcp-Method header", ID: msg.ID}
	}
	name := msg.Target()
	if !h.HasName {
		if name != "" && required {
			return &Error{Code: CodeHeaderMismatch, Message: "missing Mcp-Name header", ID: msg.ID}
		}
		return nil
	}
	got, ok := decodeHeaderValue(h.Name)
	if !ok {
		return &Error{Code: CodeHeaderMismatch, Message: "Mcp-Name header has an invalid base64 value", ID: msg.ID}
	}
	if name == "" || got != name {
		return &Error{Code: CodeHeaderMismatch, Message: "Mcp-Name header does not match the body", ID: msg.ID}
	}
	return nil
}

// decodeHeaderValue undoes the transport's encoding of values that are not
// plain ASCII: "=?base64?" + standard base64 of the UTF-8 bytes + "?=".
// A value without that exact wrapper is literal.
func decodeHeaderValue(s string) (string, bool) {
	const prefix, suffix = "=?base64?", "?="
	if len(s) < len(prefix)+len(suffix) || !strings.HasPrefix(s, prefix) || !strings.HasSuffix(s, suffix) {
		return s, true
	}
	payload := s[len(prefix) : len(s)-len(suffix)]
	enc := base64.StdEncoding
	if len(payload)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	b, err := enc.Strict().DecodeString(payload)
	if err != nil {
		return "", false
	}
	return string(b), true
}
