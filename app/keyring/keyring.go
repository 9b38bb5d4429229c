// Package keyring encrypts stored provider credentials with AES-256-GCM under
// versioned keys.
//
// A ciphertext is laid out as
//
//	format (1 byte, 0x01) | key id (4 bytes) | nonce (12 bytes) | sealed data with its 16-byte tag
//
// The key id is the first 4 bytes of HMAC-SHA256(key, "byoc keyring key id v1"),
// so every ciphertext names the key that opens it and the order of previous
// keys never matters. The nonce is read from crypto/rand for every encryption.
//
// The additional authenticated data is the 5 header bytes (format and key id)
// followed by the row's table, org id and provider, each written as its length
// (a uvarint, as encoding/binary.AppendUvarint writes it) and then its bytes.
// A ciphertext therefore opens only for the row it was sealed for, and its
// header cannot be changed.
//
// To rotate, configure the new key as primary and the old one as previous:
// new writes use the new key, old rows still open, and NeedsRotation finds the
// rows to re-encrypt before the old key is dropped.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	formatV1   byte = 0x01
	keyLen          = 32
	keyIDLen        = 4
	headerLen       = 1 + keyIDLen
	nonceLen        = 12
	tagLen          = 16
	overhead        = headerLen + nonceLen + tagLen
	keyIDLabel      = "byoc keyring key id v1"
)

type keyID [keyIDLen]byte

func (id keyID) String() string { return hex.EncodeToString(id[:]) }

func deriveKeyID(key []byte) keyID {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(keyIDLabel))
	return keyID(mac.Sum(nil)[:keyIDLen])
}

// Keyring seals with its primary key and opens with the primary or any
// previous key. It holds no key bytes, only the prepared ciphers, never
// changes after construction and is safe for concurrent use. Build it with
// New or Parse.
type Keyring struct {
	primaryID   keyID
	primaryAEAD cipher.AEAD
	aeads       map[keyID]cipher.AEAD
}

// New returns a Keyring that seals with primary and also opens ciphertexts
// made with any of previous. Every key must be exactly 32 bytes; a key given
// twice is used once. Errors name the offending key by position ("previous
// key 2") and never contain key material.
func New(primary []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: make(map[keyID]cipher.AEAD, 1+len(previous))}
	seen := make(map[keyID][]byte, 1+len(previous))
	add := func(key []byte) (keyID, error) {
		if len(key) != keyLen {
			return keyID{}, fmt.Errorf("must be %d bytes, got %d", keyLen, len(key))
		}
		id := deriveKeyID(key)
		if other, ok := seen[id]; ok {
			if hmac.Equal(other, key) {
				return id, nil
			}
			return keyID{}, fmt.Errorf("key id %s is shared with another, different key; generate a new key", id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return keyID{}, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return keyID{}, err
		}
		seen[id] = key
		k.aeads[id] = aead
		return id, nil
	}

	id, err := add(primary)
	if err != nil {
		return nil, fmt.Errorf("keyring: primary key: %w", err)
	}
	k.primaryID, k.primaryAEAD = id, k.aeads[id]
	for i, key := range previous {
		if _, err := add(key); err != nil {
			return nil, fmt.Errorf("keyring: previous key %d: %w", i+1, err)
		}
	}
	return k, nil
}

// Parse builds a Keyring from configuration text: primaryHex is one key as 64
// hex characters, previousCSV is a comma-separated list of such keys (an
// empty string means none). Whitespace around each key is ignored. Errors say
// which key is wrong and why ("previous key 2: must be 64 hex characters,
// got 63") and never contain key material.
func Parse(primaryHex, previousCSV string) (*Keyring, error) {
	primary, err := decodeKey(primaryHex)
	if err != nil {
		return nil, fmt.Errorf("keyring: primary key: %w", err)
	}
	var previous [][]byte
	if strings.TrimSpace(previousCSV) != "" {
		for i, item := range strings.Split(previousCSV, ",") {
			key, err := decodeKey(item)
			if err != nil {
				return nil, fmt.Errorf("keyring: previous key %d: %w", i+1, err)
			}
			previous = append(previous, key)
		}
	}
	return New(primary, previous...)
}

// decodeKey decodes one hex key. Its errors describe the input only by
// length, never by content.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("is empty")
	}
	if len(s) != 2*keyLen {
		return nil, fmt.Errorf("must be %d hex characters, got %d", 2*keyLen, utf8.RuneCountInString(s))
	}
	key := make([]byte, keyLen)
	// hex.Decode's error quotes the offending character, so it is not wrapped.
	if _, err := hex.Decode(key, []byte(s)); err != nil {
		return nil, fmt.Errorf("must be %d hex characters, found a character that is not hex", 2*keyLen)
	}
	return key, nil
}

// PrimaryID returns the id of the primary key as 8 hex characters, the same
// id that DecryptError.KeyID reports. It is safe to log.
func (k *Keyring) PrimaryID() string { return k.primaryID.String() }

// String describes the keyring by key ids only, so printing or logging a
// Keyring is safe.
func (k *Keyring) String() string {
	return fmt.Sprintf("keyring(primary %s, %d previous)", k.primaryID, len(k.aeads)-1)
}

// AAD names the row a ciphertext belongs to. Open succeeds only with the same
// Table, OrgID and Provider that Seal was given, byte for byte.
type AAD struct {
	Table    string
	OrgID    string
	Provider string
}

func (a AAD) validate() error {
	switch {
	case a.Table == "":
		return errors.New("keyring: AAD.Table is empty")
	case a.OrgID == "":
		return errors.New("keyring: AAD.OrgID is empty")
	case a.Provider == "":
		return errors.New("keyring: AAD.Provider is empty")
	}
	return nil
}

