package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
		return tooMany("locked", locked.Until.Sub(h.now()))
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
	case errors.Is(err, identity.ErrRestrictedKey):
		return &apiError{status: http.StatusForbidden, code: "restricted_key", message: err.Error()}
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

// writeJSON writes v as the response body. It encodes v before sending
// anything, so an encoding error can still be answered with a 500.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write(b.Bytes())
	return err
}

// startedWriter records whether a response has begun: after that, an
// error cannot change the status, only end the body.
type startedWriter struct {
	http.ResponseWriter
	started bool
}

func (w *startedWriter) WriteHeader(code int) {
	w.started = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *startedWriter) Write(p []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *startedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// abort ends a response that has already started, after logging why:
// http.ErrAbortHandler makes the server drop the connection without
// finishing the body, so the client cannot take a partial body for a
// whole one.
func (h *Handler) abort(r *http.Request, err error) error {
	h.log.LogAttrs(r.Context(), slog.LevelError, "identity API response aborted",
		slog.String("method", r.Method), slog.String("route", r.Pattern), slog.Any("error", err))
	panic(http.ErrAbortHandler)
}
