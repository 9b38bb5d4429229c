package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"byoc/app"
)

// A browser may cancel a provider-calling request it is waiting for (a
// save or a Test connection held up by a slow provider). It names the
// request with an id of its own in headerAttempt; the Cancel button posts
// that id to the cancel route, which cancels the request's context. The
// request then ends the way every request ends: what it had not stored
// stays unstored, and its own answer tells the outcome (the cancellation,
// or the success that came first). fasthttp never tells a handler that its
// client went away, so aborting in the browser alone would leave the save
// running and free to succeed after the user was told it did not.
//
// The attempts are kept in each instance's memory. A cancel that reaches
// another instance than the request is passed on to every instance through
// the database (Deps.Cancels, delivered to CancelForwarded); the instance
// that stops the request says so the same way (CancelAcknowledged), so
// behind a load balancer a cancel stops the request wherever it runs and
// answers as truly as on the request's own instance.

// headerAttempt names a cancellable request.
const headerAttempt = "X-Byoc-Attempt"

// errCancelled ends a request its user cancelled; nothing the request had
// not finished is stored.
var errCancelled = &app.Error{Code: app.EConflict,
	Message: "Cancelled: nothing was saved, and the stored connection is unchanged."}

// errRestarting ends the requests still running when the server stops
// (see Shutdown): the server's own restart, never the provider's fault.
var errRestarting = &app.Error{Code: app.EUnavailable,
	Message: "The server is restarting and stopped the request: nothing was saved. Please try again in a moment."}

// shutdownMargin is how long before Shutdown's deadline the requests still
// running are stopped (errRestarting), so they can still answer.
const shutdownMargin = 2 * time.Second

// inflight holds this instance's cancellable requests by user and id, and
// the cancels of this instance waiting for another one to stop a request.
type inflight struct {
	mu      sync.Mutex
	m       map[attemptKey]context.CancelCauseFunc
	waiting map[attemptKey]chan struct{}
	perUser map[string]int // waiting cancels by user
}

// forwardWait bounds how long a cancel waits for another instance to say
// that it stopped the request, and maxForwardsPerUser how many of one
// user's cancels may wait at once on an instance (a user has a few
// requests running at most; more is someone making every instance listen
// to made-up ids).
const (
	forwardWait        = time.Second
	maxForwardsPerUser = 4
)

type attemptKey struct{ user, id string }

