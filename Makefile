# Convenience targets; each is one go command anyone can run directly.
.PHONY: test bench bench-go bench-load

test:
	go test ./...

bench: bench-go bench-load

# In-process benchmarks: Check, loopback gRPC, the strict JSON decoder.
bench-go:
	go test -run '^$$' -bench . -benchmem -count 3 ./extauthz/policy ./extauthz/envoygrpc ./mcp

# Loopback load test with ghz against no-op baselines (about 5 minutes).
bench-load:
	go run ./bench/load -duration 12s -rounds 3
