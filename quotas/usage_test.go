package quotas_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mcpauthz/mcpauthz/quotas"
)

func TestUsageValidate(t *testing.T) {
	exp := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		u       quotas.Usage
		wantErr error
	}{
		{"ok/month", quotas.Usage{Key: "tenant:acme:requests", PeriodID: "2026-11", Used: 3, Expires: exp}, nil},
		{"ok/nothing used", quotas.Usage{Key: "k", PeriodID: "2026-11-25", Expires: exp}, nil},
		{"fail/no key", quotas.Usage{PeriodID: "2026-11", Used: 3, Expires: exp}, quotas.ErrInvalidUsage},
		{"fail/no period", quotas.Usage{Key: "k", Used: 3, Expires: exp}, quotas.ErrInvalidUsage},
		{"fail/colon in the period", quotas.Usage{Key: "k", PeriodID: "x:2026-11", Used: 3, Expires: exp}, quotas.ErrInvalidUsage},
		{"fail/negative", quotas.Usage{Key: "k", PeriodID: "2026-11", Used: -1, Expires: exp}, quotas.ErrInvalidUsage},
		{"fail/no expiry", quotas.Usage{Key: "k", PeriodID: "2026-11", Used: 3}, quotas.ErrInvalidUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.u.Validate(); !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Validate: %v, want %v", err, tt.wantErr)
			}
			if err := quotas.ValidateUsage([]quotas.Usage{{Key: "ok", PeriodID: "2026-11", Expires: exp}, tt.u}); !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("ValidateUsage: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestMergeUsage(t *testing.T) {
	t1 := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	u := func(key, period string, used int64, exp time.Time) quotas.Usage {
		return quotas.Usage{Key: key, PeriodID: period, Used: used, Expires: exp}
	}
	tests := []struct {
		name string
		in   []quotas.Usage
		want []quotas.Usage
	}{
		{"ok/empty", nil, []quotas.Usage{}},
		{"ok/sorted by key, then period", []quotas.Usage{u("b", "2026-11", 1, t1), u("a", "2026-12", 2, t1), u("a", "2026-11", 3, t1)},
			[]quotas.Usage{u("a", "2026-11", 3, t1), u("a", "2026-12", 2, t1), u("b", "2026-11", 1, t1)}},
		{"ok/the greatest count and latest expiry", []quotas.Usage{u("a", "2026-11", 5, t1), u("a", "2026-11", 3, t2), u("a", "2026-11", 4, t1)},
			[]quotas.Usage{u("a", "2026-11", 5, t2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]quotas.Usage(nil), tt.in...)
			if got := quotas.MergeUsage(tt.in); !reflect.DeepEqual(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Fatalf("MergeUsage: %+v, want %+v", got, tt.want)
			}
			if !reflect.DeepEqual(in, tt.in) {
				t.Fatal("MergeUsage changed its argument")
			}
		})
	}
}
