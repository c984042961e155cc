package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

// apiError is an error with the status and code the client gets.
type apiError struct {
	status  int
	code    string
	message string
	field   string
	retry   time.Duration // Retry-After, when positive
}

func (e *apiError) Error() string { return e.message }

// Errors of the API itself, beside the service's.
var (
	errNoRoute     = &apiError{status: http.StatusNotFound, code: "not_found", message: "no such endpoint"}
	errMethod      = &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", message: "method not allowed on this endpoint"}
	errCrossOrigin = &apiError{status: http.StatusForbidden, code: "cross_origin", message: "cross-origin request refused"}
	errMediaType   = &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: "the body must be application/json"}
	errTooLarge    = &apiError{status: http.StatusRequestEntityTooLarge, code: "too_large", message: "the request body is too large"}
)

func badRequest(field, message string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_request", message: message, field: field}
}

func badJSON(message string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_json", message: message}
}

func tooMany(code string, retry time.Duration) *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: code, message: "too many attempts; try again later", retry: retry}
}

// errorBody is the body of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// classify maps an error to what the client is told.
func (h *Handler) classify(err error) *apiError {
	var ae *apiError
	var in *identity.InputError
	var locked *identity.LockedError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &in):
		return badRequest(in.Field, in.Error())
	case errors.As(err, &locked):
		return tooMany("locked", time.Until(locked.Until))
	case errors.Is(err, identity.ErrInvalidCredentials):
		return &apiError{status: http.StatusUnauthorized, code: "invalid_credentials", message: err.Error()}
	case errors.Is(err, identity.ErrUnauthenticated):
		return &apiError{status: http.StatusUnauthorized, code: "unauthenticated", message: err.Error()}
	case errors.Is(err, identity.ErrFreshAuthRequired):
		return &apiError{status: http.StatusUnauthorized, code: "fresh_auth_required",
			message: "this action needs a recent password: POST /v1/sessions/reauth"}
	case errors.Is(err, identity.ErrBanned):
		return &apiError{status: http.StatusForbidden, code: "account_suspended", message: err.Error()}
	case errors.Is(err, identity.ErrForbidden):
		return &apiError{status: http.StatusForbidden, code: "forbidden", message: err.Error()}
	case errors.Is(err, identity.ErrLimit):
		return &apiError{status: http.StatusForbidden, code: "limit_reached", message: err.Error()}
	case errors.Is(err, identity.ErrLastOwner):
		return &apiError{status: http.StatusConflict, code: "last_owner", message: err.Error()}
	case errors.Is(err, identity.ErrNotFound):
		return &apiError{status: http.StatusNotFound, code: "not_found", message: err.Error()}
	case errors.Is(err, identity.ErrConflict):
		return &apiError{status: http.StatusConflict, code: "conflict", message: err.Error()}
	}
	return &apiError{status: http.StatusInternalServerError, code: "internal", message: "internal error"}
}

// fail writes err as the API's error response. Errors the client is not
// told about are logged with their cause.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae := h.classify(err)
	hdr := w.Header()
	switch {
	case ae.status == http.StatusUnauthorized && ae.code == "fresh_auth_required":
		hdr.Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_user_authentication", error_description="re-authentication required", max_age=%d`,
			int(h.svc.FreshWindow()/time.Second)))
	case ae.status == http.StatusUnauthorized:
		hdr.Set("WWW-Authenticate", `Bearer realm="mcpauthz"`)
	}
	if ae.retry > 0 {
		hdr.Set("Retry-After", strconv.Itoa(int((ae.retry+time.Second-1)/time.Second)))
	}
	if ae.status >= 500 {
		h.log.LogAttrs(r.Context(), slog.LevelError, "identity API call failed",
			slog.String("method", r.Method), slog.String("route", r.Pattern), slog.Any("error", err))
	}
	writeJSON(w, ae.status, errorBody{Error: errorDetail{Code: ae.code, Message: ae.message, Field: ae.field}})
}

// writeJSON writes v as the response body.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// decode reads the request body into v: JSON, at most MaxBody bytes, one
// value, no fields v does not have. When optional, a request without a
// body leaves v as it is.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	if optional && r.ContentLength == 0 {
		return nil
	}
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errMediaType
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err == nil {
			return badJSON("the body holds more than one JSON value")
		}
		return decodeError(err)
	}
	return nil
}

func decodeError(err error) error {
	var tooLarge *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return errTooLarge
	case errors.As(err, &typeErr):
		return &apiError{status: http.StatusBadRequest, code: "invalid_json", field: typeErr.Field,
			message: fmt.Sprintf("%s: must be %s", typeErr.Field, jsonType(typeErr.Type.Kind().String()))}
	case errors.Is(err, io.EOF):
		return badJSON("the body is empty")
	}
	return badJSON("the body is not valid JSON: " + err.Error())
}

// jsonType names a Go kind as JSON does.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "a number"
}

// abort ends a response that has already started, after logging why:
// http.ErrAbortHandler makes the server drop the connection without
// finishing the body, so the client cannot take a partial body for a
// whole one.
func (h *Handler) abort(r *http.Request, err error) error {
	h.log.LogAttrs(r.Context(), slog.LevelError, "identity API response aborted",
		slog.String("method", r.Method), slog.String("route", r.Pattern), slog.Any("error", err))
	panic(http.ErrAbortHandler)
}
