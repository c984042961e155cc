package quotatest_test

import (
	"testing"

	"github.com/mcpauthz/mcpauthz/quotas"
	"github.com/mcpauthz/mcpauthz/quotas/quotatest"
)

func TestMemoryStore(t *testing.T) {
	quotatest.RunUsageStore(t, func(t *testing.T) quotas.UsageStore { return quotatest.NewMemoryStore() })
}
