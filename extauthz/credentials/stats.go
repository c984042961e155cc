package credentials

import "sync/atomic"

// LookupStats counts where API keys or sessions were found, and the
// failures of the backends asked.
type LookupStats struct {
	Memory, Feed, Store uint64 // found (or refused) from each
	FeedErrors          uint64 // the feed (Redis) failed; the store was asked
	StoreErrors         uint64 // the store failed: the request was refused
}

// lookups counts lookups as LookupStats reports them.
type lookups struct {
	memory, feed, store, feedErrors, storeErrors atomic.Uint64
}

func (l *lookups) stats() LookupStats {
	return LookupStats{
		Memory: l.memory.Load(), Feed: l.feed.Load(), Store: l.store.Load(),
		FeedErrors: l.feedErrors.Load(), StoreErrors: l.storeErrors.Load(),
	}
}

// Stats returns where keys were found.
func (v *APIKeyVerifier) Stats() LookupStats { return v.lookups.stats() }

// Stats returns where sessions were found.
func (v *SessionVerifier) Stats() LookupStats { return v.lookups.stats() }
