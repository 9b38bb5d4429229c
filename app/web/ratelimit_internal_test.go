package web

import (
	"testing"
	"time"
)

func TestAttemptWindow(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	w := newAttemptWindow(3, time.Minute, func() time.Time { return now })
	steps := []struct {
		advance time.Duration
		key     string
		ok      bool
	}{
		{0, "a", true},
		{time.Second, "a", true},
		{time.Second, "a", true},
		{time.Second, "a", false}, // the 4th within a minute
		{0, "b", true},            // keys count apart
		{time.Second, "a", false}, // refused attempts count too
		// 66s after a's window opened: the sliding window still covers
		// most of the previous one (5 attempts * 54/60 + 1 > 3).
		{61 * time.Second, "a", false},
		// 2 minutes after the last attempt, a starts afresh.
		{2 * time.Minute, "a", true},
		{0, "a", true},
		{0, "a", true},
		{0, "a", false},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ok, retry := w.allow(s.key)
		if ok != s.ok {
			t.Fatalf("step %d (%s): allowed %v, want %v", i, s.key, ok, s.ok)
		}
		if !ok && (retry < time.Second || retry > time.Minute) {
			t.Fatalf("step %d: retry after %v", i, retry)
		}
	}
	// The sweep drops keys idle for two windows.
	now = now.Add(3 * time.Minute)
	w.allow("c")
	if _, ok := w.buckets["b"]; ok || len(w.buckets) != 1 {
		t.Fatalf("after the sweep: %d buckets", len(w.buckets))
	}
}
