package db

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"byoc/app"
)

// tracer is the pools' pgx tracer. For every statement sent it adds one to
// the unit of work its context counts (app.CountQuery: one context lookup
// and one atomic add, nothing shared between requests), and it counts the
// statements and connection acquisitions that failed. It implements
// pgx.QueryTracer, pgx.BatchTracer, pgx.CopyFromTracer and
// pgxpool.AcquireTracer.
type tracer struct {
	statementErrors atomic.Uint64
	connectErrors   atomic.Uint64
}

// Errors counts the database's failures since the DB was opened.
type Errors struct {
	// Statement counts statements that failed for a reason other than
	// their own data (an integrity constraint such as a duplicate key,
	// which callers turn into answers like email_taken) or their caller
	// giving up (a cancelled context): the server refused or broke off, a
	// deadline passed, the connection was lost.
	Statement uint64
	// Connect counts failures to get a connection (the server
	// unreachable, refusing the login, or the pool exhausted until a
	// deadline passed).
	Connect uint64
}

// Errors returns the failure counts of both pools.
func (d *DB) Errors() Errors {
	return Errors{Statement: d.trace.statementErrors.Load(), Connect: d.trace.connectErrors.Load()}
}

// TraceQueryStart counts the statement for its unit of work.
func (t *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	app.CountQuery(ctx)
	return ctx
}

// TraceQueryEnd counts a failed statement.
func (t *tracer) TraceQueryEnd(_ context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	t.failed(&t.statementErrors, data.Err)
}

// TraceBatchStart does nothing: each statement of a batch is counted by
// TraceBatchQuery.
func (t *tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

// TraceBatchQuery counts one statement of a batch, and its failure.
func (t *tracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	app.CountQuery(ctx)
	t.failed(&t.statementErrors, data.Err)
}

// TraceBatchEnd does nothing: the statements' failures were counted.
func (t *tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TraceCopyFromStart counts a COPY as one statement.
func (t *tracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	app.CountQuery(ctx)
	return ctx
}

// TraceCopyFromEnd counts a failed COPY.
func (t *tracer) TraceCopyFromEnd(_ context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	t.failed(&t.statementErrors, data.Err)
}

// TraceAcquireStart does nothing.
func (t *tracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	return ctx
}

// TraceAcquireEnd counts a failure to get a connection.
func (t *tracer) TraceAcquireEnd(_ context.Context, _ *pgxpool.Pool, data pgxpool.TraceAcquireEndData) {
	t.failed(&t.connectErrors, data.Err)
}

// failed adds one to n when err is a failure of the database (see Errors).
func (t *tracer) failed(n *atomic.Uint64, err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "23") {
		return
	}
	n.Add(1)
}
