package db

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// NotifyChannel is the PostgreSQL NOTIFY channel on which every write to
// cached data announces, in its own transaction, which org (and provider) it
// changed. The payload is JSON: {"org": "<uuid>", "provider": "vapi"}, where
// an empty or missing provider means every entry of the org; a bulk write
// names many orgs at once: {"orgs": ["<uuid>", ...], "provider": "vapi"}.
const NotifyChannel = "byoc_cache"

// CancelChannel is the PostgreSQL NOTIFY channel on which an instance asks
// every instance to stop one user's running request (see RequestCancel),
// and CancelAckChannel the one on which the instance that stopped it says
// so (AckCancel). Both payloads are JSON: {"user": "<uuid>", "attempt": "<id>"}.
const (
	CancelChannel    = "byoc_cancel"
	CancelAckChannel = "byoc_cancel_ack"
)

// ListenerApplicationName is the application_name of the connection that
// ListenInvalidations holds, so operators (and tests) can find it in
// pg_stat_activity.
const ListenerApplicationName = "byoc-cache-listener"

// Listener timings: how long the connection may stay silent before it is
// pinged, and the bounds of the reconnect backoff. The longest pause is
// short: until the listener is back, changes other instances make are not
// seen here, so it must follow a database that returns within seconds, and
// one connection attempt per instance every 2 s costs a database nothing.
const (
	listenHealthCheck = 30 * time.Second
	listenMinBackoff  = 100 * time.Millisecond
	listenMaxBackoff  = 2 * time.Second
	listenStable      = time.Minute
	listenDialTimeout = 10 * time.Second
)

type invalidation struct {
	Org      string   `json:"org,omitempty"`
	Orgs     []string `json:"orgs,omitempty"`
	Provider string   `json:"provider,omitempty"`
}

// notifyCache publishes an invalidation of the org's entries for provider
// ("" for all of them) in tx: listeners receive it when tx commits, and never
// if it rolls back.
func notifyCache(ctx context.Context, tx pgx.Tx, orgID, provider string) error {
	payload, err := json.Marshal(invalidation{Org: orgID, Provider: provider})
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `select pg_notify('`+NotifyChannel+`', $1)`, string(payload)); err != nil {
		return fmt.Errorf("notify %s: %w", NotifyChannel, err)
	}
	return nil
}

type cancelRequest struct {
	User    string `json:"user"`
	Attempt string `json:"attempt"`
}

// RequestCancel asks every instance that listens for cancels (Listen with
// Listeners.Cancel) to stop the user's running request named attempt. It
// returns once the database took the message; the instance that stops the
// request answers with AckCancel.
func (d *DB) RequestCancel(ctx context.Context, userID, attemptID string) error {
	return d.notifyCancel(ctx, CancelChannel, userID, attemptID)
}

// AckCancel tells every instance that the user's request named attempt was
// stopped here (Listeners.CancelAck receives it).
func (d *DB) AckCancel(ctx context.Context, userID, attemptID string) error {
	return d.notifyCancel(ctx, CancelAckChannel, userID, attemptID)
}

func (d *DB) notifyCancel(ctx context.Context, channel, userID, attemptID string) error {
	payload, err := json.Marshal(cancelRequest{User: userID, Attempt: attemptID})
	if err != nil {
		return err
	}
	if _, err := d.Pool.Exec(ctx, `select pg_notify($1, $2)`, channel, string(payload)); err != nil {
		return unavailable(err)
	}
	return nil
}

// maxNotifyPayload is the size of payload notifyCacheOrgs fills at most,
// below PostgreSQL's limit of 8000 bytes.
const maxNotifyPayload = 7000

// notifyCacheOrgs publishes in tx the invalidation of provider's entries
// ("" for all) of every org of orgs: as few notifications as fit them (about
// 180 orgs each), sent in one statement, so a bulk write costs every
// listener one message per batch rather than one per row.
func notifyCacheOrgs(ctx context.Context, tx pgx.Tx, orgs []string, provider string) error {
	var payloads []string
	for len(orgs) > 0 {
		n := min(len(orgs), maxNotifyPayload/40)
		payload, err := json.Marshal(invalidation{Orgs: orgs[:n], Provider: provider})
		if err != nil {
			return err
		}
		payloads = append(payloads, string(payload))
		orgs = orgs[n:]
	}
	if len(payloads) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `select pg_notify('`+NotifyChannel+`', p) from unnest($1::text[]) as p`, payloads); err != nil {
		return fmt.Errorf("notify %s: %w", NotifyChannel, err)
	}
	return nil
}

// ListenInvalidations listens on NotifyChannel on a dedicated connection
// (outside the pool, with the pool's settings) and blocks until ctx is done.
//
// For every notification it calls onMessage with the org and provider it
// names (provider "" means every entry of the org), once per org for a
// notification that names several. When the connection is
// lost, or cannot be opened at start, it retries with exponential backoff
// (100 ms doubling up to 2 s, with jitter) and, once it listens again, calls
// onReconnect: notifications may have been missed meanwhile, so the caller
// must drop everything it caches. A payload it cannot read is treated the same
// way. A connection silent for 30 s is pinged, so a dead peer is noticed.
// Callbacks run on the listener's goroutine, one at a time, and must not
// block for long. Failures are logged with slog.Default (no payloads).
func (d *DB) ListenInvalidations(ctx context.Context, onMessage func(orgID, provider string), onReconnect func()) {
	d.ListenInvalidationsReporting(ctx, onMessage, onReconnect, nil)
}

