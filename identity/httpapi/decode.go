package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"
)

// maxDepth bounds the nesting of a request body.
const maxDepth = 16

// decode reads the request body into v, a pointer to a struct: JSON, at
// most MaxBody bytes, one object whose keys are exactly v's JSON field
// names (encoding/json alone would take "PASSWORD" for "password"), each
// at most once (it would keep the last), times in RFC 3339. When optional,
// an empty body, chunked or not, leaves v as it is. Messages name the
// field and never echo a value.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errTooLarge
	}
	if err != nil {
		return badJSON("the body could not be read")
	}
	if optional && len(body) == 0 {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errMediaType
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badJSON("the body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := checkValue(dec, reflect.TypeOf(v).Elem(), "", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badJSON("the body holds more than one JSON value")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return &apiError{status: http.StatusBadRequest, code: "invalid_json", field: typeErr.Field,
				message: fmt.Sprintf("%s: must be %s", typeErr.Field, jsonType(typeErr.Type))}
		}
		return badJSON("the body does not decode")
	}
	return nil
}

var timeType = reflect.TypeFor[time.Time]()

// checkValue reads one JSON value from dec and checks it against t, the
// Go type it will decode into; path names it in errors.
func checkValue(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	if depth > maxDepth {
		return badJSON("the body is nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return badJSON("the body is not valid JSON")
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if depth == 0 && tok != json.Delim('{') {
		return badJSON("the body must be a JSON object")
	}
	switch tok {
	case json.Delim('{'):
		return checkObject(dec, t, path, depth)
	case json.Delim('['):
		elem := t
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := checkValue(dec, elem, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
		return closing(dec)
	}
	if t == timeType {
		s, ok := tok.(string)
		if _, err := time.Parse(time.RFC3339, s); !ok || err != nil {
			return &apiError{status: http.StatusBadRequest, code: "invalid_json", field: path,
				message: path + ": must be an RFC 3339 time"}
		}
	}
	return nil
}

// checkObject checks the members of an object whose '{' was read: keys
// unique and, for a struct, exactly its JSON field names.
func checkObject(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	fields := jsonFields(t)
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return badJSON("the body is not valid JSON")
		}
		key, _ := tok.(string)
		name := key
		if path != "" {
			name = path + "." + key
		}
		if seen[key] {
			return &apiError{status: http.StatusBadRequest, code: "invalid_json", field: name, message: name + ": appears twice"}
		}
		seen[key] = true
		var ft reflect.Type
		switch {
		case fields != nil:
			var ok bool
			if ft, ok = fields[key]; !ok {
				return &apiError{status: http.StatusBadRequest, code: "invalid_json", field: name, message: name + ": unknown field"}
			}
		case t.Kind() == reflect.Map:
			ft = t.Elem()
		default:
			ft = t // the type check of json.Unmarshal reports it
		}
		if err := checkValue(dec, ft, name, depth+1); err != nil {
			return err
		}
	}
	return closing(dec)
}

// closing reads the ']' or '}' that ends an array or object.
func closing(dec *json.Decoder) error {
	if _, err := dec.Token(); err != nil {
		return badJSON("the body is not valid JSON")
	}
	return nil
}

// jsonFields maps the JSON names of a struct's fields to their types; nil
// for another kind.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if t.Kind() != reflect.Struct || t == timeType {
		return nil
	}
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// jsonType names a Go type as JSON does.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	}
	return "a number"
}
