package password

import (
	"errors"
	"testing"
)

func TestParamsValidate(t *testing.T) {
	owasp := func(m, t uint32) Params {
		return Params{Memory: m, Iterations: t, Parallelism: 1, SaltLen: 16, KeyLen: 32}
	}
	with := func(f func(*Params)) Params { p := DefaultParams; f(&p); return p }
	tests := []struct {
		name string
		p    Params
		ok   bool
	}{
		{name: "ok/default", p: DefaultParams, ok: true},
		{name: "ok/owasp 46 MiB t=1", p: owasp(47104, 1), ok: true},
		{name: "ok/owasp 12 MiB t=3", p: owasp(12288, 3), ok: true},
		{name: "ok/owasp 9 MiB t=4", p: owasp(9216, 4), ok: true},
		{name: "ok/owasp 7 MiB t=5", p: owasp(7168, 5), ok: true},
		{name: "ok/rfc 9106 second recommendation", p: Params{Memory: 64 * 1024, Iterations: 3, Parallelism: 4, SaltLen: 16, KeyLen: 32}, ok: true},
		{name: "ok/ceiling 1 GiB t=1", p: owasp(1<<20, 1), ok: true},
		{name: "ok/ceiling 64 MiB t=16 p=16", p: with(func(p *Params) { p.Memory, p.Iterations, p.Parallelism = 64*1024, 16, 16 }), ok: true},
		{name: "ok/64-byte salt and key", p: with(func(p *Params) { p.SaltLen, p.KeyLen = 64, 64 }), ok: true},
		{name: "fail/zero", p: Params{}},
		{name: "fail/memory below 7 MiB", p: owasp(7167, 10)},
		{name: "fail/work below owasp", p: owasp(19456, 1)},
		{name: "fail/work below owasp 7 MiB t=4", p: owasp(7168, 4)},
		{name: "fail/memory above 1 GiB", p: owasp(1<<20+1, 1)},
		{name: "fail/work above 1 GiB pass", p: owasp(1<<19, 3)},
		{name: "fail/iterations 0", p: with(func(p *Params) { p.Iterations = 0 })},
		{name: "fail/iterations 101", p: with(func(p *Params) { p.Memory, p.Iterations = 8192, 101 })},
		{name: "fail/parallelism 0", p: with(func(p *Params) { p.Parallelism = 0 })},
		{name: "fail/parallelism 17", p: with(func(p *Params) { p.Parallelism = 17 })},
		{name: "fail/salt 15 bytes", p: with(func(p *Params) { p.SaltLen = 15 })},
		{name: "fail/salt 65 bytes", p: with(func(p *Params) { p.SaltLen = 65 })},
		{name: "fail/key 15 bytes", p: with(func(p *Params) { p.KeyLen = 15 })},
		{name: "fail/key 65 bytes", p: with(func(p *Params) { p.KeyLen = 65 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.ok {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidParams) {
				t.Fatalf("Validate() = %v, want ErrInvalidParams", err)
			}
		})
	}
}

// Every Params that Validate accepts must make hashes that Verify accepts:
// the ceilings of new and stored hashes are the same. Checked on the
// encoding alone, without computing the 1 GiB hash.
func TestValidParamsDecode(t *testing.T) {
	for _, p := range []Params{
		DefaultParams,
		{Memory: 1 << 20, Iterations: 1, Parallelism: 16, SaltLen: 64, KeyLen: 64},
		{Memory: 10485, Iterations: 100, Parallelism: 16, SaltLen: 16, KeyLen: 16},
	} {
		if err := p.Validate(); err != nil {
			t.Fatalf("Validate(%+v) = %v", p, err)
		}
		enc := phc{memory: p.Memory, iterations: p.Iterations, parallelism: p.Parallelism,
			salt: make([]byte, p.SaltLen), key: make([]byte, p.KeyLen)}.encode()
		if _, err := decodePHC(enc); err != nil {
			t.Errorf("decodePHC(%s) = %v, want nil", enc, err)
		}
	}
}
