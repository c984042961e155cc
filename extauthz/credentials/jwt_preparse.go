package credentials

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// jwtHead is what the pre-parse reads from an unverified token.
type jwtHead struct {
	alg, kid, iss string
}

// jwtPreparse checks a token's shape before any key is looked up: at most
// maxSize bytes; three segments, each canonical unpadded base64url;
// header and payload JSON objects in valid UTF-8 without a repeated
// member name at any depth; an asymmetric alg; none of the refused header
// parameters; an iss. It returns alg, kid and iss.
func jwtPreparse(tok string, maxSize int) (jwtHead, error) {
	var h jwtHead
	if len(tok) > maxSize {
		return h, fmt.Errorf("%w: longer than %d bytes", errJWTMalformed, maxSize)
	}
	hs, rest, ok1 := strings.Cut(tok, ".")
	ps, ss, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(ss, '.') >= 0 {
		return h, fmt.Errorf("%w: not three segments", errJWTMalformed)
	}
	if !jwtCanonical(hs) || !jwtCanonical(ps) || !jwtCanonical(ss) {
		return h, fmt.Errorf("%w: a segment is not canonical base64url", errJWTMalformed)
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(hs)
	if err != nil {
		return h, fmt.Errorf("%w: header: %w", errJWTMalformed, err)
	}
	err = jwtStrictJSON(hb, func(name string, v json.Token, scalar bool) error {
		switch name {
		case "alg", "kid":
			s, ok := v.(string)
			if !ok || !scalar {
				return fmt.Errorf("%w: header %s is not a string", errJWTMalformed, name)
			}
			if name == "alg" {
				h.alg = s
			} else {
				h.kid = s
			}
		default:
			if slices.Contains(jwtRefusedHeaders, name) {
				return fmt.Errorf("%w: %s", errJWTHeader, name)
			}
		}
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("header: %w", err)
	}
	if !jwtAsymmetric[h.alg] {
		return h, fmt.Errorf("%w: %s", errJWTAlg, jwtQuote(h.alg))
	}
	pb, err := base64.RawURLEncoding.Strict().DecodeString(ps)
	if err != nil {
		return h, fmt.Errorf("%w: payload: %w", errJWTMalformed, err)
	}
	err = jwtStrictJSON(pb, func(name string, v json.Token, scalar bool) error {
		if name == "iss" {
			s, ok := v.(string)
			if !ok || !scalar {
				return fmt.Errorf("%w: iss is not a string", errJWTMalformed)
			}
			h.iss = s
		}
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("payload: %w", err)
	}
	if h.iss == "" {
		return h, fmt.Errorf("%w: no iss", errJWTIssuer)
	}
	return h, nil
}

// jwtB64 maps a byte to its base64url value, or 0xff.
var jwtB64 = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// jwtCanonical reports whether s is the one unpadded base64url encoding
// of some non-empty bytes: only alphabet characters, a length that is not
// 1 mod 4, and zero bits after the last whole byte — so re-encoding what
// it decodes to gives s back.
func jwtCanonical(s string) bool {
	if len(s) == 0 || len(s)%4 == 1 {
		return false
	}
	for i := range len(s) {
		if jwtB64[s[i]] == 0xff {
			return false
		}
	}
	switch last := jwtB64[s[len(s)-1]]; len(s) % 4 {
	case 2:
		return last&0x0f == 0
	case 3:
		return last&0x03 == 0
	}
	return true
}

// jwtStrictJSON checks that b is one JSON object in valid UTF-8 with no
// member name repeated in any object (names compared after unescaping),
// and calls member for each top-level member: v is its value when scalar.
func jwtStrictJSON(b []byte, member func(name string, v json.Token, scalar bool) error) error {
	if !utf8.Valid(b) {
		return fmt.Errorf("%w: not UTF-8", errJWTMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("%w: not a JSON object", errJWTMalformed)
	}
	if err := jwtJSONObject(dec, member); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", errJWTMalformed)
	}
	return nil
}

// jwtJSONObject reads an object's members and its closing brace.
func jwtJSONObject(dec *json.Decoder, member func(string, json.Token, bool) error) error {
	var names []string
	var seen map[string]bool // past a few members
	for dec.More() {
		t, err := dec.Token()
		name, ok := t.(string)
		if err != nil || !ok {
			return fmt.Errorf("%w: bad JSON object", errJWTMalformed)
		}
		dup := false
		if seen != nil {
			dup = seen[name]
			seen[name] = true
		} else if dup = slices.Contains(names, name); len(names) == 16 {
			seen = make(map[string]bool, 32)
			for _, n := range names {
				seen[n] = true
			}
			seen[name] = true
		} else {
			names = append(names, name)
		}
		if dup {
			return fmt.Errorf("%w: duplicate member %s", errJWTMalformed, jwtQuote(name))
		}
		v, err := jwtJSONValue(dec)
		if err != nil {
			return err
		}
		if member != nil {
			_, composite := v.(json.Delim)
			if err := member(name, v, !composite); err != nil {
				return err
			}
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return fmt.Errorf("%w: bad JSON object", errJWTMalformed)
	}
	return nil
}

// jwtJSONValue reads one value; an object or array is read whole and
// returned as its opening delimiter. Numbers must fit a float64.
func jwtJSONValue(dec *json.Decoder) (json.Token, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: bad JSON value", errJWTMalformed)
	}
	switch t {
	case json.Delim('{'):
		return t, jwtJSONObject(dec, nil)
	case json.Delim('['):
		for dec.More() {
			if _, err := jwtJSONValue(dec); err != nil {
				return nil, err
			}
		}
		if t, err := dec.Token(); err != nil || t != json.Delim(']') {
			return nil, fmt.Errorf("%w: bad JSON array", errJWTMalformed)
		}
	case json.Delim('}'), json.Delim(']'):
		return nil, fmt.Errorf("%w: bad JSON value", errJWTMalformed)
	}
	if n, ok := t.(json.Number); ok {
		// The claims are decoded as float64: a number out of its range
		// would fail only after the key lookup.
		if _, err := n.Float64(); err != nil {
			return nil, fmt.Errorf("%w: number out of range", errJWTMalformed)
		}
	}
	return t, nil
}
