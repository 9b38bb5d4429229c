package main

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// results is everything one run of the benchmark measured.
type results struct {
	Started  time.Time
	Orgs     int
	Workers  int           // workers of the max-rate runs
	Rate     int           // rate of the fixed-rate runs
	Duration time.Duration // length of each run
	Rounds   int           // slices each run is cut into
	Machine  string
	Rows     []row
	Checks   []check
	Notes    []string
}

// row is one line of the table: a max-rate run and a fixed-rate run of
// the same requests, and what the server counted meanwhile.
type row struct {
	Name  string
	Max   *outcome // nil: not run
	Fixed *outcome // nil: not run
	// Versus is the max-rate throughput as a ratio to other rows'.
	Versus string
	// HitRate is the share of cache lookups answered from memory; NaN:
	// not measured.
	HitRate float64
	// Statements and StoreCalls are per request; negative: not measured.
	Statements, StoreCalls float64
	// CPU is the CPU time the answering process used per request; 0: not
	// measured.
	CPU time.Duration
	RSS int64
}

// check compares a measurement with its target.
type check struct {
	What, Target, Got string
	Met               bool
}

// ratio formats a/b as "0.83x name".
func ratio(a, b float64, name string) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx %s", a/b, name)
}

// markdown renders the results as a Markdown document: the table, the
// targets and the notes.
func (r results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## make bench, %s: %s orgs\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), thousands(int64(r.Orgs)))
	fmt.Fprintf(&b, "%s. Each row: %s at max rate with %d workers (req/s), then %s at a fixed %d req/s (latencies), "+
		"in %d slices taking turns with the rows of its group.\n\n", r.Machine, r.Duration, r.Workers, r.Duration, r.Rate, r.Rounds)
	head := []string{"run", "req/s at max rate", "ratio", "p50", "p99", "p99.9", "errors", "cache hit rate",
		"DB statements/req", "webhook store calls/req", "CPU/req", "RSS"}
	rows := [][]string{head}
	for _, w := range r.Rows {
		rows = append(rows, w.cells())
	}
	table(&b, rows, []bool{false, true, false, true, true, true, true, true, true, true, true, true})
	if len(r.Checks) > 0 {
		b.WriteString("\nTargets on this machine:\n\n")
		rows := [][]string{{"target", "measured", "met"}}
		for _, c := range r.Checks {
			met := "no"
			if c.Met {
				met = "yes"
			}
			rows = append(rows, []string{c.What + " " + c.Target, c.Got, met})
		}
		table(&b, rows, []bool{false, true, false})
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

func (w row) cells() []string {
	c := []string{w.Name, "–", w.Versus, "–", "–", "–", "–", "–", "–", "–", "–", "–"}
	if w.Versus == "" {
		c[2] = "–"
	}
	var requests, errs int
	codes := map[int]int{}
	for _, o := range []*outcome{w.Max, w.Fixed} {
		if o == nil {
			continue
		}
		requests += o.Requests
		errs += o.Errors
		for code, n := range o.Codes {
			if code != 200 {
				codes[code] += n
			}
		}
	}
	if w.Max != nil {
		c[1] = thousands(int64(w.Max.Throughput() + 0.5))
	}
	if w.Fixed != nil {
		c[3], c[4], c[5] = millis(w.Fixed.Quantile(0.50)), millis(w.Fixed.Quantile(0.99)), millis(w.Fixed.Quantile(0.999))
	}
	if requests > 0 {
		c[6] = thousands(int64(errs)) + " of " + thousands(int64(requests))
		if errs > 0 {
			var by []string
			for _, code := range slices.Sorted(maps.Keys(codes)) {
				name := strconv.Itoa(code)
				if code == 0 {
					name = "no answer"
				}
				by = append(by, fmt.Sprintf("%s×%d", name, codes[code]))
			}
			c[6] += " (" + strings.Join(by, ", ") + ")"
		}
	}
	if w.HitRate == w.HitRate { // not NaN
		c[7] = fmt.Sprintf("%.2f %%", 100*w.HitRate)
	}
	if w.Statements >= 0 {
		c[8] = fmt.Sprintf("%.2f", w.Statements)
	}
	if w.StoreCalls >= 0 {
		c[9] = fmt.Sprintf("%.2f", w.StoreCalls)
	}
	if w.CPU > 0 {
		c[10] = fmt.Sprintf("%.0f µs", float64(w.CPU)/float64(time.Microsecond))
	}
	if w.RSS > 0 {
		c[11] = mib(w.RSS)
	}
	return c
}

// table writes rows (the first is the header) as a Markdown table with
// aligned columns; right marks the columns aligned to the right.
func table(b *strings.Builder, rows [][]string, right []bool) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, cell := range r {
			width[i] = max(width[i], len([]rune(cell)), 3)
		}
	}
	line := func(r []string) {
		b.WriteString("|")
		for i, cell := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			if right[i] {
				b.WriteString(" " + pad + cell + " |")
			} else {
				b.WriteString(" " + cell + pad + " |")
			}
		}
		b.WriteString("\n")
	}
	line(rows[0])
	b.WriteString("|")
	for i := range width {
		if right[i] {
			b.WriteString(" " + strings.Repeat("-", width[i]-1) + ": |")
		} else {
			b.WriteString(" " + strings.Repeat("-", width[i]) + " |")
		}
	}
	b.WriteString("\n")
	for _, r := range rows[1:] {
		line(r)
	}
}

// thousands formats n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// millis formats d in milliseconds with two decimals.
func millis(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
