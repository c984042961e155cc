package mcp

import (
	"errors"
	"fmt"
	"strconv"
)

// Error codes of a Bearer challenge: RFC 6750, section 3.1, and RFC 9470,
// section 3.
const (
	ChallengeInvalidRequest                 = "invalid_request"
	ChallengeInvalidToken                   = "invalid_token"
	ChallengeInsufficientScope              = "insufficient_scope"
	ChallengeInsufficientUserAuthentication = "insufficient_user_authentication"
)

// ErrInvalidChallenge is returned for a Challenge that cannot be sent: a
// value holds a character its parameter does not allow.
var ErrInvalidChallenge = errors.New("mcp: invalid WWW-Authenticate challenge")

// Challenge is a Bearer challenge (RFC 6750, section 3) as an MCP server
// sends it in WWW-Authenticate: the URL of its protected resource metadata
// (RFC 9728, section 5.1), an error code, a scope the request needs and,
// for step-up, the greatest authentication age it accepts (RFC 9470). Empty
// fields (nil MaxAge) are left out; the zero Challenge is a bare "Bearer".
type Challenge struct {
	ResourceMetadata string
	Error            string
	ErrorDescription string
	Scope            string
	MaxAge           *int // seconds; 0 asks for an authentication just now
}

// Header renders the challenge as a WWW-Authenticate value. Every parameter
// is a quoted-string (RFC 9110, section 11.2). Values are never escaped:
// RFC 6750 keeps '"' and '\' out of error, error_description and scope, and
// a URI has neither, so a value holding one, a control character or
// anything outside ASCII is refused with ErrInvalidChallenge instead. The
// result is therefore a single line that no value can break out of.
func (c *Challenge) Header() (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	buf := make([]byte, 0, 64+len(c.ResourceMetadata)+len(c.ErrorDescription)+len(c.Scope))
	buf = append(buf, "Bearer"...)
	n := 0
	param := func(name, value string) {
		if n == 0 {
			buf = append(buf, ' ')
		} else {
			buf = append(buf, ", "...)
		}
		n++
		buf = append(buf, name...)
		buf = append(buf, `="`...)
		buf = append(buf, value...)
		buf = append(buf, '"')
	}
	if c.Error != "" {
		param("error", c.Error)
	}
	if c.ErrorDescription != "" {
		param("error_description", c.ErrorDescription)
	}
	if c.Scope != "" {
		param("scope", c.Scope)
	}
	if c.MaxAge != nil {
		param("max_age", strconv.Itoa(*c.MaxAge))
	}
	if c.ResourceMetadata != "" {
		param("resource_metadata", c.ResourceMetadata)
	}
	return string(buf), nil
}

// Validate reports whether every value may be sent: error and
// error_description within RFC 6750's %x20-21 / %x23-5B / %x5D-7E, scope a
// list of scope tokens separated by single spaces, max_age non-negative,
// and resource_metadata printable ASCII without spaces, '"' or '\'. The
// error wraps ErrInvalidChallenge.
func (c *Challenge) Validate() error {
	switch {
	case !isNQSChars(c.Error):
		return fmt.Errorf("%w: error has a character RFC 6750 does not allow", ErrInvalidChallenge)
	case !isNQSChars(c.ErrorDescription):
		return fmt.Errorf("%w: error_description has a character RFC 6750 does not allow", ErrInvalidChallenge)
	case c.Scope != "" && !ValidScope(c.Scope):
		return fmt.Errorf("%w: scope is not a space-separated list of scope tokens", ErrInvalidChallenge)
	case c.MaxAge != nil && *c.MaxAge < 0:
		return fmt.Errorf("%w: max_age is negative", ErrInvalidChallenge)
	case c.ResourceMetadata != "" && !isScopeToken(c.ResourceMetadata):
		return fmt.Errorf("%w: resource_metadata is not a URI", ErrInvalidChallenge)
	}
	return nil
}

// ValidScope reports whether s is a scope (RFC 6749, section 3.3): one or
// more scope tokens separated by single spaces.
func ValidScope(s string) bool {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != ' ' {
			continue
		}
		if !isScopeToken(s[start:i]) {
			return false
		}
		start = i + 1
	}
	return true
}

// isScopeToken reports whether s is a scope-token: 1*( %x21 / %x23-5B /
// %x5D-7E ), printable ASCII without space, '"' or '\'.
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// isNQSChars reports whether s holds only %x20-21 / %x23-5B / %x5D-7E:
// printable ASCII and space, without '"' or '\'.
func isNQSChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
