package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func decodeBody(t testing.TB, body io.Reader, contentType string, optional bool, v any) error {
	t.Helper()
	h := &Handler{cfg: Config{MaxBody: DefaultMaxBody}}
	r := httptest.NewRequest("POST", "/", body)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return h.decode(httptest.NewRecorder(), r, v, optional)
}

// onlyReader hides the type of its reader, so a request built on it has
// no known length and is sent chunked.
type onlyReader struct{ io.Reader }

func TestDecodeOptionalBody(t *testing.T) {
	for _, c := range []struct {
		name  string
		body  io.Reader
		ctype string
		ok    bool
	}{
		{"ok/no body", nil, "", true},
		{"ok/an empty chunked body", onlyReader{strings.NewReader("")}, "", true},
		{"ok/a body", strings.NewReader(`{"org_id":"o"}`), "application/json", true},
		{"fail/a chunked body without its type", onlyReader{strings.NewReader(`{}`)}, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var v tokenRequest
			err := decodeBody(t, c.body, c.ctype, true, &v)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// FuzzDecode: no body makes decode panic, and what it accepts is one JSON
// object whose keys are the request's fields, each once, exactly spelt.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@example.com","password":"x","consents":[{"kind":"terms","version":"1","granted":true}]}`,
		`{"email":"a","EMAIL":"b"}`, `{"consents":[{"kind":"a","kind":"b"}]}`, `null`, `[]`, `{} {}`,
		`{"display_name":"\u00e9"}`, `{"consents":[[[[]]]]}`, `{"email":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v signUpRequest
		err := decodeBody(t, bytes.NewReader(body), "application/json", false, &v)
		var ae *apiError
		if err != nil && !errors.As(err, &ae) {
			t.Fatalf("an error the client is not told about: %v", err)
		}
		if err != nil {
			return
		}
		var generic map[string]json.RawMessage
		if json.Unmarshal(body, &generic) != nil {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
		for k := range generic {
			if _, ok := jsonFields(reflect.TypeFor[signUpRequest]())[k]; !ok {
				t.Fatalf("accepted the unknown key %q", k)
			}
		}
	})
}
