package identity

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
)

// MinAuditKeyBytes is the shortest audit key accepted.
const MinAuditKeyBytes = 32

// Auditor seals audit events and verifies the chain they form. Everything
// it computes is keyed with the audit key, which the database does not
// hold: without the key, an edited, inserted or deleted event cannot be
// hidden by recomputing the chain, and an erased person cannot be found
// again by hashing guesses of their id or address.
type Auditor struct {
	key []byte
}

// NewAuditor returns an Auditor keyed with key.
func NewAuditor(key []byte) (*Auditor, error) {
	if len(key) < MinAuditKeyBytes {
		return nil, fmt.Errorf("the audit key must be at least %d bytes", MinAuditKeyBytes)
	}
	return &Auditor{key: append([]byte(nil), key...)}, nil
}

func (a *Auditor) mac(label string) hash.Hash {
	h := hmac.New(sha256.New, a.key)
	h.Write([]byte(label))
	return h
}

// Ref is the pseudonym of an actor or target: a keyed hash of its id, the
// same for every event about it, "" for no id.
func (a *Auditor) Ref(id string) string {
	if id == "" {
		return ""
	}
	h := a.mac("mcpauthz audit ref\x00")
	h.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// Seal sets the event's pseudonyms and the digest of its personal data.
// Call it before appending.
func (a *Auditor) Seal(e *AuditEvent) {
	e.ActorRef = a.Ref(e.ActorID)
	e.TargetRef = a.Ref(e.TargetID)
	e.PIIDigest = a.piiDigest(e)
}

func (a *Auditor) piiDigest(e *AuditEvent) []byte {
	h := a.mac("mcpauthz audit pii\x00")
	for _, s := range []string{e.ActorID, e.TargetID, e.IP, e.UserAgent} {
		writeString(h, s)
	}
	return h.Sum(nil)
}

// Link computes the event's chain hash from its sequence number, the
// previous hash and every field outside the personal data. It is the link
// function AppendAudit takes.
func (a *Auditor) Link(e *AuditEvent) []byte {
	h := a.mac("mcpauthz audit chain\x00")
	h.Write(e.PrevHash)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.At.UnixMicro()))
	h.Write(n[:])
	for _, s := range []string{e.ID, e.Action, e.OrgID, e.ActorRef, e.TargetType, e.TargetRef} {
		writeString(h, s)
	}
	writeBytes(h, canonicalDetails(e.Details))
	writeBytes(h, e.PIIDigest)
	return h.Sum(nil)
}

// canonicalDetails encodes details with sorted keys. Details hold strings,
// booleans and integers below 2^53, which survive every store unchanged.
func canonicalDetails(d map[string]any) []byte {
	if len(d) == 0 {
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return []byte("unencodable")
	}
	return b
}

func writeString(h hash.Hash, s string) { writeBytes(h, []byte(s)) }

func writeBytes(h hash.Hash, b []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// AuditReader reads the audit log in sequence order.
type AuditReader interface {
	AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// VerifyReport is the outcome of a chain verification.
type VerifyReport struct {
	Events int   // events checked
	Erased int   // events whose personal data was erased
	Broken int64 // sequence number of the first bad event; 0 if none
	Reason string
}

// ErrChainBroken is returned by Verify when the chain does not verify.
var ErrChainBroken = errors.New("audit chain broken")

// Genesis is the hash the chain starts from.
var Genesis = make([]byte, 32)

// Verify reads the whole log and checks that sequence numbers have no gap,
// every event links to the one before, every hash matches its event, and
// the personal data of events not erased matches its digest.
func (a *Auditor) Verify(ctx context.Context, r AuditReader) (VerifyReport, error) {
	var rep VerifyReport
	prev := Genesis
	var seq int64
	err := eachAuditEvent(ctx, r, AuditFilter{}, func(e *AuditEvent) error {
		fail := func(at int64, reason string) error {
			rep.Broken, rep.Reason = at, reason
			return fmt.Errorf("%w at event %d: %s", ErrChainBroken, at, reason)
		}
		switch {
		case e.Seq != seq+1:
			return fail(seq+1, "missing event")
		case !hmac.Equal(e.PrevHash, prev):
			return fail(e.Seq, "does not link to the event before it")
		case !hmac.Equal(a.Link(e), e.Hash):
			return fail(e.Seq, "content does not match its hash")
		}
		if e.PIIErasedAt.IsZero() {
			if !hmac.Equal(a.piiDigest(e), e.PIIDigest) {
				return fail(e.Seq, "personal data does not match its digest")
			}
		} else {
			rep.Erased++
		}
		prev, seq = e.Hash, e.Seq
		rep.Events++
		return nil
	})
	if err != nil && !errors.Is(err, ErrChainBroken) {
		return rep, fmt.Errorf("reading the audit log: %w", err)
	}
	return rep, err
}

// eachAuditEvent calls fn for every event f selects, in sequence order,
// until fn returns an error. It reads a page at a time and stops at an
// empty page, not a short one: a reader may cap pages below the limit.
func eachAuditEvent(ctx context.Context, r AuditReader, f AuditFilter, fn func(*AuditEvent) error) error {
	f.Limit = MaxAuditPage
	for {
		page, err := r.AuditEvents(ctx, f)
		if err != nil || len(page) == 0 {
			return err
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
			f.AfterSeq = page[i].Seq
		}
	}
}
