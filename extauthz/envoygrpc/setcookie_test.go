package envoygrpc

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/mcpauthz/mcpauthz/extauthz"
)

// TestSetCookieIsAppended: a cookie the sidecar hands the client is added
// beside the upstream's own Set-Cookie headers, never over them; other
// response headers overwrite.
func TestSetCookieIsAppended(t *testing.T) {
	resp := toResponse(&extauthz.Decision{Allowed: true, ResponseHeadersToAdd: []extauthz.Header{
		{Name: "set-cookie", Value: "a=1"}, {Name: "x-frame-options", Value: "DENY"},
	}})
	got := resp.GetOkResponse().GetResponseHeadersToAdd()
	if len(got) != 2 {
		t.Fatalf("%v", got)
	}
	if got[0].GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
		t.Errorf("set-cookie: %v", got[0].GetAppendAction())
	}
	if got[1].GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
		t.Errorf("x-frame-options: %v", got[1].GetAppendAction())
	}
}
