package token

import (
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"
)

const day = 24 * time.Hour

func kids(ks KeySet) []string {
	var out []string
	for _, k := range ks.Keys() {
		out = append(out, k.ID)
	}
	return out
}

// TestRotationTimeline walks a key set through two rotations with a fake
// clock: signing period 30 days, overlap 2 days.
func TestRotationTimeline(t *testing.T) {
	const period, overlap = 30 * day, 2 * day
	var ks KeySet
	rotate := func(now time.Time) {
		t.Helper()
		next, err := ks.Rotate(now, rand.Reader, ES256, period, overlap, 0)
		if err != nil {
			t.Fatalf("Rotate at %v: %v", now.Sub(t0), err)
		}
		ks = next
	}
	signer := func(now time.Time) *SigningKey {
		t.Helper()
		k, err := ks.Signer(now)
		if err != nil {
			t.Fatalf("Signer at %v: %v", now.Sub(t0), err)
		}
		return k
	}
	verifyAt := func(tok string, now time.Time) error {
		_, err := Verify(tok, ks, clock(now), WithIssuer("https://id.example"), WithAudience("mcp"))
		return err
	}

	if _, err := ks.Signer(t0); !errors.Is(err, ErrNoSigner) {
		t.Fatalf("empty set: Signer err = %v, want ErrNoSigner", err)
	}

	// ok/first rotate creates the first key.
	rotate(t0)
	if ks.Len() != 1 {
		t.Fatalf("after first Rotate: %d keys", ks.Len())
	}
	k1 := signer(t0)
	if !k1.CreatedAt.Equal(t0) || !k1.NotAfter.Equal(t0.Add(period)) {
		t.Fatalf("k1 window %v..%v", k1.CreatedAt, k1.NotAfter)
	}

	// ok/before the overlap window nothing changes.
	for _, at := range []time.Duration{time.Minute, 10 * day, period - overlap - time.Second} {
		before := kids(ks)
		rotate(t0.Add(at))
		if !slices.Equal(kids(ks), before) || signer(t0.Add(at)).ID != k1.ID {
			t.Fatalf("Rotate at %v changed the set: %v -> %v", at, before, kids(ks))
		}
	}

	// A token k1 signs just before rotation, valid (unusually) for 10
	// days so its expiry does not hide when k1 is dropped.
	lastByK1 := t0.Add(period - overlap - time.Second)
	tok, err := signer(lastByK1).Sign(claimsAt(lastByK1, 10*day))
	if err != nil {
		t.Fatal(err)
	}

	// ok/inside the window a new key is added and signs at once.
	rotAt := t0.Add(period - overlap)
	rotate(rotAt)
	if ks.Len() != 2 {
		t.Fatalf("after rotation: %d keys, want 2", ks.Len())
	}
	k2 := signer(rotAt)
	if k2.ID == k1.ID || !k2.CreatedAt.Equal(rotAt) || !k2.NotAfter.Equal(rotAt.Add(period)) {
		t.Fatalf("signer after rotation = %s %v..%v", k2.ID, k2.CreatedAt, k2.NotAfter)
	}
	if _, ok := ks.Key(k1.ID); !ok {
		t.Fatal("k1 dropped at rotation")
	}
	// Rotating again in the same window adds nothing more.
	rotate(rotAt.Add(time.Hour))
	if ks.Len() != 2 {
		t.Fatalf("second Rotate in the window: %d keys", ks.Len())
	}

	// ok/the old key's tokens verify through NotAfter + overlap.
	for _, at := range []time.Time{rotAt, k1.NotAfter, k1.NotAfter.Add(overlap)} {
		rotate(at)
		if err := verifyAt(tok, at); err != nil {
			t.Fatalf("k1 token at %v: %v", at.Sub(t0), err)
		}
		if signer(at).ID != k2.ID {
			t.Fatalf("signer at %v is not k2", at.Sub(t0))
		}
	}

	// fail/once k1 is dropped its tokens fail with an unknown kid.
	dropAt := k1.NotAfter.Add(overlap + time.Second)
	rotate(dropAt)
	if !slices.Equal(kids(ks), []string{k2.ID}) {
		t.Fatalf("after drop: kids %v, want only k2", kids(ks))
	}
	err = verifyAt(tok, dropAt)
	if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("k1 token after drop: %v, want ErrUnknownKID", err)
	}

	// ok/k2 rotates the same way.
	rotate(k2.NotAfter.Add(-overlap))
	if ks.Len() != 2 || signer(k2.NotAfter.Add(-overlap)).ID == k2.ID {
		t.Fatalf("second rotation: kids %v", kids(ks))
	}
}

