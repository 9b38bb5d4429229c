package app

import (
	"context"
	"sync/atomic"
)

// QueryCount counts the database statements sent for one unit of work, such
// as an HTTP request: the unit starts it with WithQueryCount, and the
// database adapter calls CountQuery for every statement it sends with a
// context derived from that one (transaction control and the role switch of
// a tenant transaction included). Each count belongs to its own unit, so
// counting takes no lock that other units share.
type QueryCount struct{ n atomic.Int64 }

type queryCountKey struct{}

// WithQueryCount returns a context that counts the statements sent with it
// (or any context derived from it), and the count.
func WithQueryCount(ctx context.Context) (context.Context, *QueryCount) {
	c := &QueryCount{}
	return context.WithValue(ctx, queryCountKey{}, c), c
}

// CountQuery adds one statement to the count ctx carries; without one it
// does nothing.
func CountQuery(ctx context.Context) {
	if c, ok := ctx.Value(queryCountKey{}).(*QueryCount); ok {
		c.n.Add(1)
	}
}

// Load returns how many statements were counted so far.
func (c *QueryCount) Load() int64 { return c.n.Load() }
