package echo_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpauthz/mcpauthz/examples/mcp-echo/echo"
)

// reply is what a test reads from a JSON-RPC response.
type reply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  map[string]any  `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name    string
		method  string // POST unless set
		path    string // /mcp unless set
		body    string
		headers map[string]string
		status  int
		code    int            // JSON-RPC error code, 0 for a result
		id      string         // the id expected back, "" to skip
		result  map[string]any // members the result must have, nil to skip
	}{
		{
			name:   "ok/initialize answers its protocol version, tools capability and serverInfo",
			body:   `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
			status: http.StatusOK, id: "1",
			result: map[string]any{
				"protocolVersion": "2025-06-18",
				"capabilities":    map[string]any{"tools": map[string]any{}},
				"serverInfo":      map[string]any{"name": "mcp-echo", "version": echo.ServerVersion},
			},
		},
		{
			name:   "ok/initialize with an older supported version keeps it",
			body:   `{"jsonrpc":"2.0","id":"a","method":"initialize","params":{"protocolVersion":"2025-03-26"}}`,
			status: http.StatusOK, id: `"a"`,
			result: map[string]any{"protocolVersion": "2025-03-26"},
		},
		{
			name:   "ok/initialize with an unknown version offers the latest",
			body:   `{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2099-01-01"}}`,
			status: http.StatusOK, id: "2",
			result: map[string]any{"protocolVersion": echo.ProtocolVersion},
		},
		{
			name:   "ok/ping",
			body:   `{"jsonrpc":"2.0","id":3,"method":"ping"}`,
			status: http.StatusOK, id: "3", result: map[string]any{},
		},
		{
			name:   "ok/tools/list names echo and whoami",
			body:   `{"jsonrpc":"2.0","id":4,"method":"tools/list"}`,
			status: http.StatusOK, id: "4",
		},
		{
			name:   "ok/tools/call echo returns its arguments",
			body:   `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi","n":2}}}`,
			status: http.StatusOK, id: "5",
			result: map[string]any{
				"structuredContent": map[string]any{"message": "hi", "n": float64(2)},
				"content":           []any{map[string]any{"type": "text", "text": `{"message":"hi","n":2}`}},
				"isError":           false,
			},
		},
		{
			name:   "ok/tools/call echo without arguments returns an empty object",
			body:   `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo"}}`,
			status: http.StatusOK, id: "6",
			result: map[string]any{"structuredContent": map[string]any{}},
		},
		{
			name: "ok/tools/call whoami returns the identity headers",
			body: `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`,
			headers: map[string]string{
				"X-Mcpauthz-User": "key:k-1", "X-Mcpauthz-Tenant": "org-1",
				"X-Mcpauthz-Roles": "owner, member", "X-Mcpauthz-Auth-Method": "api_key",
			},
			status: http.StatusOK, id: "7",
			result: map[string]any{"structuredContent": map[string]any{
				"user": "key:k-1", "tenant": "org-1", "roles": []any{"owner", "member"}, "auth_method": "api_key",
			}},
		},
		{
			name:   "ok/tools/call whoami without headers returns empty values",
			body:   `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"whoami"}}`,
			status: http.StatusOK, id: "8",
			result: map[string]any{"structuredContent": map[string]any{
				"user": "", "tenant": "", "roles": []any{}, "auth_method": "",
			}},
		},
		{
			name:    "ok/a supported MCP-Protocol-Version header",
			body:    `{"jsonrpc":"2.0","id":9,"method":"ping"}`,
			headers: map[string]string{"MCP-Protocol-Version": "2025-06-18"},
			status:  http.StatusOK, id: "9",
		},
		{
			name:    "ok/content type with parameters",
			body:    `{"jsonrpc":"2.0","id":10,"method":"ping"}`,
			headers: map[string]string{"Content-Type": "application/json; charset=utf-8"},
			status:  http.StatusOK, id: "10",
		},
		{name: "ok/notification accepted", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, status: http.StatusAccepted},
		{name: "ok/response from the client accepted", body: `{"jsonrpc":"2.0","id":1,"result":{}}`, status: http.StatusAccepted},
		{name: "ok/healthz", method: http.MethodGet, path: "/healthz", status: http.StatusOK},

		{name: "fail/bad JSON is a parse error", body: `{"jsonrpc":"2.0",`, status: http.StatusBadRequest, code: echo.CodeParseError, id: "null"},
		{name: "fail/trailing data is a parse error", body: `{"jsonrpc":"2.0","id":1,"method":"ping"} {}`, status: http.StatusBadRequest, code: echo.CodeParseError},
		{name: "fail/empty body is a parse error", body: ``, status: http.StatusBadRequest, code: echo.CodeParseError},
		{name: "fail/batch", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, status: http.StatusBadRequest, code: echo.CodeInvalidRequest},
		{name: "fail/not an object", body: `"ping"`, status: http.StatusBadRequest, code: echo.CodeInvalidRequest},
		{name: "fail/wrong jsonrpc version", body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, status: http.StatusBadRequest, code: echo.CodeInvalidRequest},
		{name: "fail/missing jsonrpc", body: `{"id":1,"method":"ping"}`, status: http.StatusBadRequest, code: echo.CodeInvalidRequest},
		{name: "fail/null id", body: `{"jsonrpc":"2.0","id":null,"method":"ping"}`, status: http.StatusBadRequest, code: echo.CodeInvalidRequest},
		{name: "fail/object id", body: `{"jsonrpc":"2.0","id":{},"method":"ping"}`, status: http.StatusBadRequest, code: echo.CodeInvalidRequest},
		{name: "fail/method of the wrong type", body: `{"jsonrpc":"2.0","id":1,"method":7}`, status: http.StatusBadRequest, code: echo.CodeInvalidRequest},
		{name: "fail/no method and no result", body: `{"jsonrpc":"2.0","id":1}`, status: http.StatusBadRequest, code: echo.CodeInvalidRequest},
		{name: "fail/unknown method", body: `{"jsonrpc":"2.0","id":12,"method":"resources/list"}`, status: http.StatusOK, code: echo.CodeMethodNotFound, id: "12"},
		{name: "fail/unknown tool", body: `{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"rm"}}`, status: http.StatusOK, code: echo.CodeInvalidParams, id: "13"},
		{name: "fail/tool without a name", body: `{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{}}`, status: http.StatusOK, code: echo.CodeInvalidParams, id: "14"},
		{name: "fail/arguments not an object", body: `{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"echo","arguments":[1]}}`, status: http.StatusOK, code: echo.CodeInvalidParams, id: "15"},
		{name: "fail/params not an object", body: `{"jsonrpc":"2.0","id":16,"method":"tools/call","params":["echo"]}`, status: http.StatusOK, code: echo.CodeInvalidParams, id: "16"},
		{name: "fail/initialize without protocolVersion", body: `{"jsonrpc":"2.0","id":17,"method":"initialize","params":{}}`, status: http.StatusOK, code: echo.CodeInvalidParams, id: "17"},
		{
			name: "fail/unsupported MCP-Protocol-Version header", body: `{"jsonrpc":"2.0","id":18,"method":"ping"}`,
			headers: map[string]string{"MCP-Protocol-Version": "1999-01-01"},
			status:  http.StatusBadRequest, code: echo.CodeInvalidRequest,
		},
		{
			name: "fail/not JSON content", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
			headers: map[string]string{"Content-Type": "text/plain"},
			status:  http.StatusUnsupportedMediaType,
		},
		{
			name: "fail/a browser's request, even from the server's own origin", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
			headers: map[string]string{"Origin": "http://example.com"},
			status:  http.StatusForbidden,
		},
		{
			name: "fail/a browser's request from another origin", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
			headers: map[string]string{"Origin": "http://evil.example"},
			status:  http.StatusForbidden,
		},
		{name: "fail/body too large", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("a", echo.MaxBodyBytes) + `"}}`, status: http.StatusRequestEntityTooLarge},
		{name: "fail/GET /mcp has no event stream", method: http.MethodGet, status: http.StatusMethodNotAllowed},
		{name: "fail/DELETE /mcp has no session", method: http.MethodDelete, status: http.StatusMethodNotAllowed},
		{name: "fail/unknown path", path: "/other", body: `{}`, status: http.StatusNotFound},
	}
	h := echo.Handler()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, path := tc.method, tc.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/mcp"
			}
			req := httptest.NewRequest(method, "http://example.com"+path, strings.NewReader(tc.body))
			if method == http.MethodPost {
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusAccepted && rec.Body.Len() != 0 {
				t.Errorf("202 with a body: %s", rec.Body)
			}
			if tc.code == 0 && tc.id == "" {
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var r reply
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("response is not JSON: %v: %s", err, rec.Body)
			}
			if r.JSONRPC != "2.0" {
				t.Errorf("jsonrpc %q", r.JSONRPC)
			}
			if tc.id != "" && string(r.ID) != tc.id {
				t.Errorf("id %s, want %s", r.ID, tc.id)
			}
			if tc.code != 0 {
				if r.Error == nil || r.Error.Code != tc.code || r.Result != nil {
					t.Fatalf("want error %d and no result, got %s", tc.code, rec.Body)
				}
				if string(r.ID) == "" {
					t.Errorf("error response without an id member: %s", rec.Body)
				}
				return
			}
			if r.Error != nil || r.Result == nil {
				t.Fatalf("want a result, got %s", rec.Body)
			}
			for k, want := range tc.result {
				if got := r.Result[k]; !reflect.DeepEqual(got, want) {
					t.Errorf("result.%s = %#v, want %#v", k, got, want)
				}
			}
		})
	}
}

// TestToolsList checks the listed tools against what a client needs: a
// name, a description and an object input schema.
func TestToolsList(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	echo.Handler().ServeHTTP(rec, req)
	var r struct {
		Result struct {
			Tools []struct {
				Name        string         `json:"name"`
				Description string         `json:"description"`
				InputSchema map[string]any `json:"inputSchema"`
			} `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range r.Result.Tools {
		names = append(names, tl.Name)
		if tl.Description == "" || tl.InputSchema["type"] != "object" {
			t.Errorf("tool %q: description %q, input schema %v", tl.Name, tl.Description, tl.InputSchema)
		}
	}
	if want := []string{"echo", "whoami"}; !reflect.DeepEqual(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}
}
