package credentials_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// secretName matches what the code that handles credentials calls a
// secret or a value derived from one: a token's digest, a MAC, a
// signature, a secret, a password hash.
var secretName = regexp.MustCompile(`(?i)(digest|mac|signature|secret|passwordhash)$|^sig$`)

// notSecret are comparisons that match secretName but decide nothing
// about a credential, by file and expression.
var notSecret = map[string]bool{
	// loginSucceeded, after the password verified: whether rehashing
	// changed the stored hash, to skip a write.
	"accounts.go: hash == u.PasswordHash": true,
}

// operandName is the name an operand goes by, seen through parentheses,
// dereferences, slicing, indexing and conversions; "" for anything else
// (a call, a literal).
func operandName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.Ident:
			return x.Name
		case *ast.SelectorExpr:
			return x.Sel.Name
		case *ast.ParenExpr:
			e = x.X
		case *ast.StarExpr:
			e = x.X
		case *ast.SliceExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.CallExpr:
			if len(x.Args) != 1 || !isConversion(x.Fun) {
				return ""
			}
			e = x.Args[0]
		default:
			return ""
		}
	}
}

// isConversion reports whether fun is a type a conversion names:
// string, []byte, or an exported type of a package (token.Digest).
func isConversion(fun ast.Expr) bool {
	switch f := fun.(type) {
	case *ast.Ident:
		return f.Name == "string"
	case *ast.ArrayType:
		return true
	case *ast.SelectorExpr:
		return f.Sel.Name == "Digest"
	}
	return false
}

// isDigestType reports whether e names the digest type: Digest in the
// token package, token.Digest elsewhere.
func isDigestType(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name == "Digest"
	case *ast.SelectorExpr:
		return x.Sel.Name == "Digest"
	}
	return false
}

// digestNames returns the names fn gives digests: parameters and
// variables of the digest type, and results of DigestOf.
func digestNames(fn ast.Node) map[string]bool {
	names := map[string]bool{}
	ast.Inspect(fn, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.Field:
			if isDigestType(x.Type) {
				for _, id := range x.Names {
					names[id.Name] = true
				}
			}
		case *ast.ValueSpec:
			if x.Type != nil && isDigestType(x.Type) {
				for _, id := range x.Names {
					names[id.Name] = true
				}
			}
		case *ast.AssignStmt:
			for i, rhs := range x.Rhs {
				call, ok := rhs.(*ast.CallExpr)
				if !ok || i >= len(x.Lhs) {
					continue
				}
				fun := call.Fun
				if sel, ok := fun.(*ast.SelectorExpr); ok {
					fun = sel.Sel
				}
				if id, ok := x.Lhs[i].(*ast.Ident); ok && isIdent(fun, "DigestOf") {
					names[id.Name] = true
				}
			}
		}
		return true
	})
	return names
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// isPresenceCheck reports whether e is nil or a literal: comparing with
// one tells whether a value is set, not what it is.
func isPresenceCheck(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return x.Name == "nil"
	}
	return false
}

// TestSecretsComparedInConstantTime reads the code that verifies API keys,
// session tokens and signed cache cookies, and the token package that
// makes and compares their digests: a secret or anything derived from it
// is compared only with crypto/subtle or hmac.Equal (token.Equal), never
// with == or != (a string or array comparison stops at the first
// difference) nor with bytes.Equal, bytes.Compare, strings.Compare or
// reflect.DeepEqual.
func TestSecretsComparedInConstantTime(t *testing.T) {
	variableTime := map[string]bool{"bytes.Equal": true, "bytes.Compare": true, "strings.Compare": true,
		"strings.EqualFold": true, "reflect.DeepEqual": true, "slices.Equal": true, "slices.Compare": true}
	checked := 0
	for _, dir := range []string{".", "../../identity/token", "../../identity"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok {
					continue
				}
				digests := digestNames(fn)
				secret := func(e ast.Expr) string {
					name := operandName(e)
					if secretName.MatchString(name) || digests[name] {
						return name
					}
					return ""
				}
				ast.Inspect(fn, func(n ast.Node) bool {
					switch x := n.(type) {
					case *ast.BinaryExpr:
						if x.Op != token.EQL && x.Op != token.NEQ || isPresenceCheck(x.X) || isPresenceCheck(x.Y) ||
							notSecret[filepath.Base(path)+": "+types.ExprString(x)] {
							return true
						}
						for _, e := range []ast.Expr{x.X, x.Y} {
							if name := secret(e); name != "" {
								t.Errorf("%s: %s compared with %s", fset.Position(x.Pos()), name, x.Op)
							}
						}
					case *ast.CallExpr:
						sel, ok := x.Fun.(*ast.SelectorExpr)
						if !ok {
							return true
						}
						if pkg, ok := sel.X.(*ast.Ident); !ok || !variableTime[pkg.Name+"."+sel.Sel.Name] {
							return true
						}
						for _, e := range x.Args {
							if name := secret(e); name != "" {
								t.Errorf("%s: %s compared with %s.%s", fset.Position(x.Pos()), name, sel.X, sel.Sel.Name)
							}
						}
					}
					return true
				})
			}
		}
	}
	if checked < 20 {
		t.Fatalf("read only %d files", checked)
	}
}
