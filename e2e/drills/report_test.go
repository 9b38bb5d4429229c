//go:build !e2e

package drills

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// table is the drills' figures, one row per figure, printed when the run
// ends (and written to -drills.out).
type table struct {
	mu   sync.Mutex
	rows [][3]string
}

var report table

func (r *table) add(drill, figure, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, [3]string{drill, figure, fmt.Sprintf(format, args...)})
}

// String renders the rows as a Markdown table ("" without rows).
func (r *table) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rows) == 0 {
		return ""
	}
	head := [3]string{"drill", "figure", "value"}
	width := [3]int{}
	for _, row := range append([][3]string{head}, r.rows...) {
		for i, cell := range row {
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	line := func(row [3]string) {
		for i, cell := range row {
			b.WriteString("| " + cell + strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell)) + " ")
		}
		b.WriteString("|\n")
	}
	line(head)
	line([3]string{strings.Repeat("-", width[0]), strings.Repeat("-", width[1]), strings.Repeat("-", width[2])})
	for _, row := range r.rows {
		line(row)
	}
	return b.String()
}
