package token

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
)

func TestSealOpen(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, KEKSize)
	k := mustKey(t, ES256, t0)
	keyFile, err := MarshalPrivate(k)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		plaintext []byte
	}{
		{"ok/key file", keyFile},
		{"ok/empty", []byte{}},
		{"ok/one byte", []byte{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := Seal(tt.plaintext, kek, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != 1+nonceSize+len(tt.plaintext)+tagSize {
				t.Fatalf("sealed length %d", len(sealed))
			}
			if len(tt.plaintext) > 8 && bytes.Contains(sealed, tt.plaintext[:8]) {
				t.Fatal("sealed data contains the plaintext")
			}
			again, err := Seal(tt.plaintext, kek, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(sealed, again) {
				t.Fatal("two seals are identical: nonce reused")
			}
			plain, err := Open(sealed, kek)
			if err != nil || !bytes.Equal(plain, tt.plaintext) {
				t.Fatalf("Open = %q, %v", plain, err)
			}
		})
	}
	t.Run("ok/sealed key reloads", func(t *testing.T) {
		sealed, err := Seal(keyFile, kek, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := Open(sealed, kek)
		if err != nil {
			t.Fatal(err)
		}
		back, err := UnmarshalPrivate(plain)
		if err != nil || back.ID != k.ID {
			t.Fatalf("UnmarshalPrivate = %v, %v", back, err)
		}
	})
}

func TestOpenFails(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, KEKSize)
	otherKEK := bytes.Repeat([]byte{8}, KEKSize)
	sealed, err := Seal([]byte("a private key"), kek, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name    string
		sealed  []byte
		kek     []byte
		wantErr error
	}{
		{"fail/wrong kek", sealed, otherKEK, ErrUnseal},
		{"fail/empty", nil, kek, ErrUnseal},
		{"fail/version only", sealed[:1], kek, ErrUnseal},
		{"fail/truncated to header", sealed[:1+nonceSize+tagSize-1], kek, ErrUnseal},
		{"fail/truncated by one", sealed[:len(sealed)-1], kek, ErrUnseal},
		{"fail/extended by one", append(bytes.Clone(sealed), 0), kek, ErrUnseal},
		{"fail/version tampered", flip(0), kek, ErrUnseal},
		{"fail/nonce tampered", flip(1), kek, ErrUnseal},
		{"fail/ciphertext tampered", flip(1 + nonceSize), kek, ErrUnseal},
		{"fail/tag tampered", flip(len(sealed) - 1), kek, ErrUnseal},
		{"fail/kek too short", sealed, kek[:16], ErrKEKSize},
		{"fail/kek one short", sealed, kek[:31], ErrKEKSize},
		{"fail/kek too long", sealed, append(bytes.Clone(kek), 0), ErrKEKSize},
		{"fail/no kek", sealed, nil, ErrKEKSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plain, err := Open(tt.sealed, tt.kek)
			if !errors.Is(err, tt.wantErr) || plain != nil {
				t.Fatalf("Open = %q, %v; want %v", plain, err, tt.wantErr)
			}
		})
	}
}

func TestSealFails(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, KEKSize)
	tests := []struct {
		name    string
		kek     []byte
		random  io.Reader
		wantErr error
	}{
		{"fail/kek too short", kek[:16], rand.Reader, ErrKEKSize},
		{"fail/kek too long", append(bytes.Clone(kek), 1), rand.Reader, ErrKEKSize},
		{"fail/random exhausted", kek, bytes.NewReader(make([]byte, nonceSize-1)), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := Seal([]byte("x"), tt.kek, tt.random)
			if !errors.Is(err, tt.wantErr) || sealed != nil {
				t.Fatalf("Seal = %x, %v; want %v", sealed, err, tt.wantErr)
			}
		})
	}
}
