package db

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"byoc/app"
)

// Messages of the EUnavailable errors: what the client is told, never why.
const (
	msgDatabaseDown    = "The service is temporarily unavailable. Please try again shortly."
	msgDatabaseTimeout = "The server could not finish the request in time. Please try again."
)

// unavailable returns err as an EUnavailable domain error when it says that
// the database could not be used, rather than that it refused what was
// asked: the server is down, restarting or refusing connections, the
// connection broke, or the caller's deadline passed while waiting for a
// connection or an answer. The request is then refused with 503 at once,
// and its sender may retry it, instead of being reported as a fault of
// ours. A domain error, nil and every other error come back unchanged.
//
// A write refused this way may still have committed (the connection broke
// after the commit was sent); every write BYOC answers 503 is safe to
// repeat.
func unavailable(err error) error {
	if err == nil || errors.As(err, new(*app.Error)) {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), pgconn.Timeout(err):
		return &app.Error{Code: app.EUnavailable, Message: msgDatabaseTimeout, Cause: err}
	case connectionLost(err):
		return &app.Error{Code: app.EUnavailable, Message: msgDatabaseDown, Cause: err}
	}
	return err
}

// connectionLost reports whether err is a failure to reach the server or
// to keep talking to it, as opposed to an error a statement raised.
func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return serverUnavailable(pgErr.Code)
	}
	var netErr net.Error
	return errors.As(err, new(*pgconn.ConnectError)) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &netErr)
}

// serverUnavailable reports whether a SQLSTATE says the server cannot serve
// this session now: connection exceptions (class 08), too many connections
// or another lack of resources (class 53), and an administrator's or a
// crash's shutdown, or a server still starting (57P01-57P03).
func serverUnavailable(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"):
		return true
	}
	switch code {
	case "57P01", "57P02", "57P03":
		return true
	}
	return false
}
