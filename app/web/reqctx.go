package web

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// requestContext is a request's context: it carries the request's deadline
// from the start, but the timer that enforces it is made only when
// something first waits on it (Done or Err: a database statement, a
// provider call, a child context). A request that never waits, the warm
// webhook above all, pays for no timer and no registration with the
// server's stopping context.
//
// It behaves as context.WithDeadline(parent, deadline) would: Deadline
// reports the deadline; Done closes at the deadline or when parent ends,
// whichever comes first, and Err says which; values are parent's. A
// context made from it (context.WithTimeout, WithCancel) is cancelled with
// it, without a goroutine of its own.
type requestContext struct {
	parent   context.Context
	deadline time.Time

	once   sync.Once
	real   atomic.Pointer[context.Context] // set once, by enforce
	cancel context.CancelFunc
}

// newRequestContext returns the context of a request that must end by
// deadline or when parent ends, and the function that releases it (its
// timer, when one was made); call it when the request is done.
func newRequestContext(parent context.Context, deadline time.Time) (*requestContext, func()) {
	r := &requestContext{parent: parent, deadline: deadline}
	return r, r.release
}

// enforce makes the real context with its timer, once, and returns it.
func (r *requestContext) enforce() context.Context {
	if p := r.real.Load(); p != nil {
		return *p
	}
	r.once.Do(r.makeTimer)
	return *r.real.Load()
}

// makeTimer makes the real context.
func (r *requestContext) makeTimer() {
	ctx, cancel := context.WithDeadline(r.parent, r.deadline)
	r.cancel = cancel
	r.real.Store(&ctx)
}

// release stops the timer, if one was made, and cancels the context.
func (r *requestContext) release() {
	// Running the Once here means no timer can be made after release.
	r.once.Do(r.releaseUnused)
	if p := r.real.Load(); p != &released {
		r.cancel()
	}
}

// releaseUnused ends a context whose timer was never made.
func (r *requestContext) releaseUnused() { r.real.Store(&released) }

// released stands for the real context of a request released before
// anything waited on it: ended, and holding no values of its own.
var released = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Deadline reports the request's deadline without making a timer.
func (r *requestContext) Deadline() (time.Time, bool) { return r.deadline, true }

// Done closes at the deadline, when the parent ends, or on release.
func (r *requestContext) Done() <-chan struct{} { return r.enforce().Done() }

// Err says why Done closed (context.DeadlineExceeded, the parent's error,
// or context.Canceled after release), or nil while it is open.
func (r *requestContext) Err() error { return r.enforce().Err() }

// Value returns parent's value for key; once the timer exists, the real
// context answers (which also lets a child context find its canceller and
// spare a goroutine).
func (r *requestContext) Value(key any) any {
	if p := r.real.Load(); p != nil && p != &released {
		return (*p).Value(key)
	}
	return r.parent.Value(key)
}

// String names the context in panics and logs.
func (r *requestContext) String() string { return "web.requestContext" }
