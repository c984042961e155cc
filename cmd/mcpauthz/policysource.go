package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/mcpauthz/mcpauthz/bundles"
	"github.com/mcpauthz/mcpauthz/policies"
)

// policySource keeps one engine's bundle current: the embedded bundle, a
// directory or file (watched when policy.watch is set), or a bundle server
// (polled). The active policy and the shadow's candidate each have one.
type policySource struct {
	engine   *bundles.Engine
	location string               // empty: the embedded bundle
	load     []bundles.LoadOption // how the bundle is read (signature verification)
	remote   *bundles.Remote      // when location is a URL
	watcher  *bundles.Watcher     // when location is watched
}

// newPolicySource prepares engine's source at location with the policy
// section's polling, token, watch and verification settings. The caller
// closes the returned source's watcher, if any.
func newPolicySource(engine *bundles.Engine, location string, cfg PolicyConfig, log *slog.Logger) (*policySource, error) {
	src := &policySource{engine: engine, location: location}
	verify, err := cfg.Verification.verification()
	if err != nil {
		return nil, fmt.Errorf("policy.verification: %w", err)
	}
	if verify != nil {
		src.load = append(src.load, bundles.WithVerification(verify))
	}
	switch {
	case isURL(location):
		ropts, err := cfg.remoteOptions()
		if err != nil {
			return nil, err
		}
		ropts = append(ropts, bundles.WithRemoteLoadOptions(src.load...), bundles.WithRemoteLogger(log))
		if src.remote, err = bundles.NewRemote(engine, location, ropts...); err != nil {
			return nil, err
		}
	case location != "" && cfg.Watch:
		// Watch before the first load, so no change slips between them.
		if src.watcher, err = bundles.NewWatcher(engine, location, 0, log, src.load...); err != nil {
			return nil, err
		}
	}
	return src, nil
}

// Load activates the bundle now: it reads the file or directory, fetches
// from the server, or compiles the embedded bundle, which is trusted as
// part of the binary. On error the active policy stays.
func (p *policySource) Load(ctx context.Context) error {
	switch {
	case p.remote != nil:
		return p.remote.Fetch(ctx)
	case p.location == "":
		return p.engine.Load(ctx, "embedded", func() (*bundle.Bundle, error) { return bundles.LoadFS(policies.FS()) })
	}
	return p.engine.Load(ctx, p.location, func() (*bundle.Bundle, error) { return bundles.LoadPath(p.location, p.load...) })
}

// Run keeps the bundle current until ctx is done: it polls the server or
// watches the path; an embedded or unwatched bundle changes only on Load.
func (p *policySource) Run(ctx context.Context) error {
	switch {
	case p.remote != nil:
		return p.remote.Run(ctx)
	case p.watcher != nil:
		return p.watcher.Run(ctx)
	}
	<-ctx.Done()
	return nil
}

// Close stops watching.
func (p *policySource) Close() error {
	if p.watcher != nil {
		return p.watcher.Close()
	}
	return nil
}
