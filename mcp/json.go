package mcp

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects DecodeJSON accepts.
const MaxDepth = 64

// Kind is the JSON type of a Value.
type Kind uint8

// The JSON types.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Bool:
		return "boolean"
	case Number:
		return "number"
	case String:
		return "string"
	case Array:
		return "array"
	case Object:
		return "object"
	}
	return "invalid"
}

// Value is one node of a strictly decoded JSON document.
//
// Text holds a string's unescaped contents, a number's literal as written, or
// "true"/"false". Items holds an array's elements, Members an object's members
// in document order.
type Value struct {
	Kind    Kind
	Text    string
	Items   []Value
	Members []Member
}

// Member is one key/value pair of a JSON object.
type Member struct {
	Key   string
	Value Value
}

// Get returns the member named key of an object and whether it exists.
func (v *Value) Get(key string) (*Value, bool) {
	if v.Kind != Object {
		return nil, false
	}
	for i := range v.Members {
		if v.Members[i].Key == key {
			return &v.Members[i].Value, true
		}
	}
	return nil, false
}

// SyntaxError reports why a body is not strict JSON.
type SyntaxError struct {
	Offset int // byte offset of the problem
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// ErrInvalidUTF8 is returned for bodies that are not valid UTF-8.
var ErrInvalidUTF8 = errors.New("invalid JSON: body is not valid UTF-8")

// DecodeJSON decodes exactly one JSON value from data, strictly: the input
// must be valid UTF-8 with no byte-order mark, object keys must be unique
// after unescaping, escapes must not encode unpaired UTF-16 surrogates,
// nesting is limited to MaxDepth and nothing but whitespace may follow the
// value. Strings in the result share memory with data.
func DecodeJSON(data string) (Value, error) {
	if !utf8.ValidString(data) {
		return Value{}, ErrInvalidUTF8
	}
	d := decoder{src: data}
	d.skipSpace()
	v, err := d.value(0)
	if err != nil {
		return Value{}, err
	}
	d.skipSpace()
	if d.pos != len(d.src) {
		return Value{}, d.fail("unexpected data after the top-level value")
	}
	return v, nil
}

type decoder struct {
	src string
	pos int
}

func (d *decoder) fail(msg string) error {
	return &SyntaxError{Offset: d.pos, Msg: msg}
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.src) {
		switch d.src[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (Value, error) {
	if d.pos >= len(d.src) {
		return Value{}, d.fail("unexpected end of input")
	}
	switch c := d.src[d.pos]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		s, err := d.string()
		return Value{Kind: String, Text: s}, err
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return d.literal("true", Value{Kind: Bool, Text: "true"})
	case c == 'f':
		return d.literal("false", Value{Kind: Bool, Text: "false"})
	case c == 'n':
		return d.literal("null", Value{Kind: Null})
	default:
		return Value{}, d.fail(fmt.Sprintf("unexpected character %q", c))
	}
}

func (d *decoder) literal(word string, v Value) (Value, error) {
	if len(d.src)-d.pos < len(word) || d.src[d.pos:d.pos+len(word)] != word {
		return Value{}, d.fail("invalid literal")
	}
	d.pos += len(word)
	return v, nil
}

func (d *decoder) object(depth int) (Value, error) {
	if depth > MaxDepth {
		return Value{}, d.fail("nesting too deep")
	}
	d.pos++ // '{'
	v := Value{Kind: Object}
	d.skipSpace()
	if d.pos < len(d.src) && d.src[d.pos] == '}' {
		d.pos++
		return v, nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.src) || d.src[d.pos] != '"' {
			return Value{}, d.fail("expected an object key")
		}
		keyAt := d.pos
		key, err := d.string()
		if err != nil {
			return Value{}, err
		}
		if hasKey(v.Members, key) {
			d.pos = keyAt
			return Value{}, d.fail(fmt.Sprintf("duplicate object key %q", key))
		}
		d.skipSpace()
		if d.pos >= len(d.src) || d.src[d.pos] != ':' {
			return Value{}, d.fail("expected ':' after an object key")
		}
		d.pos++
		d.skipSpace()
		member, err := d.value(depth)
		if err != nil {
			return Value{}, err
		}
		if v.Members == nil {
			v.Members = make([]Member, 0, 4) // a JSON-RPC message has four
		}
		v.Members = append(v.Members, Member{Key: key, Value: member})
		d.skipSpace()
		if d.pos >= len(d.src) {
			return Value{}, d.fail("unexpected end of input in an object")
		}
		switch d.src[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return v, nil
		default:
			return Value{}, d.fail("expected ',' or '}' in an object")
		}
	}
}

// hasKey reports whether key is already among members. Objects in request
// bodies are small; past a few dozen members a map would pay for itself, but
// the quadratic bound is kept in check by the proxy's body size limit.
func hasKey(members []Member, key string) bool {
	for i := range members {
		if members[i].Key == key {
			return true
		}
	}
	return false
}

func (d *decoder) array(depth int) (Value, error) {
	if depth > MaxDepth {
		return Value{}, d.fail("nesting too deep")
	}
	d.pos++ // '['
	v := Value{Kind: Array}
	d.skipSpace()
	if d.pos < len(d.src) && d.src[d.pos] == ']' {
		d.pos++
		return v, nil
	}
	for {
		d.skipSpace()
		item, err := d.value(depth)
		if err != nil {
			return Value{}, err
		}
		v.Items = append(v.Items, item)
		d.skipSpace()
		if d.pos >= len(d.src) {
			return Value{}, d.fail("unexpected end of input in an array")
		}
		switch d.src[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return v, nil
		default:
			return Value{}, d.fail("expected ',' or ']' in an array")
		}
	}
}

func (d *decoder) number() (Value, error) {
	start := d.pos
	if d.src[d.pos] == '-' {
		d.pos++
	}
	switch {
	case d.pos < len(d.src) && d.src[d.pos] == '0':
		d.pos++
	case d.pos < len(d.src) && d.src[d.pos] >= '1' && d.src[d.pos] <= '9':
		d.digits()
	default:
		return Value{}, d.fail("invalid number")
	}
	if d.pos < len(d.src) && d.src[d.pos] == '.' {
		d.pos++
		if d.digits() == 0 {
			return Value{}, d.fail("invalid number: no digits after '.'")
		}
	}
	if d.pos < len(d.src) && (d.src[d.pos] == 'e' || d.src[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.src) && (d.src[d.pos] == '+' || d.src[d.pos] == '-') {
			d.pos++
		}
		if d.digits() == 0 {
			return Value{}, d.fail("invalid number: no digits in the exponent")
		}
	}
	return Value{Kind: Number, Text: d.src[start:d.pos]}, nil
}

func (d *decoder) digits() int {
	n := 0
	for d.pos < len(d.src) && d.src[d.pos] >= '0' && d.src[d.pos] <= '9' {
		d.pos++
		n++
	}
	return n
}

// string decodes a quoted string starting at d.pos. Strings without escapes
// are returned as slices of the source.
func (d *decoder) string() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	for d.pos < len(d.src) {
		c := d.src[d.pos]
		switch {
		case c == '"':
			s := d.src[start:d.pos]
			d.pos++
			return s, nil
		case c == '\\':
			return d.escapedString(start)
		case c < 0x20:
			return "", d.fail("control character in a string")
		}
		d.pos++
	}
	return "", d.fail("unterminated string")
}

