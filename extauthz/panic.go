package extauthz

import (
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
)

// PanicAttrs describes a panic recovered while deciding, for the log. The
// panic value is logged only when it is a runtime error: any other value
// may carry request data, credentials included.
func PanicAttrs(p any) []slog.Attr {
	attrs := []slog.Attr{slog.String("panic_type", fmt.Sprintf("%T", p))}
	if err, ok := p.(runtime.Error); ok {
		attrs = append(attrs, slog.String("panic", err.Error()))
	}
	return append(attrs, slog.String("stack", string(debug.Stack())))
}
