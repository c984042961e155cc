// Package policies holds the policy bundle compiled into mcpauthz: Rego
// modules, their tests and data, embedded with go:embed. Its Rego tests run
// under `go test` through OPA's tester.
package policies

import (
	"embed"
	"io/fs"
)

//go:embed *.rego data.json
var files embed.FS

// FS returns the embedded bundle as a directory tree.
func FS() fs.FS { return files }
