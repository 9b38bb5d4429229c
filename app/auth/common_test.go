package auth

import (
	"bytes"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCommonPasswordList(t *testing.T) {
	l, err := commonPasswordList()
	if err != nil {
		t.Fatal(err)
	}
	if l.read < 100_000 {
		t.Fatalf("the list has %d entries, want at least the 100,000 most common passwords", l.read)
	}
	if !slices.IsSorted(l.entries) || len(slices.Compact(slices.Clone(l.entries))) != len(l.entries) {
		t.Fatal("the kept entries are not sorted and distinct")
	}
	for _, e := range l.entries {
		if utf8.RuneCountInString(e) < minPasswordChars || e != strings.ToLower(e) {
			t.Fatalf("kept entry %q: shorter than %d characters or not lower-case", e, minPasswordChars)
		}
	}
	tests := []struct {
		password string
		want     bool
	}{
		{"password1234", true},
		{"aaaaaaaaaaaa", true},
		{"PASSWORD1234", true},
		{"PassWord1234", true},
		{"123456789012", true},
		{"qwertyuiop123", true},
		{"correct horse battery", false},
		{"password1234 ", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := l.contains(tt.password); got != tt.want {
			t.Errorf("contains(%q) = %v, want %v", tt.password, got, tt.want)
		}
	}
}

func TestReadPasswordListRefusesGarbage(t *testing.T) {
	if _, err := readPasswordList(strings.NewReader("not gzip")); err == nil {
		t.Fatal("read a list that is not gzip-compressed")
	}
}

// BenchmarkCommonPasswordListRead is the one-time cost of reading the
// embedded list (on the first password checked), and the memory the list
// keeps afterwards (retained-bytes).
func BenchmarkCommonPasswordListRead(b *testing.B) {
	b.ReportAllocs()
	var kept *passwordList
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for b.Loop() {
		l, err := readPasswordList(bytes.NewReader(commonPasswordsGzip))
		if err != nil {
			b.Fatal(err)
		}
		kept = l
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)), "retained-bytes")
	b.ReportMetric(float64(len(kept.entries)), "kept-entries")
	runtime.KeepAlive(kept)
}

// BenchmarkCommonPasswordListLookup is the cost of one check of a password
// against the list once it is read.
func BenchmarkCommonPasswordListLookup(b *testing.B) {
	l, err := commonPasswordList()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	passwords := []string{"Password1234", "correct horse battery staple", "qwertyuiop123", "a long enough password"}
	i := 0
	for b.Loop() {
		l.contains(passwords[i%len(passwords)])
		i++
	}
}
