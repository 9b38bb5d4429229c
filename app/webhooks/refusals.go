package webhooks

import (
	"context"
	"sync"
	"time"

	"byoc/app"
)

// Refused deliveries that named one of an org's assistants are counted in
// memory, per org, assistant, reason and hour, and the counts are added to
// the database by a periodic flush (RunRefusalFlush): one statement per
// instance and interval, whatever the number of refusals. A sender without
// the secret can therefore neither fill an org's log (only counts are kept)
// nor make the database work per forged request; memory stays bounded as
// well, since only ids that resolved to an org's assistant are counted and
// the pending counters are capped (MaxPendingRefusals).

// RefusalStore adds refusal counts to the stored ones; *db.DB implements it.
type RefusalStore interface {
	AddRefusals(ctx context.Context, tallies []app.RefusalTally) error
}

// Defaults of the refusal counting.
const (
	// DefaultRefusalFlushEvery is how often the counts are flushed.
	DefaultRefusalFlushEvery = 30 * time.Second
	// MaxPendingRefusals caps the counters waiting for a flush; refusals
	// of a key beyond it are dropped.
	MaxPendingRefusals = 10000
)

type refusalKey struct {
	orgID, assistantID, reason string
	hour                       int64 // unix seconds of the hour's start
}

// refusals holds the counts not yet flushed.
type refusals struct {
	mu      sync.Mutex
	pending map[refusalKey]int64
	dropped uint64
}

func newRefusals() *refusals { return &refusals{pending: map[refusalKey]int64{}} }

// add counts one refusal at the given time.
func (r *refusals) add(orgID, assistantID, reason string, at time.Time) {
	k := refusalKey{orgID: orgID, assistantID: assistantID, reason: reason, hour: at.Unix() - at.Unix()%3600}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pending[k]; !ok && len(r.pending) >= MaxPendingRefusals {
		r.dropped++
		return
	}
	r.pending[k]++
}

// take returns the pending counts and forgets them.
func (r *refusals) take() []app.RefusalTally {
	r.mu.Lock()
	p := r.pending
	r.pending = map[refusalKey]int64{}
	r.mu.Unlock()
	out := make([]app.RefusalTally, 0, len(p))
	for k, n := range p {
		out = append(out, app.RefusalTally{OrgID: k.orgID, AssistantID: k.assistantID, Reason: k.reason,
			Hour: time.Unix(k.hour, 0).UTC(), Count: n})
	}
	return out
}

// putBack returns tallies a flush could not store to the pending counts
// (within the cap), so that the next flush tries them again.
func (r *refusals) putBack(tallies []app.RefusalTally) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range tallies {
		k := refusalKey{orgID: t.OrgID, assistantID: t.AssistantID, reason: t.Reason, hour: t.Hour.Unix()}
		if _, ok := r.pending[k]; !ok && len(r.pending) >= MaxPendingRefusals {
			r.dropped += uint64(t.Count)
			continue
		}
		r.pending[k] += t.Count
	}
}

// FlushRefusals adds the refusals counted since the last flush to the
// store. On failure the counts are kept for the next flush and the error is
// returned. Without a RefusalStore it does nothing.
func (h *Handler) FlushRefusals(ctx context.Context) error {
	if h.deps.Refusals == nil {
		return nil
	}
	tallies := h.refusals.take()
	if len(tallies) == 0 {
		return nil
	}
	if err := h.deps.Refusals.AddRefusals(ctx, tallies); err != nil {
		h.refusals.putBack(tallies)
		return err
	}
	return nil
}

// RunRefusalFlush flushes the refusal counts every interval (0:
// DefaultRefusalFlushEvery) until ctx ends, and once more then, within a
// few seconds, so that a stopping instance keeps what it counted.
func (h *Handler) RunRefusalFlush(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultRefusalFlushEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := h.FlushRefusals(ctx); err != nil {
				h.log.WarnContext(ctx, "storing the webhook refusal counts failed", "err", err)
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := h.FlushRefusals(fctx); err != nil {
				h.log.WarnContext(fctx, "storing the webhook refusal counts failed", "err", err)
			}
			return
		}
	}
}
