package backfill

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Outcome is what became of one legacy row.
type Outcome string

// Outcomes.
const (
	Migrated Outcome = "migrated"
	Skipped  Outcome = "skipped"
	Failed   Outcome = "failed"
)

// Legacy tables, as the report names them.
const (
	TableIntegrations = "integrations"
	TableAgents       = "agents"
)

// Reasons a row is skipped or fails (besides the legacy format's errors and
// a provider's refusal).
const (
	ReasonAlreadyMigrated = "already migrated"
	ReasonNoOrg           = "the org does not exist"
	ReasonBadOrgID        = "the org id is not a UUID"
	ReasonUnknownProvider = "not a provider of BYOC"
	ReasonDuplicate       = "duplicate of another row"
	ReasonConflict        = "another row for the same org and provider differs or cannot be read"
	ReasonKept            = "BYOC already holds other credentials of this provider for the org (kept)"
	ReasonMeanwhile       = "saved in BYOC while the backfill ran (kept)"
	ReasonBadAssistant    = "the assistant id is not a Vapi assistant id (a UUID)"
	ReasonBadRole         = "the role is neither inbound nor outbound"
	ReasonRoleConflict    = "another row gives the org a different assistant for this role"
	ReasonAssistantTwice  = "the same assistant is given to another org or role"
	ReasonAssistantTaken  = "the assistant belongs to another org, or another role, in BYOC"
	ReasonAssistantKept   = "the org already has another assistant for this role in BYOC (kept)"
	ReasonNoVerifier      = "cannot be verified: no verifier for this provider"
)

// Entry is one legacy row that was not brought over (or, in a dry run,
// would not be), and why.
type Entry struct {
	Table string
	// OrgID is the row's org id, Item its provider or assistant id, both
	// as read (clipped) when they are not valid.
	OrgID, Item string
	Outcome     Outcome
	Reason      string
}

// Tally counts one legacy table's rows by outcome; Skipped and Failed by
// reason.
type Tally struct {
	Rows, Migrated  int
	Skipped, Failed map[string]int
}

func newTally() Tally { return Tally{Skipped: map[string]int{}, Failed: map[string]int{}} }

func (t *Tally) add(o Outcome, reason string) {
	t.Rows++
	switch o {
	case Migrated:
		t.Migrated++
	case Skipped:
		t.Skipped[reason]++
	case Failed:
		t.Failed[reason]++
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Report says what a run did (or, in a dry run, would do).
type Report struct {
	DryRun bool
	// Tables are the legacy tables found.
	Tables []string
	// Integrations and Agents count the rows of each legacy table.
	Integrations, Agents Tally
	// Entries lists every row skipped or failed, except those already
	// migrated.
	Entries []Entry
	Batches int
	Elapsed time.Duration
}

// Failed counts the rows that failed.
func (r Report) Failed() int { return sum(r.Integrations.Failed) + sum(r.Agents.Failed) }

// String renders the report for the operator: counts per table and
// reason, then the rows skipped or failed. It holds no secret.
func (r Report) String() string {
	var b strings.Builder
	if len(r.Tables) == 0 {
		return "no legacy tables (integrations, agents) found: nothing to do\n"
	}
	verb := "migrated"
	if r.DryRun {
		b.WriteString("dry run: nothing was written\n")
		verb = "would migrate"
	}
	for _, t := range []struct {
		name string
		t    Tally
	}{{TableIntegrations, r.Integrations}, {TableAgents, r.Agents}} {
		if !slices.Contains(r.Tables, t.name) {
			fmt.Fprintf(&b, "%s: no such table\n", t.name)
			continue
		}
		fmt.Fprintf(&b, "%s: %d rows: %s %d, skipped %d, failed %d\n", t.name, t.t.Rows, verb, t.t.Migrated,
			sum(t.t.Skipped), sum(t.t.Failed))
		for _, kind := range []struct {
			name string
			m    map[string]int
		}{{"skipped", t.t.Skipped}, {"failed", t.t.Failed}} {
			for _, reason := range slices.Sorted(maps.Keys(kind.m)) {
				fmt.Fprintf(&b, "  %s %d: %s\n", kind.name, kind.m[reason], reason)
			}
		}
	}
	for _, e := range r.Entries {
		fmt.Fprintf(&b, "%s org %s %s: %s: %s\n", e.Table, e.OrgID, e.Item, e.Outcome, e.Reason)
	}
	fmt.Fprintf(&b, "%d batches in %s\n", r.Batches, r.Elapsed.Round(time.Millisecond))
	return b.String()
}

// clip makes a value read from a legacy row fit for a report line: at most
// 40 characters, nothing but letters, digits and - _ . @ (others become ?).
func clip(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == 40 {
			b.WriteString("…")
			break
		}
		n++
		switch {
		case r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.@", r)):
			b.WriteRune(r)
		default:
			b.WriteRune('?')
		}
	}
	if b.Len() == 0 {
		return `""`
	}
	return b.String()
}