// ListenInvalidationsReporting is ListenInvalidations that also tells
// listening (when not nil) whether notifications are being received: true
// once LISTEN succeeded (after onReconnect, when it reconnected), false as
// soon as the connection is found lost and when ctx ends. It starts out
// false. A cache that must never serve what another instance changed (the
// sign-ins) is used only while it is true.
func (d *DB) ListenInvalidationsReporting(ctx context.Context, onMessage func(orgID, provider string), onReconnect func(), listening func(bool)) {
	d.Listen(ctx, Listeners{Invalidate: onMessage, Flush: onReconnect, Listening: listening})
}

// Listeners are what Listen calls back; see ListenInvalidations and
// ListenInvalidationsReporting for Invalidate, Flush and Listening.
type Listeners struct {
	Invalidate func(orgID, provider string)
	Flush      func()
	Listening  func(bool) // may be nil
	// Cancel, when set, also receives the requests to stop a user's
	// running request (RequestCancel from any instance, this one
	// included), and CancelAck the acknowledgements (AckCancel). Messages
	// sent while the connection was lost are not delivered.
	Cancel    func(userID, attemptID string)
	CancelAck func(userID, attemptID string)
}

// Listen is ListenInvalidationsReporting with every callback in l, the
// requests to cancel included.
func (d *DB) Listen(ctx context.Context, l Listeners) {
	onReconnect, listening := l.Flush, l.Listening
	if listening == nil {
		listening = func(bool) {}
	}
	defer listening(false)
	log := slog.Default().With("component", "cache_listener", "channel", NotifyChannel)
	backoff := listenMinBackoff
	missed := false // whether notifications may have been missed since the last successful LISTEN
	for ctx.Err() == nil {
		conn, err := d.listen(ctx, l.Cancel != nil)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			missed = true
			log.Warn("cannot listen for cache invalidations; retrying", "err", err, "retry_in", backoff)
			if !sleepCtx(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, listenMaxBackoff)
			continue
		}
		if missed {
			log.Info("listening for cache invalidations again; flushing caches")
			onReconnect()
			missed = false
		}
		listening(true)
		started := time.Now()
		err = receive(ctx, conn, l, log)
		listening(false)
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Close(closeCtx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		missed = true
		if time.Since(started) > listenStable {
			backoff = listenMinBackoff
		}
		log.Warn("cache invalidation listener lost its connection; reconnecting", "err", err, "retry_in", backoff)
		if !sleepCtx(ctx, jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, listenMaxBackoff)
	}
}

// listen opens the dedicated connection and subscribes it to NotifyChannel
// and, with cancels, to CancelChannel.
func (d *DB) listen(ctx context.Context, cancels bool) (*pgx.Conn, error) {
	cfg := d.Pool.Config().ConnConfig // a copy: changing it leaves the pool alone
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	dialCtx, cancel := context.WithTimeout(ctx, listenDialTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(dialCtx, cfg)
	if err != nil {
		return nil, err
	}
	sql := "listen " + pgx.Identifier{NotifyChannel}.Sanitize()
	if cancels {
		sql += "; listen " + pgx.Identifier{CancelChannel}.Sanitize() + "; listen " + pgx.Identifier{CancelAckChannel}.Sanitize()
	}
	if _, err := conn.Exec(dialCtx, sql); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

// receive delivers notifications until the connection fails or ctx is done.
func receive(ctx context.Context, conn *pgx.Conn, l Listeners, log *slog.Logger) error {
	onMessage, onFlush := l.Invalidate, l.Flush
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenHealthCheck)
		n, err := conn.WaitForNotification(waitCtx)
		idle := waitCtx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !idle || conn.IsClosed() {
				return err
			}
			pingCtx, cancel := context.WithTimeout(ctx, listenDialTimeout)
			err = conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return fmt.Errorf("health check: %w", err)
			}
			continue
		}
		if n.Channel == CancelChannel || n.Channel == CancelAckChannel {
			var c cancelRequest
			deliver := l.Cancel
			if n.Channel == CancelAckChannel {
				deliver = l.CancelAck
			}
			if err := json.Unmarshal([]byte(n.Payload), &c); err != nil || c.User == "" || c.Attempt == "" {
				log.Warn("unreadable cancel message; ignored", "channel", n.Channel, "payload_bytes", len(n.Payload))
			} else if deliver != nil {
				deliver(c.User, c.Attempt)
			}
			continue
		}
		var inv invalidation
		if err := json.Unmarshal([]byte(n.Payload), &inv); err != nil || (inv.Org == "") == (len(inv.Orgs) == 0) ||
			slices.Contains(inv.Orgs, "") {
			log.Warn("unreadable cache invalidation; flushing caches", "payload_bytes", len(n.Payload))
			onFlush()
			continue
		}
		if inv.Org != "" {
			onMessage(inv.Org, inv.Provider)
		}
		for _, org := range inv.Orgs {
			onMessage(org, inv.Provider)
		}
	}
}

// jitter returns d randomized by up to ±20 %, so instances that lost the same
// server do not reconnect in lockstep.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// sleepCtx waits for d and reports whether ctx is still live afterwards.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