// validAttemptID reports whether id is an acceptable attempt id: 16 to 64
// letters, digits and dashes (a UUID fits).
func validAttemptID(id string) bool {
	if len(id) < 16 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// cancellable makes a signed-in request that names an attempt
// (headerAttempt) cancellable by its user until it ends. A request naming
// no attempt, or one that is already running, runs as usual.
func (s *Server) cancellable(c *fiber.Ctx) error {
	id := c.Get(headerAttempt)
	p, ok := principal(c)
	if id == "" || !ok || !validAttemptID(id) {
		return c.Next()
	}
	// A copy: Fiber's strings share the request buffer's memory, which
	// the server reuses for another request.
	key := attemptKey{user: p.UserID, id: strings.Clone(id)}
	ctx, cancel := context.WithCancelCause(c.UserContext())
	defer cancel(nil)
	s.attempts.mu.Lock()
	if _, taken := s.attempts.m[key]; taken {
		s.attempts.mu.Unlock()
		return c.Next()
	}
	s.attempts.m[key] = cancel
	s.attempts.mu.Unlock()
	defer func() {
		s.attempts.mu.Lock()
		delete(s.attempts.m, key)
		s.attempts.mu.Unlock()
	}()
	c.SetUserContext(ctx)
	return c.Next()
}

// cancelAttempt cancels the user's running request named by the route's
// attempt id (POST /api/integrations/attempts/:attempt/cancel): 202 with
// {cancelled: true} when the request was stopped, here or (Deps.Cancels)
// on another instance; the request itself answers its outcome. 404
// not_found when no instance stopped one within forwardWait (it already
// ended, or never ran).
func (s *Server) cancelAttempt(c *fiber.Ctx) error {
	a, _ := account(c)
	id := c.Params("attempt")
	stopped := validAttemptID(id) && s.cancelHere(a.Principal.UserID, id)
	if !stopped && validAttemptID(id) && s.deps.Cancels != nil {
		var err error
		if stopped, err = s.forwardCancel(c.UserContext(), a.Principal.UserID, strings.Clone(id)); err != nil {
			return err
		}
	}
	if !stopped {
		return app.Errorf(app.ENotFound, "That request is not running any more: its answer tells what happened.")
	}
	if negotiate(c) == formatJSON {
		return sendJSON(c, http.StatusAccepted, map[string]bool{"cancelled": true})
	}
	return c.SendStatus(http.StatusAccepted)
}

// cancelHere stops the user's request named attempt if it runs on this
// instance, and reports whether it did.
func (s *Server) cancelHere(userID, attempt string) bool {
	s.attempts.mu.Lock()
	cancel, ok := s.attempts.m[attemptKey{user: userID, id: attempt}]
	s.attempts.mu.Unlock()
	if ok {
		cancel(errCancelled)
	}
	return ok
}

// forwardCancel asks every instance to stop the user's request named
// attempt and reports whether one said it did within forwardWait.
func (s *Server) forwardCancel(ctx context.Context, userID, attempt string) (bool, error) {
	key := attemptKey{user: userID, id: attempt}
	acked := make(chan struct{})
	s.attempts.mu.Lock()
	if _, taken := s.attempts.waiting[key]; taken || s.attempts.perUser[userID] >= maxForwardsPerUser {
		s.attempts.mu.Unlock()
		return false, nil // a cancel of this request already waits, or too many of the user's do
	}
	s.attempts.waiting[key] = acked
	s.attempts.perUser[userID]++
	s.attempts.mu.Unlock()
	defer func() {
		s.attempts.mu.Lock()
		if s.attempts.waiting[key] == acked {
			delete(s.attempts.waiting, key)
		}
		if s.attempts.perUser[userID]--; s.attempts.perUser[userID] <= 0 {
			delete(s.attempts.perUser, userID)
		}
		s.attempts.mu.Unlock()
	}()
	if err := s.deps.Cancels.RequestCancel(ctx, userID, attempt); err != nil {
		return false, err
	}
	t := time.NewTimer(forwardWait)
	defer t.Stop()
	select {
	case <-acked:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, &app.Error{Code: app.EUnavailable, Cause: ctx.Err(),
			Message: "The server is stopping and could not wait for the answer; the request's own answer tells what happened."}
	}
}

// CancelForwarded stops the user's request named attempt if it runs on
// this instance, and then tells every instance that it did (through
// Deps.Cancels). The database listener calls it for the cancels any
// instance passes on; it returns at once.
func (s *Server) CancelForwarded(userID, attempt string) {
	if !s.cancelHere(userID, attempt) || s.deps.Cancels == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(s.stopping, forwardWait)
		defer cancel()
		if err := s.deps.Cancels.AckCancel(ctx, userID, attempt); err != nil {
			s.log.Warn("telling that a request was cancelled failed", "user_id", userID, "err", err)
		}
	}()
}

// CancelAcknowledged wakes the cancel of this instance that waits for the
// user's request named attempt to be stopped elsewhere, if any. The
// database listener calls it; it returns at once.
func (s *Server) CancelAcknowledged(userID, attempt string) {
	s.attempts.mu.Lock()
	acked, ok := s.attempts.waiting[attemptKey{user: userID, id: attempt}]
	if ok {
		delete(s.attempts.waiting, attemptKey{user: userID, id: attempt})
	}
	s.attempts.mu.Unlock()
	if ok {
		close(acked)
	}
}

// ownStop returns why this server stopped the request early (its user
// cancelled it, or the server is restarting), or err when it did not:
// whatever failed after such a stop failed because of it, and must not be
// reported as a provider's or the database's fault.
func ownStop(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	var own *app.Error
	if errors.As(context.Cause(ctx), &own) {
		return &app.Error{Code: own.Code, Message: own.Message, Cause: err}
	}
	return err
}
