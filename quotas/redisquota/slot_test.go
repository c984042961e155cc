package redisquota_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mcpauthz/mcpauthz/internal/testredis"
	"github.com/mcpauthz/mcpauthz/quotas/redisquota"
)

func TestSlot(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		// The Redis Cluster specification's example: CRC16("123456789") is 0x31C3.
		{"123456789", 0x31c3 % 16384},
		{"{user1000}.following", redisquota.Slot("user1000")},
		{"foo{}{bar}", redisquota.Slot("foo{}{bar}")},
		{"foo{{bar}}zap", redisquota.Slot("{bar")},
		{"foo{bar}{zap}", redisquota.Slot("bar")},
	}
	for _, tt := range tests {
		if got := redisquota.Slot(tt.key); got != tt.want {
			t.Errorf("Slot(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

// TestCluster runs the limiter against a Redis Cluster of three masters.
func TestCluster(t *testing.T) {
	rdb := testredis.StartCluster(t, 3)
	t.Run("ok/slots agree with the server's", func(t *testing.T) { slotsAgree(t, rdb) })
}

// slotsAgree: the slots computed here are the server's.
func slotsAgree(t *testing.T, rdb *redis.ClusterClient) {
	for _, key := range []string{"", "a", "mcpauthz:rl:user:u-1", "mcpauthz:q:{tenant:acme}:requests:2026-11", "x{}y", "{{}}", "ü{ñ}"} {
		want, err := rdb.ClusterKeySlot(t.Context(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := redisquota.Slot(key); int64(got) != want {
			t.Errorf("Slot(%q) = %d, Redis says %d", key, got, want)
		}
	}
}
