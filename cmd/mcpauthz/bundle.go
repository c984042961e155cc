package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/mcpauthz/mcpauthz/bundles"
)

const bundleUsage = `Usage:
  mcpauthz bundle build DIR -o bundle.tar.gz [-revision R]
  mcpauthz bundle sign BUNDLE -key key.pem -keyid ID [-alg RS256|ES256] [-o out.tar.gz]
  mcpauthz bundle verify BUNDLE -pubkey pub.pem -keyid ID [-scope S]
  mcpauthz bundle test DIR
  mcpauthz bundle inspect BUNDLE
`

// errTestsFailed makes `bundle test` exit 1 once the results are printed.
var errTestsFailed = errors.New("some Rego tests failed")

// runBundle builds, signs, verifies, tests and inspects policy bundles.
func runBundle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, bundleUsage)
		return errUsage
	}
	switch args[0] {
	case "build":
		return runBundleBuild(args[1:], stdout, stderr)
	case "sign":
		return runBundleSign(args[1:], stdout, stderr)
	case "verify":
		return runBundleVerify(args[1:], stdout, stderr)
	case "test":
		return runBundleTest(ctx, args[1:], stdout, stderr)
	case "inspect":
		return runBundleInspect(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, bundleUsage)
		return nil
	}
	fmt.Fprintf(stderr, "bundle: unknown command %q\n\n%s", args[0], bundleUsage)
	return errUsage
}

// parseArgs parses flags that may come before or after the one positional
// argument ("build DIR -o out" and "build -o out DIR"), which it returns.
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer, what string) (string, error) {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", err
			}
			return "", errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "%s: want one %s, got %d arguments\n", fs.Name(), what, len(pos))
		return "", errUsage
	}
	return pos[0], nil
}

// required reports a missing flag as a usage error.
func required(fs *flag.FlagSet, stderr io.Writer, names ...string) error {
	for _, n := range names {
		if fs.Lookup(n).Value.String() == "" {
			fmt.Fprintf(stderr, "%s: -%s is required\n", fs.Name(), n)
			return errUsage
		}
	}
	return nil
}

func runBundleBuild(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle build", flag.ContinueOnError)
	out := fs.String("o", "", "output `file` (.tar.gz)")
	revision := fs.String("revision", "", "manifest `revision` (default: the source manifest's, or a content digest)")
	dir, err := parseArgs(fs, args, stderr, "bundle directory")
	if err != nil {
		return err
	}
	if err := required(fs, stderr, "o"); err != nil {
		return err
	}
	b, err := bundles.Build(dir, bundles.BuildOptions{Revision: *revision})
	if err != nil {
		return err
	}
	if err := writeBundleFile(*out, b); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "built %s: revision %s, roots %s, %d modules\n",
		*out, b.Manifest.Revision, strings.Join(*b.Manifest.Roots, ", "), len(b.Modules))
	return nil
}

func runBundleSign(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle sign", flag.ContinueOnError)
	keyFile := fs.String("key", "", "PEM private key `file` (RSA or P-256)")
	keyID := fs.String("keyid", "", "key `id` the signature names; verifiers must configure the same")
	alg := fs.String("alg", bundles.RS256, "signature `algorithm`: RS256 or ES256")
	out := fs.String("o", "", "output `file` (default: replace BUNDLE)")
	in, err := parseArgs(fs, args, stderr, "bundle")
	if err != nil {
		return err
	}
	if err := required(fs, stderr, "key", "keyid"); err != nil {
		return err
	}
	if *alg != bundles.RS256 && *alg != bundles.ES256 {
		fmt.Fprintf(stderr, "bundle sign: -alg %q is neither RS256 nor ES256\n", *alg)
		return errUsage
	}
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	// Read as it is, ignoring any old signature, and keep the manifest.
	b, err := bundles.LoadPath(in)
	if err != nil {
		return err
	}
	if err := bundles.Sign(b, key, *keyID, *alg); err != nil {
		return err
	}
	dest := *out
	if dest == "" {
		if info, err := os.Stat(in); err == nil && info.IsDir() {
			fmt.Fprintln(stderr, "bundle sign: -o is required for a bundle directory")
			return errUsage
		}
		dest = in
	}
	if err := writeBundleFile(dest, b); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signed %s as keyid %s (%s): %s\n", bundles.Revision(b), *keyID, *alg, dest)
	return nil
}

