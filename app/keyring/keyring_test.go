package keyring_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"byoc/app/keyring"
)

// key returns a distinct, deterministic 32-byte test key.
func key(label string) []byte {
	sum := sha256.Sum256([]byte("keyring test key " + label))
	return sum[:]
}

func hexKey(label string) string { return hex.EncodeToString(key(label)) }

func mustNew(t testing.TB, primary []byte, previous ...[]byte) *keyring.Keyring {
	t.Helper()
	k, err := keyring.New(primary, previous...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return k
}

func mustSeal(t testing.TB, k *keyring.Keyring, plaintext []byte, aad keyring.AAD) []byte {
	t.Helper()
	ct, err := k.Seal(plaintext, aad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return ct
}

var row = keyring.AAD{Table: "org_credentials", OrgID: "7c9e6679-7425-40de-944b-e07fc1f90ae7", Provider: "vapi"}

const payload = `{"api_key":"sk_live_51HxQpLKjd8s7f6g5h4j3k2l1qwertyuiop","assistant_id":"asst_2b7c1e4f9a","phone_number_id":"pn_8d3f2a1c7e","webhook_secret":"whsec_Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0","region":"us-east-1","default_voice":"jennifer-playht","transfer_number":"+14155550123","created_by":"admin@example.com"}`

// wantReason fails the test unless err is a *DecryptError with reason want
// that also matches ErrUndecryptable, and pt is nil.
func wantReason(t *testing.T, pt []byte, err error, want keyring.Reason) {
	t.Helper()
	if pt != nil {
		t.Errorf("plaintext = %q, want nil on failure", pt)
	}
	if !errors.Is(err, keyring.ErrUndecryptable) {
		t.Fatalf("err = %v, want one matching ErrUndecryptable", err)
	}
	var de *keyring.DecryptError
	if !errors.As(err, &de) {
		t.Fatalf("err = %T, want *keyring.DecryptError", err)
	}
	if de.Reason != want {
		t.Errorf("reason = %v (%v), want %v", de.Reason, err, want)
	}
}

func TestSealOpen(t *testing.T) {
	k := mustNew(t, key("primary"))
	tests := []struct {
		name      string
		plaintext []byte
	}{
		{"json payload", []byte(payload)},
		{"empty", []byte{}},
		{"nil", nil},
		{"one byte", []byte{0}},
		{"64 KiB", bytes.Repeat([]byte("abcdefgh"), 8<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := mustSeal(t, k, tt.plaintext, row)
			if got, want := len(ct), len(tt.plaintext)+33; got != want {
				t.Errorf("len(ciphertext) = %d, want %d", got, want)
			}
			if len(tt.plaintext) >= 8 && bytes.Contains(ct, tt.plaintext) {
				t.Error("ciphertext contains the plaintext")
			}
			got, err := k.Open(ct, row)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got == nil || !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open = %q, want %q (non-nil)", got, tt.plaintext)
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	k := mustNew(t, key("primary"))
	a := mustSeal(t, k, []byte(payload), row)
	b := mustSeal(t, k, []byte(payload), row)
	if bytes.Equal(a, b) {
		t.Fatal("sealing the same plaintext twice gave the same ciphertext")
	}
	if bytes.Equal(a[5:17], b[5:17]) {
		t.Error("sealing twice reused the nonce")
	}
}

func TestSealRejectsEmptyAAD(t *testing.T) {
	k := mustNew(t, key("primary"))
	tests := []struct {
		name  string
		aad   keyring.AAD
		field string
	}{
		{"no table", keyring.AAD{OrgID: "o", Provider: "p"}, "Table"},
		{"no org", keyring.AAD{Table: "t", Provider: "p"}, "OrgID"},
		{"no provider", keyring.AAD{Table: "t", OrgID: "o"}, "Provider"},
		{"zero", keyring.AAD{}, "Table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, err := k.Seal([]byte(payload), tt.aad)
			if err == nil || ct != nil {
				t.Fatalf("Seal = %x, %v; want nil and an error", ct, err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name field %s", err, tt.field)
			}
		})
	}
}

func TestOpenTampered(t *testing.T) {
	k := mustNew(t, key("primary"), key("old"))
	ct := mustSeal(t, k, []byte(payload), row)
	regions := []struct {
		name     string
		from, to int
		want     keyring.Reason
	}{
		{"format byte", 0, 1, keyring.ReasonUnknownFormat},
		{"key id", 1, 5, keyring.ReasonUnknownKey},
		{"nonce", 5, 17, keyring.ReasonAuthFailed},
		{"sealed data", 17, len(ct) - 16, keyring.ReasonAuthFailed},
		{"tag", len(ct) - 16, len(ct), keyring.ReasonAuthFailed},
	}
	for _, r := range regions {
		t.Run(r.name, func(t *testing.T) {
			for i := r.from; i < r.to; i++ {
				for bit := range 8 {
					bad := bytes.Clone(ct)
					bad[i] ^= 1 << bit
					pt, err := k.Open(bad, row)
					if err == nil {
						t.Fatalf("flipping bit %d of byte %d: Open succeeded", bit, i)
					}
					wantReason(t, pt, err, r.want)
				}
			}
		})
	}
	t.Run("key id swapped for another configured key", func(t *testing.T) {
		old := mustNew(t, key("old"))
		bad := bytes.Clone(ct)
		oldID, _ := hex.DecodeString(old.PrimaryID())
		copy(bad[1:5], oldID)
		pt, err := k.Open(bad, row)
		wantReason(t, pt, err, keyring.ReasonAuthFailed)
	})
}

func TestOpenTruncated(t *testing.T) {
	k := mustNew(t, key("primary"))
	ct := mustSeal(t, k, []byte(payload), row)
	for n := range len(ct) {
		pt, err := k.Open(ct[:n], row)
		if err == nil {
			t.Fatalf("Open of the first %d of %d bytes succeeded", n, len(ct))
		}
		// Below the 33-byte minimum the header alone tells; above it only the
		// tag check can.
		want := keyring.ReasonTruncated
		if n >= 33 {
			want = keyring.ReasonAuthFailed
		}
		wantReason(t, pt, err, want)
	}
}

func TestOpenOtherRow(t *testing.T) {
	k := mustNew(t, key("primary"))
	ct := mustSeal(t, k, []byte(payload), row)
	tests := []struct {
		name string
		aad  keyring.AAD
	}{
		{"other org", keyring.AAD{Table: row.Table, OrgID: "0f8fad5b-d9cb-469f-a165-70867728950e", Provider: row.Provider}},
		{"other provider", keyring.AAD{Table: row.Table, OrgID: row.OrgID, Provider: "twilio"}},
		{"other table", keyring.AAD{Table: "org_credentials_archive", OrgID: row.OrgID, Provider: row.Provider}},
		{"org id in upper case", keyring.AAD{Table: row.Table, OrgID: strings.ToUpper(row.OrgID), Provider: row.Provider}},
		{"empty", keyring.AAD{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := k.Open(ct, tt.aad)
			wantReason(t, pt, err, keyring.ReasonAuthFailed)
		})
	}

	// Concatenating the fields would make these two AADs equal.
	t.Run("field boundary moved", func(t *testing.T) {
		ct := mustSeal(t, k, []byte(payload), keyring.AAD{Table: "ab", OrgID: "c", Provider: "d"})
		pt, err := k.Open(ct, keyring.AAD{Table: "a", OrgID: "bc", Provider: "d"})
		wantReason(t, pt, err, keyring.ReasonAuthFailed)
	})
}

func TestRotation(t *testing.T) {
	old := mustNew(t, key("old"))
	oldCT := mustSeal(t, old, []byte(payload), row)

	t.Run("previous key still opens", func(t *testing.T) {
		for _, prev := range [][][]byte{
			{key("old")},
			{key("older"), key("old")},
			{key("old"), key("older")},
			{key("old"), key("old"), key("new")},
		} {
			k := mustNew(t, key("new"), prev...)
			got, err := k.Open(oldCT, row)
			if err != nil {
				t.Fatalf("Open with %d previous keys: %v", len(prev), err)
			}
			if string(got) != payload {
				t.Errorf("Open = %q, want the payload", got)
			}
		}
	})

	t.Run("dropped key is reported by id", func(t *testing.T) {
		k := mustNew(t, key("new"), key("older"))
		pt, err := k.Open(oldCT, row)
		wantReason(t, pt, err, keyring.ReasonUnknownKey)
		var de *keyring.DecryptError
		if errors.As(err, &de) && de.KeyID != old.PrimaryID() {
			t.Errorf("KeyID = %q, want %q", de.KeyID, old.PrimaryID())
		}
		msg := err.Error()
		if !strings.Contains(msg, old.PrimaryID()) || !strings.Contains(msg, "not configured") {
			t.Errorf("error %q should name key %s as not configured", msg, old.PrimaryID())
		}
	})

	t.Run("NeedsRotation", func(t *testing.T) {
		k := mustNew(t, key("new"), key("old"))
		newCT := mustSeal(t, k, []byte(payload), row)
		tests := []struct {
			name string
			ct   []byte
			want bool
		}{
			{"under primary", newCT, false},
			{"under primary, empty plaintext", mustSeal(t, k, nil, row), false},
			{"under previous", oldCT, true},
			{"under unknown key", mustSeal(t, mustNew(t, key("other")), []byte(payload), row), true},
			{"unknown format", append([]byte{0x02}, newCT[1:]...), true},
			{"header only", newCT[:5], false},
			{"shorter than header", newCT[:4], true},
			{"empty", nil, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := k.NeedsRotation(tt.ct); got != tt.want {
					t.Errorf("NeedsRotation = %v, want %v", got, tt.want)
				}
			})
		}
	})
}

// TestWireFormat seals by hand, following the package documentation, so a
// change to the layout, the key id or the AAD encoding (which would strand
// every stored ciphertext) fails here.
func TestWireFormat(t *testing.T) {
	k := mustNew(t, key("primary"))
	mac := hmac.New(sha256.New, key("primary"))
	mac.Write([]byte("byoc keyring key id v1"))
	id := mac.Sum(nil)[:4]
	if got, want := k.PrimaryID(), hex.EncodeToString(id); got != want {
		t.Fatalf("PrimaryID = %s, want %s", got, want)
	}

	block, err := aes.NewCipher(key("primary"))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	header := append([]byte{0x01}, id...)
	nonce := bytes.Repeat([]byte{0x42}, 12)
	fields := func(b []byte) []byte {
		for _, f := range []string{row.Table, row.OrgID, row.Provider} {
			b = binary.AppendUvarint(b, uint64(len(f)))
			b = append(b, f...)
		}
		return b
	}
	seal := func(aad []byte) []byte {
		ct := append(bytes.Clone(header), nonce...)
		return aead.Seal(ct, nonce, []byte(payload), aad)
	}

	t.Run("documented layout opens", func(t *testing.T) {
		got, err := k.Open(seal(fields(bytes.Clone(header))), row)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if string(got) != payload {
			t.Errorf("Open = %q, want the payload", got)
		}
	})
	t.Run("header not in AAD is rejected", func(t *testing.T) {
		pt, err := k.Open(seal(fields(nil)), row)
		wantReason(t, pt, err, keyring.ReasonAuthFailed)
	})
	t.Run("Seal output opens by hand", func(t *testing.T) {
		ct := mustSeal(t, k, []byte(payload), row)
		if !bytes.Equal(ct[:5], header) {
			t.Fatalf("header = %x, want %x", ct[:5], header)
		}
		got, err := aead.Open(nil, ct[5:17], ct[17:], fields(bytes.Clone(header)))
		if err != nil {
			t.Fatalf("aead.Open: %v", err)
		}
		if string(got) != payload {
			t.Errorf("aead.Open = %q, want the payload", got)
		}
	})
}

func TestNoRepeatedNonce(t *testing.T) {
	const n = 100_000
	k := mustNew(t, key("primary"))
	seen := make(map[[12]byte]struct{}, n)
	for i := range n {
		ct := mustSeal(t, k, []byte("x"), row)
		nonce := [12]byte(ct[5:17])
		if _, dup := seen[nonce]; dup {
			t.Fatalf("nonce %x repeated after %d encryptions", nonce, i)
		}
		seen[nonce] = struct{}{}
	}
}

func TestConcurrentUse(t *testing.T) {
	k := mustNew(t, key("primary"), key("old"))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 200 {
				ct, err := k.Seal([]byte(payload), row)
				if err == nil {
					_, err = k.Open(ct, row)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		primary  []byte
		previous [][]byte
		wantErr  string // "" means success
	}{
		{"primary only", key("p"), nil, ""},
		{"with previous", key("p"), [][]byte{key("a"), key("b")}, ""},
		{"duplicate previous", key("p"), [][]byte{key("a"), key("a"), key("p")}, ""},
		{"nil primary", nil, nil, "primary key: must be 32 bytes, got 0"},
		{"short primary", key("p")[:31], nil, "primary key: must be 32 bytes, got 31"},
		{"long primary", append(key("p"), 0), nil, "primary key: must be 32 bytes, got 33"},
		{"AES-128 previous", key("p"), [][]byte{key("a"), key("b")[:16]}, "previous key 2: must be 32 bytes, got 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := keyring.New(tt.primary, tt.previous...)
			if tt.wantErr == "" {
				if err != nil || k == nil {
					t.Fatalf("New = %v, %v; want a keyring", k, err)
				}
				if got, want := k.PrimaryID(), mustNew(t, tt.primary).PrimaryID(); got != want {
					t.Errorf("PrimaryID = %s, want %s (the primary's own id)", got, want)
				}
				return
			}
			if err == nil || k != nil {
				t.Fatalf("New = %v, %v; want nil and an error containing %q", k, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestNewKeyIDCollision finds two different keys with the same 4-byte key id
// (a birthday search, about 2^16 keys) and checks New refuses to hold both:
// Open could not tell which one a ciphertext names.
func TestNewKeyIDCollision(t *testing.T) {
	seen := make(map[[4]byte][]byte)
	var a, b []byte
	for i := 0; a == nil; i++ {
		k := key(strconv.Itoa(i))
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte("byoc keyring key id v1"))
		id := [4]byte(mac.Sum(nil))
		if other, ok := seen[id]; ok {
			a, b = other, k
		}
		seen[id] = k
	}
	if mustNew(t, a).PrimaryID() != mustNew(t, b).PrimaryID() {
		t.Fatal("the search found keys whose PrimaryIDs differ; the key id derivation changed")
	}
	k, err := keyring.New(key("p"), a, b)
	if err == nil || k != nil {
		t.Fatalf("New = %v, %v; want nil and an error", k, err)
	}
	if want := "previous key 2: key id " + mustNew(t, a).PrimaryID(); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestParse(t *testing.T) {
	p, a, b := hexKey("p"), hexKey("a"), hexKey("b")
	tests := []struct {
		name     string
		primary  string
		previous string
		wantErr  string   // "" means success
		opens    []string // labels of keys whose ciphertexts must open
	}{
		{"primary only", p, "", "", []string{"p"}},
		{"upper case", strings.ToUpper(p), "", "", []string{"p"}},
		{"whitespace", " " + p + "\n", " \t", "", []string{"p"}},
		{"previous list", p, a + " , " + b, "", []string{"p", "a", "b"}},
		{"previous repeats primary", p, p, "", []string{"p"}},
		{"empty primary", "", "", "primary key: is empty", nil},
		{"primary 63 characters", p[:63], "", "primary key: must be 64 hex characters, got 63", nil},
		{"primary 65 characters", p + "0", "", "primary key: must be 64 hex characters, got 65", nil},
		{"primary not hex", "g" + p[1:], "", "primary key: must be 64 hex characters, found a character that is not hex", nil},
		{"primary as 0x", "0x" + p[:62], "", "primary key: must be 64 hex characters, found a character that is not hex", nil},
		{"previous 2 short", p, a + "," + b[:63], "previous key 2: must be 64 hex characters, got 63", nil},
		{"previous 1 not hex", p, "z" + a[1:] + "," + b, "previous key 1: must be 64 hex characters, found a character that is not hex", nil},
		{"previous empty item", p, a + ",," + b, "previous key 2: is empty", nil},
		{"previous trailing comma", p, a + ",", "previous key 2: is empty", nil},
		{"previous separated by semicolon", p, a + ";" + b, "previous key 1: must be 64 hex characters, got 129", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := keyring.Parse(tt.primary, tt.previous)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				for _, label := range tt.opens {
					ct := mustSeal(t, mustNew(t, key(label)), []byte(payload), row)
					if _, err := k.Open(ct, row); err != nil {
						t.Errorf("ciphertext under key %q: %v", label, err)
					}
				}
				return
			}
			if err == nil || k != nil {
				t.Fatalf("Parse = %v, %v; want nil and an error containing %q", k, err, tt.wantErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q does not contain %q", msg, tt.wantErr)
			}
			// No run of 8 characters of any input may appear in the message.
			for _, in := range []string{tt.primary, tt.previous} {
				for i := 0; i+8 <= len(in); i++ {
					if w := in[i : i+8]; strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
						t.Fatalf("error %q contains input characters %q", msg, w)
					}
				}
			}
		})
	}
}

func TestLogSafety(t *testing.T) {
	k := mustNew(t, key("primary"), key("old"))
	s := k.String()
	if !strings.Contains(s, k.PrimaryID()) || !strings.Contains(s, "1 previous") {
		t.Errorf("String = %q, want the primary id and the previous count", s)
	}
	for _, label := range []string{"primary", "old"} {
		if strings.Contains(s, hexKey(label)[:8]) {
			t.Errorf("String = %q reveals key %q", s, label)
		}
	}
}

func FuzzOpen(f *testing.F) {
	k := mustNew(f, key("primary"), key("old"))
	known := []string{payload, "", `{"api_key":"x"}`}
	for _, p := range known {
		f.Add(mustSeal(f, k, []byte(p), row))
	}
	f.Add(mustSeal(f, mustNew(f, key("old")), []byte(payload), row))
	f.Add(mustSeal(f, mustNew(f, key("dropped")), []byte(payload), row))
	f.Add([]byte{})
	f.Add([]byte{0x01})
	f.Add([]byte{0x02, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, ct []byte) {
		pt, err := k.Open(ct, row)
		if err != nil {
			var de *keyring.DecryptError
			if pt != nil || !errors.Is(err, keyring.ErrUndecryptable) || !errors.As(err, &de) {
				t.Fatalf("Open = %q, %v (%T); want nil and a *DecryptError", pt, err, err)
			}
			if de.Reason < keyring.ReasonTruncated || de.Reason > keyring.ReasonAuthFailed {
				t.Fatalf("unexpected reason %v", de.Reason)
			}
			return
		}
		for _, p := range known {
			if string(pt) == p {
				return
			}
		}
		t.Fatalf("Open accepted %x and returned %q, which was never sealed", ct, pt)
	})
}

func benchmarkRing(b *testing.B) *keyring.Keyring {
	return mustNew(b, key("primary"), key("old"))
}

func BenchmarkSeal(b *testing.B) {
	k := benchmarkRing(b)
	pt := []byte(payload)
	b.ReportAllocs()
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		if _, err := k.Seal(pt, row); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := benchmarkRing(b)
	ct := mustSeal(b, k, []byte(payload), row)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := k.Open(ct, row); err != nil {
			b.Fatal(err)
		}
	}
}
