// Package echo is a small MCP server over the Streamable HTTP transport
// (MCP 2025-06-18), the upstream of the docker-compose stack. It serves
// JSON-RPC 2.0 on POST /mcp — initialize, ping, tools/list and tools/call
// with two tools: echo, which returns its arguments, and whoami, which
// returns the identity headers mcpauthz set on the request — and GET
// /healthz. It keeps no session state and offers no server-sent event
// stream, so every request gets a single JSON response.
package echo

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
)

// ProtocolVersion is the MCP revision this server implements, the one
// initialize answers when the client asks for a version it does not know.
const ProtocolVersion = "2025-06-18"

// supportedVersions are the revisions a client may ask for (initialize)
// or name in the MCP-Protocol-Version header.
var supportedVersions = []string{ProtocolVersion, "2025-03-26"}

// ServerName and ServerVersion are the serverInfo of initialize.
const (
	ServerName    = "mcp-echo"
	ServerVersion = "0.1.0"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// JSON-RPC 2.0 error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
)

// Handler returns the server: POST /mcp and GET /healthz.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp", serveMCP)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	return mux
}

// message is one JSON-RPC message from the client: a request (method and
// id), a notification (method, no id) or a response (id, result or error).
type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// response is a JSON-RPC response: a result or an error.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return e.Message }

func serveMCP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		// No server-sent event stream (GET) and no sessions to end
		// (DELETE): the transport lets a server refuse both with 405.
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if _, ok := r.Header["Origin"]; ok {
		// Streamable HTTP servers must validate Origin against DNS
		// rebinding, where a page's origin and the Host it sends agree, so
		// only an allowlist would do. This server has no browser clients:
		// it refuses every request a browser sends.
		http.Error(w, "requests from browsers are not accepted", http.StatusForbidden)
		return
	}
	if v := r.Header.Get("MCP-Protocol-Version"); v != "" && !slices.Contains(supportedVersions, v) {
		writeError(w, http.StatusBadRequest, nil, CodeInvalidRequest, "unsupported MCP-Protocol-Version")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		http.Error(w, "content type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the request body failed", http.StatusBadRequest)
		return
	}
	msg, rerr := decode(body)
	if rerr != nil {
		writeError(w, http.StatusBadRequest, nil, rerr.Code, rerr.Message)
		return
	}
	if msg.Method == "" || msg.ID == nil {
		// A notification or a response to the server: accepted, no body.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	result, rerr := call(msg.Method, msg.Params, r.Header)
	if rerr != nil {
		writeError(w, http.StatusOK, msg.ID, rerr.Code, rerr.Message)
		return
	}
	writeJSON(w, http.StatusOK, response{JSONRPC: "2.0", ID: msg.ID, Result: result})
}

// decode parses one JSON-RPC message strictly: a single object (batches
// were removed from MCP in 2025-06-18), nothing after it, jsonrpc "2.0",
// and an id that is a string or a number.
func decode(body []byte) (*message, *rpcError) {
	trimmed := bytes.TrimSpace(body)
	if !json.Valid(trimmed) {
		return nil, &rpcError{CodeParseError, "parse error: the body is not valid JSON"}
	}
	if trimmed[0] != '{' {
		return nil, &rpcError{CodeInvalidRequest, "invalid request: expected one JSON-RPC message object"}
	}
	var msg message
	if err := json.Unmarshal(trimmed, &msg); err != nil {
		return nil, &rpcError{CodeInvalidRequest, "invalid request: a member has the wrong type"}
	}
	if msg.JSONRPC != "2.0" {
		return nil, &rpcError{CodeInvalidRequest, `invalid request: jsonrpc must be "2.0"`}
	}
	if msg.ID != nil {
		switch msg.ID[0] {
		case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		default:
			return nil, &rpcError{CodeInvalidRequest, "invalid request: id must be a string or a number"}
		}
	}
	if msg.Method == "" && (msg.ID == nil || msg.Result == nil && msg.Error == nil) {
		return nil, &rpcError{CodeInvalidRequest, "invalid request: no method"}
	}
	return &msg, nil
}

// call runs one request and returns its result.
func call(method string, params json.RawMessage, h http.Header) (any, *rpcError) {
	switch method {
	case "initialize":
		return initialize(params)
	case "ping":
		return struct{}{}, nil
	case "tools/list":
		return map[string]any{"tools": toolList}, nil
	case "tools/call":
		return callTool(params, h)
	}
	return nil, &rpcError{CodeMethodNotFound, "method not found: " + method}
}

// initialize answers the client's protocol version if this server speaks
// it, and its own latest otherwise; the client then decides.
func initialize(params json.RawMessage) (any, *rpcError) {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := unmarshalParams(params, &p); err != nil {
		return nil, err
	}
	if p.ProtocolVersion == "" {
		return nil, &rpcError{CodeInvalidParams, "invalid params: protocolVersion is required"}
	}
	version := ProtocolVersion
	if slices.Contains(supportedVersions, p.ProtocolVersion) {
		version = p.ProtocolVersion
	}
	return map[string]any{
		"protocolVersion": version,
		"capabilities":    map[string]any{"tools": map[string]any{}},
		"serverInfo":      map[string]string{"name": ServerName, "version": ServerVersion},
		"instructions":    "Call echo to get its arguments back, whoami to see the identity the authorization sidecar forwarded.",
	}, nil
}

// unmarshalParams decodes params, absent or an object, into v.
func unmarshalParams(params json.RawMessage, v any) *rpcError {
	if params == nil || string(params) == "null" {
		return nil
	}
	if params[0] != '{' {
		return &rpcError{CodeInvalidParams, "invalid params: params must be an object"}
	}
	if err := json.Unmarshal(params, v); err != nil {
		return &rpcError{CodeInvalidParams, "invalid params: a member has the wrong type"}
	}
	return nil
}

func writeError(w http.ResponseWriter, status int, id json.RawMessage, code int, message string) {
	if id == nil {
		id = json.RawMessage("null")
	}
	writeJSON(w, status, response{JSONRPC: "2.0", ID: id, Error: &rpcError{code, message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
