# Convenience targets; each is one go command anyone can run directly.
.PHONY: test bench bench-go bench-load soak

test:
	go test ./...

# Every benchmark, then docs/PERFORMANCE.md written from the results (about
# 20 minutes on 2 cores). With MCPAUTHZ_TEST_REDIS_URL set, the in-process
# Redis benchmarks run too.
bench:
	go run ./bench/report

# The in-process benchmarks alone, printed.
bench-go:
	go test -run '^$$' -bench . -benchmem -count 3 ./extauthz/... ./mcp ./policies

# The loopback load test alone, printed (ghz against no-op baselines).
bench-load:
	go run ./bench/load -duration 12s -rounds 3

# Load at 70% of measured capacity through Redis, Postgres, bundle, revocation
# and JWKS faults, then the invariants checked (about 10 minutes; needs
# redis-server and PostgreSQL's server binaries, run as root or postgres).
soak:
	go run ./bench/soak -out soak.json
