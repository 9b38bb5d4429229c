// Package apptest holds helpers for tests only. Import it only from _test.go
// files; production code must not depend on it.
package apptest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"sync"
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