// encode returns header followed by each field as a uvarint length and its
// bytes, so no two different AADs encode the same.
func (a AAD) encode(header []byte) []byte {
	fields := [...]string{a.Table, a.OrgID, a.Provider}
	n := len(header)
	for _, f := range fields {
		n += binary.MaxVarintLen64 + len(f)
	}
	b := make([]byte, 0, n)
	b = append(b, header...)
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// Seal encrypts plaintext under the primary key with a fresh random nonce,
// bound to aad. The result is 33 bytes longer than plaintext. It fails only
// when a field of aad is empty (binding every row to the same empty AAD would
// make moved rows undetectable) or when the system's randomness fails.
func (k *Keyring) Seal(plaintext []byte, aad AAD) ([]byte, error) {
	if err := aad.validate(); err != nil {
		return nil, err
	}
	out := make([]byte, headerLen+nonceLen, overhead+len(plaintext))
	out[0] = formatV1
	copy(out[1:headerLen], k.primaryID[:])
	nonce := out[headerLen:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keyring: reading a nonce: %w", err)
	}
	return k.primaryAEAD.Seal(out, nonce, plaintext, aad.encode(out[:headerLen])), nil
}

// Open decrypts a ciphertext made by Seal with the key named in its header,
// checking that it was sealed for aad. On failure it returns nil plaintext
// and a *DecryptError, which matches ErrUndecryptable with errors.Is and whose
// Reason says what went wrong. It never returns partial plaintext. A
// successful Open of an empty plaintext returns an empty, non-nil slice.
func (k *Keyring) Open(ciphertext []byte, aad AAD) ([]byte, error) {
	if len(ciphertext) == 0 {
		return nil, &DecryptError{Reason: ReasonTruncated, detail: "ciphertext is empty"}
	}
	if ciphertext[0] != formatV1 {
		return nil, &DecryptError{Reason: ReasonUnknownFormat,
			detail: fmt.Sprintf("unknown format byte 0x%02x (this keyring writes 0x%02x)", ciphertext[0], formatV1)}
	}
	if len(ciphertext) < overhead {
		return nil, &DecryptError{Reason: ReasonTruncated,
			detail: fmt.Sprintf("ciphertext is %d bytes, shorter than the %d-byte minimum (truncated)", len(ciphertext), overhead)}
	}
	header := ciphertext[:headerLen]
	id := keyID(header[1:])
	aead, ok := k.aeads[id]
	if !ok {
		return nil, &DecryptError{Reason: ReasonUnknownKey, KeyID: id.String(),
			detail: fmt.Sprintf("encrypted with key %s, which is not configured (add it to the previous keys)", id)}
	}
	nonce, sealed := ciphertext[headerLen:headerLen+nonceLen], ciphertext[headerLen+nonceLen:]
	plaintext, err := aead.Open(nil, nonce, sealed, aad.encode(header))
	if err != nil {
		return nil, &DecryptError{Reason: ReasonAuthFailed, KeyID: id.String(),
			detail: fmt.Sprintf("authentication failed under key %s: the data was altered or belongs to another table, org or provider", id)}
	}
	if plaintext == nil {
		plaintext = []byte{}
	}
	return plaintext, nil
}

// NeedsRotation reports whether ciphertext is not sealed under the primary
// key and should be re-encrypted with Seal. It reads only the header and does
// not authenticate; anything that is not a format-1 ciphertext under the
// primary key, including malformed input, reports true, so a re-encryption
// pass meets it and Open explains what is wrong.
func (k *Keyring) NeedsRotation(ciphertext []byte) bool {
	return len(ciphertext) < headerLen || ciphertext[0] != formatV1 || keyID(ciphertext[1:headerLen]) != k.primaryID
}

// ErrUndecryptable matches, with errors.Is, every error Open returns.
var ErrUndecryptable = errors.New("keyring: cannot decrypt")

// Reason says why Open failed.
type Reason int

// The reasons Open can fail.
const (
	// ReasonTruncated: the ciphertext is shorter than any ciphertext Seal makes.
	ReasonTruncated Reason = iota + 1
	// ReasonUnknownFormat: the first byte is not a format this keyring knows.
	ReasonUnknownFormat
	// ReasonUnknownKey: the header names a key that is not in the keyring,
	// typically one dropped from the previous keys too early.
	ReasonUnknownKey
	// ReasonAuthFailed: the key is known but the data was altered, or it was
	// sealed for another table, org or provider.
	ReasonAuthFailed
)

// String returns a short name for the reason, suitable as a log attribute.
func (r Reason) String() string {
	switch r {
	case ReasonTruncated:
		return "truncated"
	case ReasonUnknownFormat:
		return "unknown_format"
	case ReasonUnknownKey:
		return "unknown_key"
	case ReasonAuthFailed:
		return "auth_failed"
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// DecryptError is the error Open returns. Its text contains no plaintext or
// key material and is meant for operators, e.g. "keyring: cannot decrypt:
// encrypted with key 1a2b3c4d, which is not configured (...)".
type DecryptError struct {
	Reason Reason
	// KeyID is the hex id of the key named in the header, or "" when the
	// header could not be read.
	KeyID  string
	detail string
}

// Error returns the operator-facing description of the failure.
func (e *DecryptError) Error() string { return ErrUndecryptable.Error() + ": " + e.detail }

// Unwrap returns ErrUndecryptable, so errors.Is(err, ErrUndecryptable) holds
// for every DecryptError.
func (e *DecryptError) Unwrap() error { return ErrUndecryptable }