func TestRotateRecovers(t *testing.T) {
	const period, overlap = 30 * day, 2 * day
	ks, err := KeySet{}.Rotate(t0, rand.Reader, ES256, period, overlap, 0)
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := ks.Signer(t0)
	tests := []struct {
		name  string
		now   time.Time
		alg   Alg
		wantN int  // keys after Rotate
		newK  bool // whether the signer changed
	}{
		{"ok/missed the window: signer expired, new key", k1.NotAfter.Add(time.Hour), ES256, 2, true},
		{"ok/missed everything: old key dropped, new key", k1.NotAfter.Add(overlap + time.Hour), ES256, 1, true},
		{"ok/algorithm change rotates at once", t0.Add(day), EdDSA, 2, true},
		{"ok/same algorithm mid-period: no change", t0.Add(day), ES256, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ks.Signer(k1.NotAfter); !errors.Is(err, ErrNoSigner) {
				t.Fatalf("Signer at NotAfter: %v, want ErrNoSigner", err)
			}
			next, err := ks.Rotate(tt.now, rand.Reader, tt.alg, period, overlap, 0)
			if err != nil {
				t.Fatal(err)
			}
			if next.Len() != tt.wantN {
				t.Fatalf("%d keys, want %d", next.Len(), tt.wantN)
			}
			s, err := next.Signer(tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if (s.ID != k1.ID) != tt.newK || s.Alg != tt.alg {
				t.Fatalf("signer %s (%s), new=%v", s.ID, s.Alg, s.ID != k1.ID)
			}
			if ks.Len() != 1 {
				t.Fatal("Rotate modified its receiver")
			}
		})
	}
}

// TestRotationPublishesAhead: with a lead, the successor is published
// that long before it signs, and signing passes to it without a gap.
func TestRotationPublishesAhead(t *testing.T) {
	const period, overlap, lead = 30 * day, 5 * time.Minute, 10 * time.Minute
	ks, err := KeySet{}.Rotate(t0, rand.Reader, ES256, period, overlap, lead)
	if err != nil {
		t.Fatal(err)
	}
	k1, err := ks.Signer(t0)
	if err != nil || !k1.CreatedAt.Equal(t0) {
		t.Fatalf("the first key signs at once: %v %v", err, k1)
	}
	// ok/nothing is due before NotAfter - overlap - lead.
	due := k1.NotAfter.Add(-overlap - lead)
	if next, _ := ks.Rotate(due.Add(-time.Second), rand.Reader, ES256, period, overlap, lead); next.Len() != 1 {
		t.Fatalf("a successor before it is due: %d keys", next.Len())
	}
	// ok/a rotation a minute late publishes the successor, which signs a
	// lead later, before k1 stops.
	at := due.Add(time.Minute)
	ks, err = ks.Rotate(at, rand.Reader, ES256, period, overlap, lead)
	if err != nil || ks.Len() != 2 {
		t.Fatalf("rotation: %v, %d keys", err, ks.Len())
	}
	k2 := ks.Keys()[1]
	if !k2.CreatedAt.Equal(at.Add(lead)) || !k2.NotAfter.Equal(at.Add(lead+period)) || !k2.CreatedAt.Before(k1.NotAfter) {
		t.Fatalf("successor window %v..%v, k1 ends %v", k2.CreatedAt, k2.NotAfter, k1.NotAfter)
	}
	for _, c := range []struct {
		at   time.Time
		want string
	}{{at, k1.ID}, {k2.CreatedAt.Add(-time.Nanosecond), k1.ID}, {k2.CreatedAt, k2.ID}, {k1.NotAfter, k2.ID}} {
		if s, err := ks.Signer(c.at); err != nil || s.ID != c.want {
			t.Errorf("signer at %v: %v %v, want %s", c.at.Sub(at), s, err, c.want)
		}
	}
	// ok/another rotation while the successor is pending adds nothing.
	if again, _ := ks.Rotate(at.Add(5*time.Minute), rand.Reader, ES256, period, overlap, lead); again.Len() != 2 {
		t.Fatalf("a second successor: %d keys", again.Len())
	}
	// ok/a rotation so late that now + lead passes k1's end starts the
	// successor at k1's end: no gap.
	late, err := KeySet{keys: ks.keys[:1]}.Rotate(k1.NotAfter.Add(-time.Minute), rand.Reader, ES256, period, overlap, lead)
	if err != nil {
		t.Fatal(err)
	}
	if s := late.Keys()[1]; !s.CreatedAt.Equal(k1.NotAfter) {
		t.Fatalf("late successor starts %v, k1 ends %v", s.CreatedAt, k1.NotAfter)
	}
}