func (d *decoder) escapedString(start int) (string, error) {
	buf := make([]byte, 0, d.pos-start+16)
	buf = append(buf, d.src[start:d.pos]...)
	for d.pos < len(d.src) {
		c := d.src[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(buf), nil
		case c < 0x20:
			return "", d.fail("control character in a string")
		case c != '\\':
			buf = append(buf, c)
			d.pos++
			continue
		}
		d.pos++ // backslash
		if d.pos >= len(d.src) {
			break
		}
		esc := d.src[d.pos]
		d.pos++
		switch esc {
		case '"', '\\', '/':
			buf = append(buf, esc)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := d.unicodeEscape()
			if err != nil {
				return "", err
			}
			buf = utf8.AppendRune(buf, r)
		default:
			d.pos--
			return "", d.fail(fmt.Sprintf("invalid escape '\\%c'", esc))
		}
	}
	return "", d.fail("unterminated string")
}

// unicodeEscape reads the hex digits of a \u escape (d.pos is just past the
// 'u') and, for a high surrogate, the low surrogate escape that must follow.
func (d *decoder) unicodeEscape() (rune, error) {
	r, ok := d.hex4()
	if !ok {
		return 0, d.fail("invalid \\u escape")
	}
	if !utf16.IsSurrogate(r) {
		return r, nil
	}
	if r >= 0xDC00 {
		return 0, d.fail("unpaired low surrogate in \\u escape")
	}
	if len(d.src)-d.pos < 6 || d.src[d.pos] != '\\' || d.src[d.pos+1] != 'u' {
		return 0, d.fail("unpaired high surrogate in \\u escape")
	}
	d.pos += 2
	lo, ok := d.hex4()
	if !ok || lo < 0xDC00 || lo > 0xDFFF {
		return 0, d.fail("unpaired high surrogate in \\u escape")
	}
	return utf16.DecodeRune(r, lo), nil
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.src)-d.pos < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(d.src[d.pos:d.pos+4], 16, 32)
	if err != nil {
		return 0, false
	}
	d.pos += 4
	return rune(n), true
}
