package webhooks

import "testing"

// TestSkipPlainStopsAtEveryOtherByte puts each of the 256 byte values at
// each position of a plain run: skipPlain must never step over a byte
// that is not plain, and must step over every word that is all plain.
func TestSkipPlainStopsAtEveryOtherByte(t *testing.T) {
	for v := range 256 {
		for pos := range 24 {
			b := []byte("abcdefghijklmnopqrstuvwx")
			b[pos] = byte(v)
			got := skipPlain(b, 0)
			if !plainByte[v] && got > pos {
				t.Fatalf("byte %#x at %d: skipped to %d", v, pos, got)
			}
			if plainByte[v] && got != 24 {
				t.Fatalf("plain byte %#x at %d: stopped at %d of an all-plain run", v, pos, got)
			}
			if got%8 != 0 {
				t.Fatalf("stopped inside a word: %d", got)
			}
		}
	}
	if got := skipPlain([]byte("abcdefghij"), 0); got != 8 {
		t.Fatalf("a partial last word: stopped at %d, want 8", got)
	}
}