func TestRotateFails(t *testing.T) {
	tests := []struct {
		name                  string
		alg                   Alg
		period, overlap, lead time.Duration
		wantErr               error
	}{
		{"fail/unsupported alg", "HS256", 30 * day, day, 0, ErrUnsupportedAlg},
		{"fail/zero period", ES256, 0, 0, 0, ErrRotationPeriod},
		{"fail/negative overlap", ES256, 30 * day, -time.Second, 0, ErrRotationPeriod},
		{"fail/negative lead", ES256, 30 * day, day, -time.Second, ErrRotationPeriod},
		{"fail/overlap equals period", ES256, day, day, 0, ErrRotationPeriod},
		{"fail/overlap exceeds period", ES256, day, 2 * day, 0, ErrRotationPeriod},
		{"fail/overlap and lead fill the period", ES256, day, 12 * time.Hour, 12 * time.Hour, ErrRotationPeriod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := (KeySet{}).Rotate(t0, rand.Reader, tt.alg, tt.period, tt.overlap, tt.lead); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Rotate err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	t.Run("fail/random exhausted", func(t *testing.T) {
		// Ed25519 is the algorithm whose generation reads random.
		if _, err := (KeySet{}).Rotate(t0, &limitedReader{}, EdDSA, day, time.Hour, 0); err == nil {
			t.Fatal("Rotate succeeded without randomness")
		}
	})
}

type limitedReader struct{}

func (*limitedReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestNewKeySet(t *testing.T) {
	a := mustKey(t, ES256, t0)
	b := mustKey(t, EdDSA, t0.Add(time.Hour))
	t.Run("ok/sorted oldest first, signer newest", func(t *testing.T) {
		ks := mustKeySet(t, b, a)
		if !slices.Equal(kids(ks), []string{a.ID, b.ID}) {
			t.Fatalf("kids %v", kids(ks))
		}
		s, err := ks.Signer(t0.Add(2 * time.Hour))
		if err != nil || s.ID != b.ID {
			t.Fatalf("Signer = %v, %v; want b", s, err)
		}
		s, err = ks.Signer(t0)
		if err != nil || s.ID != a.ID {
			t.Fatalf("Signer before b exists = %v, %v; want a", s, err)
		}
	})
	t.Run("ok/copies are independent", func(t *testing.T) {
		ks := mustKeySet(t, a)
		got, _ := ks.Key(a.ID)
		got.NotAfter = t0
		if k, _ := ks.Key(a.ID); !k.NotAfter.Equal(a.NotAfter) {
			t.Fatal("changing a returned key changed the set")
		}
	})
	tests := []struct {
		name    string
		keys    []*SigningKey
		wantErr error
	}{
		{"fail/duplicate kid", []*SigningKey{a, b, a}, ErrDuplicateKID},
		{"fail/nil key", []*SigningKey{a, nil}, ErrInvalidKey},
		{"fail/no private key", []*SigningKey{{ID: "x", Alg: ES256}}, ErrInvalidKey},
		{"fail/alg does not fit key", []*SigningKey{{ID: a.ID, Alg: RS256, private: a.private}}, ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewKeySet(tt.keys...); !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewKeySet err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
