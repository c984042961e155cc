package mcp

import (
	"strconv"
	"unicode/utf8"
)

// ErrorReply renders the JSON-RPC error response a client gets when its
// request is refused. A batch gets an array with one error per request in it
// (notifications and responses get none, as JSON-RPC prescribes); a request
// whose id is unknown gets one error with a null id.
func ErrorReply(req *Request, code int, message string) []byte {
	return ErrorReplyData(req, code, message, nil)
}

// ErrorReplyData is ErrorReply with the errors' data member set to data,
// which must be valid JSON (nil: no data member).
func ErrorReplyData(req *Request, code int, message string, data []byte) []byte {
	if req == nil || !req.Batch {
		var id *Value
		if req != nil && len(req.Messages) == 1 {
			id = req.Messages[0].ID
		}
		return appendError(nil, id, code, message, data)
	}
	buf := []byte{'['}
	n := 0
	for i := range req.Messages {
		if req.Messages[i].Kind != KindRequest {
			continue
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = appendError(buf, req.Messages[i].ID, code, message, data)
		n++
	}
	if n == 0 {
		return appendError(nil, nil, code, message, data)
	}
	return append(buf, ']')
}

// ErrorReplyID renders one JSON-RPC error response for the request with the
// given id (nil for unknown).
func ErrorReplyID(id *Value, code int, message string) []byte {
	return appendError(nil, id, code, message, nil)
}

func appendError(buf []byte, id *Value, code int, message string, data []byte) []byte {
	buf = append(buf, `{"jsonrpc":"2.0","id":`...)
	if id == nil {
		buf = append(buf, "null"...)
	} else {
		buf = AppendJSON(buf, id)
	}
	buf = append(buf, `,"error":{"code":`...)
	buf = strconv.AppendInt(buf, int64(code), 10)
	buf = append(buf, `,"message":`...)
	buf = AppendString(buf, message)
	if data != nil {
		buf = append(buf, `,"data":`...)
		buf = append(buf, data...)
	}
	return append(buf, "}}"...)
}

// AppendJSON appends the JSON encoding of v to buf.
func AppendJSON(buf []byte, v *Value) []byte {
	switch v.Kind {
	case Null:
		return append(buf, "null"...)
	case Bool, Number:
		return append(buf, v.Text...)
	case String:
		return AppendString(buf, v.Text)
	case Array:
		buf = append(buf, '[')
		for i := range v.Items {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = AppendJSON(buf, &v.Items[i])
		}
		return append(buf, ']')
	case Object:
		buf = append(buf, '{')
		for i := range v.Members {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = AppendString(buf, v.Members[i].Key)
			buf = append(buf, ':')
			buf = AppendJSON(buf, &v.Members[i].Value)
		}
		return append(buf, '}')
	}
	return append(buf, "null"...)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, and
// <, > and & are escaped so the output is safe to embed in HTML.
func AppendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				buf = append(buf, '\\', c)
			case c == '\n':
				buf = append(buf, '\\', 'n')
			case c == '\r':
				buf = append(buf, '\\', 'r')
			case c == '\t':
				buf = append(buf, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			default:
				buf = append(buf, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf = append(buf, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			buf = append(buf, s[i:i+size]...)
		}
		i += size
	}
	return append(buf, '"')
}
