package identity

import "context"

// WithAuditObserver calls observe with the action of every audit event
// once its transaction has committed ("user.login", "user.login_failed",
// "api_key.create", ...): what the service did, counted for metrics. It
// must not block.
func WithAuditObserver(observe func(action string)) Option {
	return func(s *Service) { s.store = observedStore{Store: s.store, observe: observe} }
}

// observedStore reports the audit events of committed transactions.
type observedStore struct {
	Store
	observe func(action string)
}

func (o observedStore) Tx(ctx context.Context, fn func(Tx) error) error {
	var actions []string
	err := o.Store.Tx(ctx, func(tx Tx) error {
		actions = actions[:0] // a retried transaction starts over
		return fn(observedTx{Tx: tx, actions: &actions})
	})
	if err == nil {
		for _, a := range actions {
			o.observe(a)
		}
	}
	return err
}

type observedTx struct {
	Tx
	actions *[]string
}

func (t observedTx) AppendAudit(ctx context.Context, e *AuditEvent, link func(*AuditEvent) []byte) error {
	err := t.Tx.AppendAudit(ctx, e, link)
	if err == nil {
		*t.actions = append(*t.actions, e.Action)
	}
	return err
}
