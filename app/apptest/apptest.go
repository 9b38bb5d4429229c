// Package apptest holds helpers for tests only. Import it only from _test.go
// files; production code must not depend on it.
package apptest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogBuffer is a log sink that tests can read while the code under test
// writes to it. It is safe for concurrent use; the zero value is ready.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Clock is a settable time source whose Now method can stand in for
// time.Now. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that reads t until it is set or advanced.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// RandomHex returns n random bytes in lower-case hex (2n characters). Hex
// never spells the sandbox stand-ins' trigger words (such as "eu", which
// needs a "u"), so keys built from it behave as ordinary keys.
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("apptest: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// ClosedURL returns the http URL of a local port nothing listens on: a
// connection to it is refused at once.
func ClosedURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// AssertNoSecret fails the test for each of secrets that appears in text;
// what names the text in the message ("the log", "the error"). Empty
// secrets are skipped. The message shows where the secret is and its first
// characters, never the text or the whole secret.
func AssertNoSecret(t testing.TB, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if i := strings.Index(text, s); i >= 0 {
			t.Errorf("%s reveals a secret starting %.4q (at byte %d of %d)", what, s, i, len(text))
		}
	}
}

// FragmentLength is the shortest run of characters AssertNoFragment looks
// for.
const FragmentLength = 10

// AssertNoFragment fails the test for each of secrets of which text holds,
// in any case, a run of FragmentLength characters, or of its hex encoding,
// or of its base64 encoding (standard or URL alphabet, at any of the three
// alignments it can have inside a longer encoded text): what is left when
// a provider echoes a key upper-cased, cut short or encoded. Messages are
// as AssertNoSecret's.
func AssertNoFragment(t testing.TB, what, text string, secrets ...string) {
	t.Helper()
	folded := strings.ToLower(text)
	for _, s := range secrets {
		if at := fragmentAt(folded, s); at >= 0 {
			t.Errorf("%s holds a fragment of a secret starting %.4q (at byte %d of %d)", what, s, at, len(text))
		}
	}
}

// fragmentAt returns where folded (lower-cased text) holds a fragment of s
// as AssertNoFragment looks for them, or -1.
func fragmentAt(folded, s string) int {
	for _, form := range fragmentForms(s) {
		form = strings.ToLower(form)
		for i := 0; i+FragmentLength <= len(form); i++ {
			if at := strings.Index(folded, form[i:i+FragmentLength]); at >= 0 {
				return at
			}
		}
	}
	return -1
}

// fragmentForms returns s, its hex encoding and the parts of its base64
// encodings that depend on s alone.
func fragmentForms(s string) []string {
	if s == "" {
		return nil
	}
	forms := []string{s, hex.EncodeToString([]byte(s))}
	for offset := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, offset), s...))
		from, to := 0, 4*((offset+len(s))/3)
		if offset > 0 {
			from = 4
		}
		if to > from {
			forms = append(forms, enc[from:to], strings.NewReplacer("+", "-", "/", "_").Replace(enc[from:to]))
		}
	}
	return forms
}

// VapiSignature returns the hex HMAC-SHA256 of "{timestamp}.{body}" keyed by
// secret: the signature Vapi sends in X-Signature for a webhook.
func VapiSignature(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
