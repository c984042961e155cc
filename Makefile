# Convenience targets; each is one go command anyone can run directly.
.PHONY: test bench bench-go bench-load

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
