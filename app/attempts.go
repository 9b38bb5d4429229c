package app

import "time"

// AttemptKey names one count of the shared attempt limits: Kind says what is
// counted (such as failed sign-ins per client address), Hash is a keyed
// 16-byte hash of what it is counted for (never the e-mail, address or org
// itself), and Window is the length of the count's fixed window.
type AttemptKey struct {
	Kind   string
	Hash   []byte
	Window time.Duration
}

// AttemptCount is one key's counts as an attempt left them: the start of
// its current fixed window, the attempts counted in that window (Hits) and
// in the window just before it (PreviousHits).
type AttemptCount struct {
	Kind         string
	Hash         []byte
	WindowStart  time.Time
	Hits         int
	PreviousHits int
}
