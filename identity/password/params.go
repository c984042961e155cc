package password

import (
	"errors"
	"fmt"
)

// ErrInvalidParams is wrapped by the errors of Params.Validate, of Hash when
// given such parameters, and of Verify when a stored hash names parameters
// outside the bounds below.
var ErrInvalidParams = errors.New("invalid argon2id parameters")

// Params are argon2id cost parameters and output sizes.
type Params struct {
	Memory      uint32 // KiB
	Iterations  uint32 // passes over the memory ("t")
	Parallelism uint8  // lanes ("p")
	SaltLen     uint32 // bytes
	KeyLen      uint32 // bytes
}

// DefaultParams are the first argon2id configuration of the OWASP Password
// Storage Cheat Sheet — 19 MiB, 2 iterations, 1 lane — with RFC 9106's
// 16-byte salt and a 32-byte key. On the project's machine (2 cores of an
// AMD EPYC "Turin") one hash takes 26–30 ms (BenchmarkHash, BenchmarkVerify)
// and allocates 19 MiB, inside the 20–100 ms a login can afford. One lane, because a login server runs many hashes at
// once: more lanes per hash buy latency, not throughput, while memory per
// hash is what makes an attacker's GPU expensive. RFC 9106's second
// recommendation (64 MiB, t=3, p=4) took about 91 ms on both cores here, and
// its 64 MiB per concurrent login is the cost that decided against it.
var DefaultParams = Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}

// Bounds. The lower ones apply to parameters used to make new hashes; stored
// hashes made with weaker parameters still verify (and NeedsRehash reports
// them). The upper ones apply to both, so that a stored hash this package
// made always verifies, and a tampered row cannot make one login allocate
// more than 1 GiB or spend more than about a second.
const (
	// minMemory and minWork: every configuration OWASP lists (m=47104 t=1,
	// m=19456 t=2, m=12288 t=3, m=9216 t=4, m=7168 t=5) has at least 7 MiB
	// and m·t of at least 7 MiB × 5 passes.
	minMemory = 7 * 1024
	minWork   = 7 * 1024 * 5

	maxMemory      = 1 << 20 // KiB: 1 GiB
	maxIterations  = 100
	maxWork        = 1 << 20 // KiB·passes: 1 GiB·pass, ~25× DefaultParams
	maxParallelism = 16

	minSaltLen       = 16 // RFC 9106 §3.1: 128 bits suffice for all uses
	minStoredSaltLen = 8  // PHC string format: the least a stored hash may have
	maxSaltLen       = 64
	minKeyLen        = 16
	maxKeyLen        = 64
)

// Validate reports whether p may be used to hash new passwords: at least as
// strong as OWASP's weakest argon2id configuration (memory ≥ 7 MiB and
// memory × iterations ≥ 35 MiB), at most 1 GiB, 100 iterations, 1 GiB × pass
// of work and 16 lanes, a 16–64-byte salt and a 16–64-byte key.
func (p Params) Validate() error {
	if err := checkCost(p.Memory, p.Iterations, p.Parallelism); err != nil {
		return err
	}
	switch {
	case p.Memory < minMemory:
		return fmt.Errorf("%w: memory %d KiB is below %d KiB", ErrInvalidParams, p.Memory, minMemory)
	case uint64(p.Memory)*uint64(p.Iterations) < minWork:
		return fmt.Errorf("%w: memory × iterations %d KiB is below %d KiB", ErrInvalidParams,
			uint64(p.Memory)*uint64(p.Iterations), minWork)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("%w: salt length %d outside [%d, %d]", ErrInvalidParams, p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("%w: key length %d outside [%d, %d]", ErrInvalidParams, p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// checkCost applies the bounds shared by new and stored hashes: what argon2
// needs to run (t ≥ 1, p ≥ 1, m ≥ 8p) and the ceilings against absurd cost.
func checkCost(memory, iterations uint32, parallelism uint8) error {
	switch {
	case iterations < 1 || iterations > maxIterations:
		return fmt.Errorf("%w: iterations %d outside [1, %d]", ErrInvalidParams, iterations, maxIterations)
	case parallelism < 1 || parallelism > maxParallelism:
		return fmt.Errorf("%w: parallelism %d outside [1, %d]", ErrInvalidParams, parallelism, maxParallelism)
	case memory < 8*uint32(parallelism):
		return fmt.Errorf("%w: memory %d KiB is below 8 KiB per lane", ErrInvalidParams, memory)
	case memory > maxMemory:
		return fmt.Errorf("%w: memory %d KiB is above %d KiB", ErrInvalidParams, memory, maxMemory)
	case uint64(memory)*uint64(iterations) > maxWork:
		return fmt.Errorf("%w: memory × iterations %d KiB is above %d KiB", ErrInvalidParams,
			uint64(memory)*uint64(iterations), maxWork)
	}
	return nil
}
