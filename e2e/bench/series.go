package main

import (
	"context"
	"math"
	"slices"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// series is one row of the table in the making: the same requests sent in
// slices, at max rate and at the fixed rate, taking turns with the other
// rows of its group so that every row sees the same machine (the load of
// whatever else runs on it drifts over a run).
type series struct {
	name string
	proc *proc // the process that answers
	// byoc says whether proc is the BYOC server, whose counters are read.
	byoc   bool
	tr     vegeta.Targeter
	caches []string // the caches whose hit rate is reported
	// webhook says whether the webhook store calls are reported.
	webhook bool
	// storm, when set, changes other orgs' credentials during every slice.
	storm     *storm
	stormRate int

	max, fixed              outcome
	hits, lookups           uint64
	statements, storeCalls  float64
	counted                 int // requests sent while the counters were read
	statementsUnknown       bool
	cpu                     time.Duration // CPU time proc used during the slices
	cpuUnknown              bool
	rss                     int64
	stormSaves, stormOthers float64
	stormTime               time.Duration
}

// merge adds o to m.
func (m *outcome) merge(o outcome) {
	if m.Codes == nil {
		m.Codes = map[int]int{}
	}
	m.Requests += o.Requests
	m.OK += o.OK
	m.Errors += o.Errors
	m.Elapsed += o.Elapsed
	for code, n := range o.Codes {
		m.Codes[code] += n
	}
	m.Latencies = append(m.Latencies, o.Latencies...)
	slices.Sort(m.Latencies)
}

// interleave sends each series' requests for b.duration at max rate and
// as long at the fixed rate, in b.rounds slices each, the series taking
// turns (in a different order each round).
func (b *bencher) interleave(ctx context.Context, group ...*series) error {
	slice := b.duration / time.Duration(b.rounds)
	maxPace, fixedPace := pace{workers: uint64(b.workers)}, pace{rate: b.rate, workers: 10}
	for _, p := range []pace{maxPace, fixedPace} {
		how := "at max rate with " + thousands(int64(p.workers)) + " workers"
		if p.rate > 0 {
			how = "at " + thousands(int64(p.rate)) + " req/s"
		}
		b.logf("%d rounds of %s per run %s:", b.rounds, slice, how)
		for _, s := range group {
			b.logf("  %s", s.name)
		}
		for r := range b.rounds {
			for k := range group {
				s := group[(r+k)%len(group)]
				if err := b.slice(ctx, s, p, slice); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// slice sends s's requests with pace p for d and adds what the server and
// the database counted meanwhile.
func (b *bencher) slice(ctx context.Context, s *series, p pace, d time.Duration) error {
	var before snapshot
	var err error
	if s.byoc {
		if before, err = b.probe.snapshot(ctx, s.proc); err != nil {
			return err
		}
	}
	cpuBefore, cpuErr := s.proc.cpuTime()
	var stopStorm func() (saves int64)
	began := time.Now()
	if s.storm != nil {
		stopStorm = s.storm.start(ctx, s.stormRate)
	}
	o := attack(ctx, s.tr, p, d)
	if stopStorm != nil {
		saves := stopStorm()
		s.stormSaves += float64(saves)
		s.stormOthers += float64(saves) * max(s.storm.perSave, 0)
		s.stormTime += time.Since(began)
	}
	cpuAfter, err := s.proc.cpuTime()
	if err != nil || cpuErr != nil {
		s.cpuUnknown = true
	}
	s.cpu += cpuAfter - cpuBefore
	if p.rate > 0 {
		s.fixed.merge(o)
	} else {
		s.max.merge(o)
	}
	s.counted += o.Requests
	s.rss, _ = s.proc.rssBytes()
	if !s.byoc {
		return ctx.Err()
	}
	after, err := b.probe.snapshot(ctx, s.proc)
	if err != nil {
		return err
	}
	for _, name := range s.caches {
		h := after.Caches[name].Hits - before.Caches[name].Hits
		s.hits += h
		s.lookups += h + after.Caches[name].Misses - before.Caches[name].Misses
	}
	if before.Statements < 0 || after.Statements < 0 {
		s.statementsUnknown = true
	} else {
		s.statements += float64(after.Statements - before.Statements)
	}
	s.storeCalls += after.StoreCalls - before.StoreCalls
	return ctx.Err()
}

// row is the series as a line of the table; the storm's own statements
// are left out.
func (s *series) row() row {
	r := row{Name: s.name, Max: &s.max, Fixed: &s.fixed, HitRate: math.NaN(), Statements: -1, StoreCalls: -1, RSS: s.rss}
	if s.counted == 0 {
		return r
	}
	if !s.cpuUnknown {
		r.CPU = s.cpu / time.Duration(s.counted)
	}
	if !s.byoc {
		return r
	}
	if s.lookups > 0 {
		r.HitRate = float64(s.hits) / float64(s.lookups)
	}
	if !s.statementsUnknown && (s.storm == nil || s.storm.perSave >= 0) {
		r.Statements = max(s.statements-s.stormOthers, 0) / float64(s.counted)
	}
	if s.webhook {
		r.StoreCalls = s.storeCalls / float64(s.counted)
	}
	return r
}
