package mcp

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func mustDecode(t testing.TB, s string) *Value {
	t.Helper()
	v, err := DecodeJSON(s)
	if err != nil {
		t.Fatalf("DecodeJSON(%s): %v", s, err)
	}
	return &v
}

func TestParse(t *testing.T) {
	b64 := func(s string) string { return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?=" }
	tests := []struct {
		name     string
		body     string
		headers  Headers
		opts     Options
		want     Message // first message
		messages int
		code     int // expected error code; 0 means success
	}{
		{
			name: "ok/tools call",
			body: `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`,
			want: Message{Kind: KindRequest, Method: "tools/call", Tool: "echo"}, messages: 1,
		},
		{
			name: "ok/string id",
			body: `{"jsonrpc":"2.0","id":"abc","method":"ping"}`,
			want: Message{Kind: KindRequest, Method: "ping"}, messages: 1,
		},
		{
			name: "ok/notification",
			body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			want: Message{Kind: KindNotification, Method: "notifications/initialized"}, messages: 1,
		},
		{
			name: "ok/response",
			body: `{"jsonrpc":"2.0","id":3,"result":{}}`,
			want: Message{Kind: KindResponse}, messages: 1,
		},
		{
			name: "ok/error response",
			body: `{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"x"}}`,
			want: Message{Kind: KindResponse}, messages: 1,
		},
		{
			name: "ok/resources read",
			body: `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///etc/hosts"}}`,
			want: Message{Kind: KindRequest, Method: "resources/read", URI: "file:///etc/hosts"}, messages: 1,
		},
		{
			name: "ok/resources subscribe",
			body: `{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"db://t"}}`,
			want: Message{Kind: KindRequest, Method: "resources/subscribe", URI: "db://t"}, messages: 1,
		},
		{
			name: "ok/prompts get",
			body: `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summarize"}}`,
			want: Message{Kind: KindRequest, Method: "prompts/get", Prompt: "summarize"}, messages: 1,
		},
		{
			name:    "ok/matching headers",
			body:    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
			headers: Headers{Method: "tools/call", HasMethod: true, Name: "echo", HasName: true, ProtocolVersion: "2026-07-28"},
			want:    Message{Kind: KindRequest, Method: "tools/call", Tool: "echo"}, messages: 1,
		},
		{
			name:    "ok/base64 name header",
			body:    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tööl"}}`,
			headers: Headers{Method: "tools/call", HasMethod: true, Name: b64("tööl"), HasName: true},
			want:    Message{Kind: KindRequest, Method: "tools/call", Tool: "tööl"}, messages: 1,
		},
		{
			name:    "ok/older version without headers",
			body:    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
			headers: Headers{ProtocolVersion: "2025-06-18"},
			want:    Message{Kind: KindRequest, Method: "tools/call", Tool: "echo"}, messages: 1,
		},
		{
			name:    "ok/notification without headers on new version",
			body:    `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			headers: Headers{ProtocolVersion: "2026-07-28"},
			want:    Message{Kind: KindNotification, Method: "notifications/initialized"}, messages: 1,
		},
		{
			name: "ok/batch when allowed",
			body: `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","method":"notifications/x"}]`,
			opts: Options{AllowBatches: true},
			want: Message{Kind: KindRequest, Method: "tools/call", Tool: "a"}, messages: 2,
		},
		{name: "fail/batch not allowed", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, code: CodeInvalidRequest},
		{name: "fail/empty batch", body: `[]`, opts: Options{AllowBatches: true}, code: CodeInvalidRequest},
		{name: "fail/batch with bad element", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"},1]`, opts: Options{AllowBatches: true}, code: CodeInvalidRequest},
		{
			name: "fail/batch with method header", body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, opts: Options{AllowBatches: true},
			headers: Headers{Method: "ping", HasMethod: true}, code: CodeHeaderMismatch,
		},
		{name: "fail/not an object", body: `"tools/call"`, code: CodeInvalidRequest},
		{name: "fail/wrong version", body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, code: CodeInvalidRequest},
		{name: "fail/numeric version", body: `{"jsonrpc":2.0,"id":1,"method":"ping"}`, code: CodeInvalidRequest},
		{name: "fail/missing version", body: `{"id":1,"method":"ping"}`, code: CodeInvalidRequest},
		{name: "fail/null id", body: `{"jsonrpc":"2.0","id":null,"method":"ping"}`, code: CodeInvalidRequest},
		{name: "fail/object id", body: `{"jsonrpc":"2.0","id":{},"method":"ping"}`, code: CodeInvalidRequest},
		{name: "fail/empty method", body: `{"jsonrpc":"2.0","id":1,"method":""}`, code: CodeInvalidRequest},
		{name: "fail/numeric method", body: `{"jsonrpc":"2.0","id":1,"method":5}`, code: CodeInvalidRequest},
		{name: "fail/method and result", body: `{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}`, code: CodeInvalidRequest},
		{name: "fail/result and error", body: `{"jsonrpc":"2.0","id":1,"result":{},"error":{}}`, code: CodeInvalidRequest},
		{name: "fail/response without id", body: `{"jsonrpc":"2.0","result":{}}`, code: CodeInvalidRequest},
		{name: "fail/array params", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":[]}`, code: CodeInvalidParams},
		{name: "fail/tools call without params", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, code: CodeInvalidParams},
		{name: "fail/tools call without name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`, code: CodeInvalidParams},
		{name: "fail/tools call numeric name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}`, code: CodeInvalidParams},
		{name: "fail/resources read without uri", body: `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"x"}}`, code: CodeInvalidParams},
		{name: "fail/prompts get empty name", body: `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":""}}`, code: CodeInvalidParams},
		{
			name: "fail/method header mismatch", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm"}}`,
			headers: Headers{Method: "tools/list", HasMethod: true}, code: CodeHeaderMismatch,
		},
		{
			name: "fail/name header mismatch", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all"}}`,
			headers: Headers{Method: "tools/call", HasMethod: true, Name: "echo", HasName: true}, code: CodeHeaderMismatch,
		},
		{
			name: "fail/name header on method without name", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
			headers: Headers{Method: "tools/list", HasMethod: true, Name: "echo", HasName: true}, code: CodeHeaderMismatch,
		},
		{
			name: "fail/bad base64 name header", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`,
			headers: Headers{Method: "tools/call", HasMethod: true, Name: "=?base64?!!!?=", HasName: true}, code: CodeHeaderMismatch,
		},
		{
			name: "fail/missing method header on new version", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
			headers: Headers{ProtocolVersion: "2026-07-28"}, code: CodeHeaderMismatch,
		},
		{
			name: "fail/missing name header on new version", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`,
			headers: Headers{Method: "tools/call", HasMethod: true, ProtocolVersion: "2026-07-28"}, code: CodeHeaderMismatch,
		},
		{
			name: "fail/method header on response", body: `{"jsonrpc":"2.0","id":1,"result":{}}`,
			headers: Headers{Method: "tools/call", HasMethod: true}, code: CodeHeaderMismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Parse(mustDecode(t, tt.body), tt.headers, tt.opts)
			if tt.code != 0 {
				var me *Error
				if !errors.As(err, &me) {
					t.Fatalf("got %v, want *Error with code %d", err, tt.code)
				}
				if me.Code != tt.code {
					t.Fatalf("got code %d (%s), want %d", me.Code, me.Message, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(req.Messages) != tt.messages {
				t.Fatalf("got %d messages, want %d", len(req.Messages), tt.messages)
			}
			got := req.Messages[0]
			got.ID = nil
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if req.Batch != (tt.body[0] == '[') {
				t.Fatalf("Batch = %v", req.Batch)
			}
			if req.ProtocolVersion != tt.headers.ProtocolVersion {
				t.Fatalf("ProtocolVersion = %q", req.ProtocolVersion)
			}
		})
	}
}

func TestParseKeepsID(t *testing.T) {
	req, err := Parse(mustDecode(t, `{"jsonrpc":"2.0","id":"a\"b","method":"ping"}`), Headers{SessionID: "s1"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if id := req.Messages[0].ID; id == nil || id.Kind != String || id.Text != `a"b` {
		t.Fatalf("ID = %+v", id)
	}
	if req.SessionID != "s1" {
		t.Fatalf("SessionID = %q", req.SessionID)
	}
}

func TestParseErrorCarriesID(t *testing.T) {
	_, err := Parse(mustDecode(t, `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{}}`), Headers{}, Options{})
	var me *Error
	if !errors.As(err, &me) || me.ID == nil || me.ID.Text != "42" {
		t.Fatalf("got %v, want an *Error carrying id 42", err)
	}
}

func TestLooksLikeJSONRPC(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"jsonrpc":"2.0","method":"x"}`, true},
		{`{"jsonrpc":1}`, true},
		{`[{"a":1},{"jsonrpc":"2.0"}]`, true},
		{`{"method":"x"}`, false},
		{`[1,2]`, false},
		{`"jsonrpc"`, false},
	}
	for _, tt := range tests {
		if got := LooksLikeJSONRPC(mustDecode(t, tt.body)); got != tt.want {
			t.Errorf("LooksLikeJSONRPC(%s) = %v, want %v", tt.body, got, tt.want)
		}
	}
}

func TestErrorReply(t *testing.T) {
	single, err := Parse(mustDecode(t, `{"jsonrpc":"2.0","id":"r1","method":"tools/call","params":{"name":"x"}}`), Headers{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := Parse(mustDecode(t, `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`), Headers{}, Options{AllowBatches: true})
	if err != nil {
		t.Fatal(err)
	}
	notification, err := Parse(mustDecode(t, `{"jsonrpc":"2.0","method":"notifications/x"}`), Headers{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  *Request
		want string
	}{
		{"ok/single", single, `{"jsonrpc":"2.0","id":"r1","error":{"code":-32003,"message":"forbidden: \u003cx\u003e"}}`},
		{"ok/batch", batch, `[{"jsonrpc":"2.0","id":1,"error":{"code":-32003,"message":"forbidden: \u003cx\u003e"}},{"jsonrpc":"2.0","id":2,"error":{"code":-32003,"message":"forbidden: \u003cx\u003e"}}]`},
		{"ok/notification", notification, `{"jsonrpc":"2.0","id":null,"error":{"code":-32003,"message":"forbidden: \u003cx\u003e"}}`},
		{"ok/unknown request", nil, `{"jsonrpc":"2.0","id":null,"error":{"code":-32003,"message":"forbidden: \u003cx\u003e"}}`},
		{"ok/data", single, `{"jsonrpc":"2.0","id":"r1","error":{"code":-32003,"message":"forbidden: \u003cx\u003e","data":{"retry_after":2}}}`},
		{"ok/batch with data", batch, `[{"jsonrpc":"2.0","id":1,"error":{"code":-32003,"message":"forbidden: \u003cx\u003e","data":{"retry_after":2}}},{"jsonrpc":"2.0","id":2,"error":{"code":-32003,"message":"forbidden: \u003cx\u003e","data":{"retry_after":2}}}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var data []byte
			if strings.Contains(tt.name, "data") {
				data = []byte(`{"retry_after":2}`)
			}
			got := ErrorReplyData(tt.req, -32003, "forbidden: <x>", data)
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatal("reply is not valid JSON")
			}
		})
	}
}

// FuzzParse feeds arbitrary bodies and header values through DecodeJSON and
// Parse: nothing may panic, an accepted request always names a method or is a
// response, and a mismatching Mcp-Method header is never accepted.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`), "tools/call", "echo", "2026-07-28", true)
	f.Add([]byte(`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`), "", "", "", true)
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`), "", "", "2025-06-18", false)
	f.Fuzz(func(t *testing.T, body []byte, method, name, version string, batches bool) {
		v, err := DecodeJSON(string(body))
		if err != nil {
			return
		}
		h := Headers{Method: method, HasMethod: method != "", Name: name, HasName: name != "", ProtocolVersion: version}
		req, err := Parse(&v, h, Options{AllowBatches: batches})
		if err != nil {
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not an *Error", err)
			}
			_ = ErrorReply(nil, me.Code, me.Message)
			return
		}
		for _, m := range req.Messages {
			if m.Kind != KindResponse && m.Method == "" {
				t.Fatalf("accepted a message without a method: %+v", m)
			}
			if h.HasMethod && m.Method != method {
				t.Fatalf("accepted Mcp-Method %q for body method %q", method, m.Method)
			}
		}
		if !json.Valid(ErrorReply(req, CodeInvalidRequest, "x")) {
			t.Fatal("ErrorReply produced invalid JSON")
		}
	})
}