func runBundleVerify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle verify", flag.ContinueOnError)
	pubFile := fs.String("pubkey", "", "PEM public key `file` (RSA or P-256)")
	keyID := fs.String("keyid", "", "key `id` the signature must name")
	scope := fs.String("scope", "", "`scope` the signature must carry")
	in, err := parseArgs(fs, args, stderr, "bundle")
	if err != nil {
		return err
	}
	if err := required(fs, stderr, "pubkey", "keyid"); err != nil {
		return err
	}
	pub, err := os.ReadFile(*pubFile)
	if err != nil {
		return err
	}
	v, err := bundles.NewVerification(pub, *keyID, *scope)
	if err != nil {
		return err
	}
	b, err := bundles.LoadPath(in, bundles.WithVerification(v))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verified %s: revision %s, signed by keyid %s (%s)\n", in, bundles.Revision(b), v.KeyID(), v.Algorithm())
	return nil
}

func runBundleTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle test", flag.ContinueOnError)
	verbose := fs.Bool("v", false, "print every test, not only failures")
	timeout := fs.Duration("timeout", bundles.DefaultTestTimeout, "time each test may take")
	dir, err := parseArgs(fs, args, stderr, "bundle directory or file")
	if err != nil {
		return err
	}
	b, err := bundles.LoadPath(dir)
	if err != nil {
		return err
	}
	report, err := bundles.Test(ctx, b, *timeout)
	if err != nil {
		return err
	}
	for _, r := range report.Results {
		switch {
		case r.Err != nil:
			fmt.Fprintf(stdout, "ERROR %s (%s): %v\n", r.Name, r.Location, r.Err)
		case r.Fail:
			fmt.Fprintf(stdout, "FAIL  %s (%s)\n", r.Name, r.Location)
		case r.Skip && *verbose:
			fmt.Fprintf(stdout, "SKIP  %s\n", r.Name)
		case !r.Skip && *verbose:
			fmt.Fprintf(stdout, "PASS  %s\n", r.Name)
		}
		if r.Failed() && len(r.Output) > 0 {
			fmt.Fprintf(stdout, "      %s\n", bytes.ReplaceAll(bytes.TrimSpace(r.Output), []byte("\n"), []byte("\n      ")))
		}
	}
	pass, fail, errs, skip := report.Passed, report.Failed, report.Errs, report.Skips
	fmt.Fprintf(stdout, "PASS: %d, FAIL: %d, ERROR: %d, SKIPPED: %d\n", pass, fail, errs, skip)
	switch {
	case fail+errs > 0:
		return errTestsFailed
	case pass == 0:
		return fmt.Errorf("%s holds no Rego tests (test_* rules)", dir)
	}
	return nil
}

func runBundleInspect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle inspect", flag.ContinueOnError)
	in, err := parseArgs(fs, args, stderr, "bundle")
	if err != nil {
		return err
	}
	info, err := bundles.Inspect(in)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bundle:    %s\n", in)
	fmt.Fprintf(stdout, "revision:  %s\n", info.Revision)
	fmt.Fprintf(stdout, "roots:     %s\n", strings.Join(quoteRoots(info.Roots), ", "))
	if s := info.Signature; s != nil {
		fmt.Fprintf(stdout, "signature: keyid %s, %s, %d files (not verified: use \"mcpauthz bundle verify\")\n", orNone(s.KeyID), orNone(s.Algorithm), len(s.Files))
		if s.Scope != "" {
			fmt.Fprintf(stdout, "scope:     %s\n", s.Scope)
		}
	} else {
		fmt.Fprintln(stdout, "signature: none")
	}
	fmt.Fprintln(stdout, "packages:")
	for _, p := range info.Packages {
		fmt.Fprintf(stdout, "  %s\n", p)
	}
	fmt.Fprintln(stdout, "files:")
	for _, f := range info.Files {
		fmt.Fprintf(stdout, "  %s\n", f)
	}
	return nil
}

func quoteRoots(roots []string) []string {
	out := make([]string, len(roots))
	for i, r := range roots {
		out[i] = r
		if r == "" {
			out[i] = `"" (everything)`
		}
	}
	if len(out) == 0 {
		return []string{"(none)"}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// writeBundleFile writes b to path atomically: a watcher never sees half a
// bundle.
func writeBundleFile(path string, b *bundle.Bundle) error {
	var buf bytes.Buffer
	if err := bundles.Write(&buf, b); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
