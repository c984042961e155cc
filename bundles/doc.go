// Package bundles owns the policy: it reads OPA bundles (the one compiled
// into the binary, a directory, or a .tar.gz built by `opa build`), compiles
// them into immutable snapshots, swaps the active snapshot atomically, and
// evaluates the configured decision against it with OPA's evaluator. A
// bundle that does not load, compile, define the decision or pass its own
// Rego tests never replaces the active one. A Watcher reloads a bundle directory or file when it
// changes; a Remote polls a bundle server over HTTP(S) with ETags.
//
// It also builds bundle archives with a manifest (Build, Write), signs them
// with OPA's bundle signatures (Sign), and, given a Verification, loads
// only bundles signed with that key under that key id (WithVerification);
// a bundle that fails verification is rejected like one that does not
// compile.
package bundles
