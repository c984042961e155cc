// Package password owns what the identity service does with passwords and
// login names before anything is stored: argon2id hashing in the PHC string
// format, verification that refuses tampered parameters before spending any
// work, the password policy (length, common passwords, the user's own
// address), e-mail address normalisation, and the schedule that locks an
// account after consecutive failed logins.
//
// Everything here is a pure function or a small value type: no storage, no
// clock and no global randomness. Callers pass the salt source
// (crypto/rand.Reader in production) and the time of the last failure.
//
// Passwords are Unicode text: Policy.Check measures them, and Hash, Verify
// and VerifyDummy hash them, in Normalization Form C (NFC), as RFC 8265's
// OpaqueString profile asks, so that "é" typed as one code point or as "e"
// plus a combining accent is the same password on every keyboard. That is
// part of the stored format: a hash made from the NFD bytes of a password
// would not verify.
//
// The package depends on the standard library and golang.org/x/crypto,
// golang.org/x/net and golang.org/x/text.
package password
