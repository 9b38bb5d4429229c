// Package webhooks handles Vapi's webhooks (POST /api/webhooks/vapi) apart
// from any HTTP framework: the web layer passes a Request (headers, the raw
// body, when it arrived) to Handler.Handle and writes back the Response.
//
// A delivery is routed to its org by the assistant id it names
// (message.call.assistantId, else message.assistant.id), authenticated with
// that org's webhook secret (or the server's default secret when the org has
// none) in any of the ways Vapi can send it (only by an HMAC signature when
// the org is HMAC-only), and deduplicated. Status updates
// and end-of-call reports are recorded once per delivery before the answer;
// tool calls run the built-in tools with the org's own credentials, once per
// delivery across all instances: the delivery is claimed in the database
// before any tool runs.
//
// The warm path stays in memory: with the assistant's org and the org's
// secret cached, a webhook that needs no write is answered without any
// database round trip. The caches are disposable and are kept coherent by
// the database's invalidation notifications (see Invalidate).
//
// No response, log line or statistic carries a secret or the payload's
// personal data (phone numbers, transcripts, message text).
package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"byoc/app"
	"byoc/app/orgcache"
)

// MappingResolver finds which org a Vapi assistant belongs to and records
// its use; *db.DB implements it.
type MappingResolver interface {
	// ResolveAssistant returns the assistant's mapping, or ENotFound.
	ResolveAssistant(ctx context.Context, assistantID string) (app.AssistantMapping, error)
	// TouchAssistant sets the last_used_at of the org's assistant to at (at
	// most once a minute) and reports whether it wrote; an assistant the
	// org does not have is left alone.
	TouchAssistant(ctx context.Context, orgID, assistantID string, at time.Time) (bool, error)
}

// Credentials hands out what an org's webhooks are verified with and its
// decrypted Twilio config; *credentials.Service implements it. Both return
// ENotConfigured when the org has nothing usable stored (with
// app.ErrUndecryptable in the chain when a stored row cannot be decrypted).
type Credentials interface {
	VapiWebhook(ctx context.Context, orgID string) (app.VapiWebhook, error)
	Twilio(ctx context.Context, orgID string) (app.TwilioConfig, error)
}

// EventStore records call events once per (org, dedup key), whichever
// instance receives them; *db.DB implements it. A tool-calls delivery is
// recorded too, before its tools run: the insert is its claim, so that the
// tools run once across instances and restarts.
type EventStore interface {
	RecordCallEvent(ctx context.Context, e app.CallEvent) (inserted bool, err error)
	// SetCallEventOutcome records how the org's event with dedupKey was
	// handled (one of the app.Delivery* outcomes).
	SetCallEventOutcome(ctx context.Context, orgID, dedupKey, outcome string) error
}

// TwilioSender sends an SMS or WhatsApp message with an org's Twilio
// account; *twilio.Client implements it.
type TwilioSender interface {
	SendMessage(ctx context.Context, cfg app.TwilioConfig, m app.Message) (sid string, err error)
}

// RefusalRecorder records that a provider refused an org's stored
// credentials while a tool used them, as a failed check (the card then
// needs attention, and a connection that was working breaks);
// *credentials.Service implements it.
type RefusalRecorder interface {
	RecordVerification(ctx context.Context, orgID string, p app.Provider, at time.Time, verificationErr error) (app.Status, error)
}

// Deps are the handler's collaborators. Mappings, Credentials and Events are
// required; without Twilio the send_sms tool answers that sending is not
// available, and without Calendar the calendar tools answer that the
// calendar is not connected. Without Refusals a tool's credentials refused
// by the provider are not recorded.
type Deps struct {
	Mappings    MappingResolver
	Credentials Credentials
	Events      EventStore
	Twilio      TwilioSender
	Calendar    Calendar
	// Refusals, when set, receives the counts of refused deliveries that
	// named an org's assistant (see RunRefusalFlush); nil: not counted.
	Refusals RefusalStore
	// ProviderRefusals, when set, records a provider refusing the org's
	// stored credentials while a tool used them; nil: not recorded.
	ProviderRefusals RefusalRecorder
}

// DefaultMaxBodyBytes is the largest webhook body accepted (1 MiB).
const DefaultMaxBodyBytes = 1 << 20

// Default limits of the tools and of lookups that reach the stores.
const (
	DefaultToolTimeout          = 10 * time.Second
	DefaultToolBudget           = 15 * time.Second
	DefaultMaxConcurrentLookups = 8
	DefaultMaxLookupsWaiting    = 64
	DefaultLookupWait           = 500 * time.Millisecond
)

// Options tunes New. The zero value gives the defaults, no default secret
// and no logging.
type Options struct {
	// DefaultSecret (VAPI_WEBHOOK_SECRET) verifies the webhooks of orgs
	// that stored no webhook secret of their own. Empty: such webhooks are
	// refused.
	DefaultSecret app.Secret
	// Debug adds which check failed (header missing, timestamp skew,
	// signature mismatch, ...) to the log line of a refused webhook
	// (WEBHOOK_DEBUG=1). Never the secret or the payload.
	Debug bool
	// Logger receives one line per webhook; nil discards.
	Logger *slog.Logger
	// Now is the clock for ReceivedAt when a request has none, and for
	// last_used_at (default time.Now).
	Now func() time.Time
	// Tolerance is how far an HMAC timestamp may be from ReceivedAt
	// (default DefaultTolerance, 300 s).
	Tolerance time.Duration
	// MaxBodyBytes is the largest body accepted (default 1 MiB).
	MaxBodyBytes int
	// MappingTTL and NegativeTTL are how long a known and an unknown
	// assistant id stay cached (defaults 10 min and 30 s); SecretTTL is the
	// same for an org's webhook secret (default 5 min).
	MappingTTL, NegativeTTL, SecretTTL time.Duration
	// DedupTTL is how long a handled delivery is remembered in memory
	// (default 10 min; never less than twice the Tolerance). The database
	// remembers recorded events and claimed tool calls for good.
	DedupTTL time.Duration
	// TouchEvery is how often at most an assistant's last_used_at is written
	// from this instance (default 1 min).
	TouchEvery time.Duration
	// Caches is the cache group the handler's assistant mappings and
	// webhook secrets join: the credential service's group, whose
	// invalidations (local, or announced by another instance) then reach
	// them. Nil: a group of the handler's own, with the two limits below.
	Caches *orgcache.Group
	// MaxConcurrentLookups bounds the cache misses that query the stores at
	// once, so a flood of unknown ids cannot exhaust the database pool
	// (default 8). MaxLookupsWaiting bounds the misses waiting for a
	// lookup slot (default 64): a miss that finds that many waiting is
	// answered 503 at once, so a flood is shed without queueing, while a
	// burst of first webhooks after a restart waits its turn. LookupWait is
	// how long a waiting miss waits for a slot before the webhook is
	// answered 503 (default 500 ms). All three apply to a group of the
	// handler's own; a shared group has the limits it was made with (see
	// NewCacheGroup).
	MaxConcurrentLookups int
	MaxLookupsWaiting    int
	LookupWait           time.Duration
	// ToolTimeout bounds each tool call (default 10 s).
	ToolTimeout time.Duration
	// ToolBudget bounds a whole tool-calls delivery, from when Handle
	// starts to when its results are ready (default 15 s): it must stay
	// under how long Vapi waits for the answer (about 20 s by default). The
	// calls of one delivery run concurrently, a few at a time; a call that
	// does not finish (or start) within the budget or its ToolTimeout is
	// answered with a result saying it timed out.
	ToolBudget time.Duration
	// DefaultPhoneRegion is the region send_sms reads numbers without a
	// country code in (default "US").
	DefaultPhoneRegion string
	// LatencySamples is how many recent latencies Stats summarizes
	// (default 4096).
	LatencySamples int
	// Metrics receives the duration of every resolution plus signature
	// check and counts the reads of webhook secrets (nil: only Stats
	// counts them).
	Metrics Metrics
}

// Metrics is what the handler measures besides Stats; *metrics.Metrics
// implements it. Both methods are called on the warm path and must not
// block.
type Metrics interface {
	// WebhookVerified observes how long one webhook's org resolution and
	// signature check took (as Stats' latencies).
	WebhookVerified(d time.Duration)
	// CredentialRead counts one read of an org's webhook secret, a
	// credential: hit when the cache answered, a miss when the credential
	// service was asked.
	CredentialRead(hit bool)
}

// noMetrics records nothing.
type noMetrics struct{}

func (noMetrics) WebhookVerified(time.Duration) {}
func (noMetrics) CredentialRead(bool)           {}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Tolerance, DefaultTolerance)
	def(&o.MappingTTL, DefaultMappingTTL)
	def(&o.NegativeTTL, DefaultNegativeTTL)
	def(&o.SecretTTL, DefaultSecretTTL)
	def(&o.DedupTTL, DefaultDedupTTL)
	o.DedupTTL = max(o.DedupTTL, 2*o.Tolerance)
	def(&o.TouchEvery, DefaultTouchEvery)
	def(&o.ToolTimeout, DefaultToolTimeout)
	def(&o.ToolBudget, DefaultToolBudget)
	def(&o.LookupWait, DefaultLookupWait)
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxConcurrentLookups <= 0 {
		o.MaxConcurrentLookups = DefaultMaxConcurrentLookups
	}
	if o.MaxLookupsWaiting <= 0 {
		o.MaxLookupsWaiting = DefaultMaxLookupsWaiting
	}
	if o.LatencySamples <= 0 {
		o.LatencySamples = DefaultLatencySamples
	}
	if o.DefaultPhoneRegion == "" {
		o.DefaultPhoneRegion = "US"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = noMetrics{}
	}
	return o
}

// Request is one webhook delivery as the HTTP layer received it.
type Request struct {
	// Header returns the value of a request header (case-insensitive), ""
	// when absent. Nil means no headers.
	Header func(name string) string
	// Body is the raw body, already copied out of the server's buffers:
	// the signature covers these exact bytes.
	Body []byte
	// ReceivedAt is when the request arrived; the zero time means now.
	ReceivedAt time.Time
	// RequestID and ClientIP name the HTTP request in the delivery's log
	// line (the one line a delivery is logged with); either may be empty.
	RequestID, ClientIP string
}

// Response is the answer to write back: Status and Body encoded as JSON.
type Response struct {
	Status int
	Body   any
	// encoded is Body already encoded, for the answers that never change.
	encoded []byte
}

// JSON returns Body encoded as JSON (the constant answers are encoded once,
// when the package loads).
func (r Response) JSON() ([]byte, error) {
	if r.encoded != nil {
		return r.encoded, nil
	}
	return json.Marshal(r.Body)
}

// encoded returns r with its body encoded once for all.
func encoded(r Response) Response {
	b, err := json.Marshal(r.Body)
	if err != nil {
		panic(err) // a constant answer that does not encode is a bug
	}
	r.encoded = b
	return r
}

// Handler answers Vapi webhooks. It is safe for concurrent use; create one
// per process with New.
type Handler struct {
	deps       Deps
	opts       Options
	log        *slog.Logger
	defaultKey secretKey
	caches     *caches
	stats      *stats
	refusals   *refusals
}

// New returns a Handler. It panics when a required dependency is missing.
func New(deps Deps, opts Options) *Handler {
	if deps.Mappings == nil || deps.Credentials == nil || deps.Events == nil {
		panic("webhooks: New needs Mappings, Credentials and Events")
	}
	opts = opts.withDefaults()
	g := opts.Caches
	if g == nil {
		g = NewCacheGroup(opts)
	}
	h := &Handler{
		deps:     deps,
		opts:     opts,
		log:      opts.Logger.With("component", "webhooks"),
		caches:   newCaches(g, opts),
		stats:    newStats(opts.LatencySamples),
		refusals: newRefusals(),
	}
	// Made once: a method value per lookup would allocate on every hit.
	h.caches.fillMapping, h.caches.fillSecret = h.lookupMapping, h.lookupSecret
	if !opts.DefaultSecret.IsZero() {
		h.defaultKey = newSecretKey(opts.DefaultSecret.Reveal())
	}
	return h
}

// NewCacheGroup returns a cache group fit for the webhook routing's
// lookups, with o's lookup limits (MaxConcurrentLookups, MaxLookupsWaiting,
// LookupWait; the defaults where not positive). The composition root shares
// one with the credential service.
func NewCacheGroup(o Options) *orgcache.Group {
	o = o.withDefaults()
	return orgcache.NewGroup(orgcache.Options{Slots: o.MaxConcurrentLookups, MaxWaiting: o.MaxLookupsWaiting,
		SlotWait: o.LookupWait})
}

// Answers. Every failure uses the API's error envelope; a refused
// signature gets the same answer whichever check failed.
var (
	respInvalidSignature = errorResponse(http.StatusUnauthorized, app.EInvalidSignature, "The webhook could not be authenticated.")
	respUnknownAssistant = errorResponse(http.StatusNotFound, app.EUnknownAssistant, "No organization has this assistant.")
	respUnavailable      = errorResponse(http.StatusServiceUnavailable, app.EUnavailable, "The webhook could not be handled right now. Please retry.")
	respTooLarge         = errorResponse(http.StatusRequestEntityTooLarge, app.EPayloadTooLarge, "The request is too large.")
	respMalformed        = errorResponse(http.StatusBadRequest, app.EValidation, "The webhook body is not valid JSON.")
	respNoAssistant      = encoded(Response{Status: http.StatusBadRequest, Body: app.ErrorEnvelope{Error: app.ErrorBody{
		Code:    app.EValidation,
		Message: "The webhook names no assistant.",
		Fields:  map[string]string{"message.call.assistantId": "Required (or message.assistant.id)."},
	}}})
	respReceived  = encoded(Response{Status: http.StatusOK, Body: received{Received: true}})
	respDuplicate = encoded(Response{Status: http.StatusOK, Body: received{Received: true, Duplicate: true}})
)

type received struct {
	Received  bool `json:"received"`
	Duplicate bool `json:"duplicate,omitempty"`
}

func errorResponse(status int, code, message string) Response {
	return encoded(Response{Status: status, Body: app.ErrorEnvelope{Error: app.ErrorBody{Code: code, Message: message}}})
}

// trace is what the log line of one webhook says.
type trace struct {
	requestID, clientIP     string
	assistantID, orgID, typ string
	mode, failedCheck       string
	tools                   []string
	// acked: verified and not recorded until now (a delivery that is
	// recorded clears it when it gets there).
	acked         bool
	err, touchErr error
	start         time.Time // when Handle started
}

// Handle answers one delivery:
//   - 413 payload_too_large for a body over MaxBodyBytes, 400
//     validation_failed for a body that is not JSON or names no assistant;
//   - 404 unknown_assistant when no org has the assistant (any id that is
//     not a UUID, without a lookup);
//   - 401 invalid_signature, always the same body, when the delivery is
//     not authenticated with the org's secret (for an HMAC-only org, by an
//     HMAC signature within the tolerance);
//   - 503 unavailable when a store cannot be read (or no lookup slot frees
//     up within LookupWait) or the event or tool-calls claim cannot be
//     recorded, so that Vapi retries (nothing not stored is acknowledged,
//     no tool runs unclaimed);
//   - 200 otherwise: Vapi's {"results": [...]} for tool calls (for a
//     delivery already handled, the first results when this instance still
//     remembers them, else a result per call saying it was already
//     handled), and {"received": true} (with "duplicate": true for a
//     delivery already handled) for everything else.
//
// It logs one line per call and never returns a 500.
func (h *Handler) Handle(ctx context.Context, r Request) Response {
	start := time.Now()
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = h.opts.Now()
	}
	t := trace{start: start, requestID: r.RequestID, clientIP: r.ClientIP}
	resp, outcome := h.handle(ctx, r, &t)
	h.stats.count(outcome)
	h.logLine(ctx, &t, outcome, resp.Status, time.Since(start))
	return resp
}

func (h *Handler) handle(ctx context.Context, r Request, t *trace) (Response, string) {
	if len(r.Body) > h.opts.MaxBodyBytes {
		return respTooLarge, OutcomeBadRequest
	}
	msg, err := readPayload(r.Body)
	if err != nil {
		return respMalformed, OutcomeBadRequest
	}
	t.typ = clip(msg.Type, 64)
	if msg.AssistantID == "" {
		return respNoAssistant, OutcomeBadRequest
	}
	t.assistantID = clip(msg.AssistantID, 64)

	begin := time.Now()
	orgID, err := h.resolve(ctx, msg.AssistantID)
	if errors.Is(err, errUnknownAssistant) {
		h.observeVerify(time.Since(begin))
		return respUnknownAssistant, OutcomeUnknownAssistant
	}
	if err != nil {
		t.err = err
		return respUnavailable, OutcomeError
	}
	t.orgID = orgID
	keys, err := h.keys(ctx, orgID)
	if err != nil {
		t.err = err
		return respUnavailable, OutcomeError
	}
	v := verify(r.Header, r.Body, keys.key, keys.hmacOnly, r.ReceivedAt, h.opts.Tolerance)
	if !v.ok {
		// Only a delivery the current secret refuses pays for the second
		// check: one signed before a rotation, inside its grace period.
		if prev, ok := keys.previousAt(r.ReceivedAt); ok {
			if pv := verify(r.Header, r.Body, prev, keys.hmacOnly, r.ReceivedAt, h.opts.Tolerance); pv.ok {
				v = pv
			}
		}
	}
	h.observeVerify(time.Since(begin))
	if !v.ok {
		t.failedCheck = v.failure
		if v.stale {
			h.refusals.add(orgID, msg.AssistantID, app.RefusalStaleTimestamp, r.ReceivedAt)
			return respInvalidSignature, OutcomeStaleTimestamp
		}
		h.refusals.add(orgID, msg.AssistantID, app.RefusalBadSignature, r.ReceivedAt)
		return respInvalidSignature, OutcomeInvalidSignature
	}
	t.mode = v.mode
	t.acked = true

	switch msg.Type {
	case TypeStatusUpdate, TypeEndOfCallReport, TypeToolCalls:
		dedup := dedupKey(&msg, r.Body)
		t.acked = false
		return h.once(orgID, dedup, v.signature, func() (Response, string) {
			return h.deliver(ctx, orgID, dedup, &msg, r, t)
		})
	}
	return respReceived, OutcomeVerified
}

// deliver handles a delivery that is recorded: a status update or
// end-of-call report is stored; a tool-calls delivery is stored as its
// claim before any tool runs, and its tools run only when this call made
// the claim, so they run at most once whichever instances receive it and
// whatever they remember (a claim whose tools never ran, after a crash, is
// not run again). A delivery recorded before is answered as a duplicate:
// for tool calls, a result per call saying it was already handled.
func (h *Handler) deliver(ctx context.Context, orgID, dedup string, msg *message, r Request, t *trace) (Response, string) {
	inserted, err := h.record(ctx, orgID, dedup, msg, r, t)
	if err != nil {
		return respUnavailable, OutcomeError
	}
	if msg.Type != TypeToolCalls {
		if !inserted {
			return respDuplicate, OutcomeDuplicate
		}
		return respReceived, OutcomeVerified
	}
	if !inserted {
		return Response{Status: http.StatusOK, Body: handledBefore(msg.ToolCalls)}, OutcomeDuplicate
	}
	start := t.start
	if start.IsZero() {
		start = time.Now()
	}
	res := h.runTools(ctx, start.Add(h.opts.ToolBudget), orgID, msg.ToolCalls, &t.tools)
	h.recordOutcome(ctx, orgID, dedup, t)
	return Response{Status: http.StatusOK, Body: res}, OutcomeVerified
}

// record stores the delivery as a call event of the org, unless the org
// already has one with its dedup key, touches the assistant and reports
// whether it inserted. A store error is kept in t.
func (h *Handler) record(ctx context.Context, orgID, dedup string, msg *message, r Request, t *trace) (bool, error) {
	ev := app.CallEvent{
		OrgID:           orgID,
		CallID:          msg.CallID,
		Type:            msg.Type,
		Status:          msg.Status,
		EndedReason:     msg.EndedReason,
		DurationSeconds: msg.DurationSeconds,
		DedupKey:        dedup,
		OccurredAt:      msg.OccurredAt,
		ReceivedAt:      r.ReceivedAt,
		AssistantID:     msg.AssistantID,
	}
	h.stats.storeCalls.Add(1)
	inserted, err := h.deps.Events.RecordCallEvent(ctx, ev)
	if err != nil {
		t.err = err
		return false, err
	}
	h.touch(ctx, orgID, msg.AssistantID, t)
	return inserted, nil
}

// recordOutcome stores whether every tool of a tool-calls delivery
// succeeded (by the outcomes runTools logged in t), waiting at most
// touchTimeout: the tools have run, so a failure is logged and does not
// fail the webhook.
func (h *Handler) recordOutcome(ctx context.Context, orgID, dedup string, t *trace) {
	outcome := app.DeliveryToolsSucceeded
	for _, tool := range t.tools {
		if !toolSucceeded(tool) {
			outcome = app.DeliveryToolsFailed
			break
		}
	}
	h.stats.storeCalls.Add(1)
	ctx, cancel := context.WithTimeout(ctx, touchTimeout)
	defer cancel()
	if err := h.deps.Events.SetCallEventOutcome(ctx, orgID, dedup, outcome); err != nil && t.touchErr == nil {
		t.touchErr = err
	}
}

// touchTimeout bounds the last_used_at write of a delivery: a bookkeeping
// write that must not take the time of the delivery's tools or hold its
// answer when the database is slow.
const touchTimeout = 250 * time.Millisecond

// touch writes the org's assistant's last_used_at unless this instance did so
// within TouchEvery, waiting at most touchTimeout. A failure is logged and
// does not fail the webhook.
func (h *Handler) touch(ctx context.Context, orgID, assistantID string, t *trace) {
	if h.caches.touched.Add(assistantID, struct{}{}, h.opts.TouchEvery) != nil {
		return
	}
	h.stats.storeCalls.Add(1)
	ctx, cancel := context.WithTimeout(ctx, touchTimeout)
	defer cancel()
	if _, err := h.deps.Mappings.TouchAssistant(ctx, orgID, assistantID, h.opts.Now()); err != nil {
		h.caches.touched.Delete(assistantID)
		t.touchErr = err
	}
}

// dedupKey identifies a delivery within its org: the call, type and
// message timestamp when the message has them, else the body itself. It is
// a digest, so its length does not depend on the payload.
func dedupKey(msg *message, body []byte) string {
	d := sha256.New()
	if msg.CallID != "" && msg.Timestamp != "" {
		d.Write([]byte("call\x00" + msg.CallID + "\x00" + msg.Type + "\x00" + msg.Timestamp))
	} else {
		d.Write([]byte("body\x00"))
		d.Write(body)
	}
	return "v1:" + hex.EncodeToString(d.Sum(nil))
}

// deliveryEntry remembers a handled delivery and the answer to replay.
type deliveryEntry struct{ resp Response }

// once runs fn unless the delivery was handled before (same dedup key, or
// the same HMAC signature, within DedupTTL): a repeat gets the first answer
// again for tool calls and {"received": true, "duplicate": true} otherwise,
// with the outcome duplicate. Concurrent copies of one delivery on this
// instance wait for the first one and share its answer. Only a delivery that
// was handled (fn's outcome verified or duplicate) is remembered, so a
// failed one is retried in full.
func (h *Handler) once(orgID, dedup string, signature []byte, fn func() (Response, string)) (Response, string) {
	c := h.caches
	key := orgID + "\x00" + dedup
	var sigKey string
	if signature != nil {
		sigKey = orgID + "\x00sig\x00" + hex.EncodeToString(signature)
	}
	if e, ok := h.seen(key, sigKey); ok {
		return replay(e), OutcomeDuplicate
	}
	c.deliveries.misses.Add(1)
	type result struct {
		resp    Response
		outcome string
	}
	led := false
	v, _, _ := c.lookups.Do(c.deliveries.name+"\x00"+key, func() (any, error) {
		led = true
		if e, ok := h.seen(key, sigKey); ok { // handled while this call waited
			return result{replay(e), OutcomeDuplicate}, nil
		}
		resp, outcome := fn()
		if outcome == OutcomeVerified || outcome == OutcomeDuplicate {
			e := &deliveryEntry{resp: resp}
			c.deliveries.SetDefault(key, e)
			if sigKey != "" {
				c.deliveries.SetDefault(sigKey, e)
			}
		}
		return result{resp, outcome}, nil
	})
	res := v.(result)
	if !led && (res.outcome == OutcomeVerified || res.outcome == OutcomeDuplicate) {
		return replay(&deliveryEntry{resp: res.resp}), OutcomeDuplicate
	}
	return res.resp, res.outcome
}

// seen looks a delivery up by its key and its signature key.
func (h *Handler) seen(key, sigKey string) (*deliveryEntry, bool) {
	c := h.caches
	if v, ok := c.deliveries.Get(key); ok {
		c.deliveries.hits.Add(1)
		return v.(*deliveryEntry), true
	}
	if sigKey != "" {
		if v, ok := c.deliveries.Get(sigKey); ok {
			c.deliveries.hits.Add(1)
			return v.(*deliveryEntry), true
		}
	}
	return nil, false
}

// replay is the answer to a repeated delivery: tool results again (Vapi
// needs them), a plain duplicate acknowledgement otherwise.
func replay(e *deliveryEntry) Response {
	if _, ok := e.resp.Body.(toolResults); ok {
		return e.resp
	}
	return respDuplicate
}

// logLine writes the one log line of a webhook: never a secret, never the
// payload's personal data.
func (h *Handler) logLine(ctx context.Context, t *trace, outcome string, status int, d time.Duration) {
	level := slog.LevelInfo
	switch outcome {
	case OutcomeVerified:
		if t.acked {
			// An event acknowledged without a write (speech and
			// conversation updates, many per call): the metrics count
			// them, the log shows them at debug.
			level = slog.LevelDebug
		}
	case OutcomeError:
		level = slog.LevelError
	case OutcomeInvalidSignature, OutcomeStaleTimestamp, OutcomeUnknownAssistant, OutcomeBadRequest:
		level = slog.LevelWarn
	}
	if !h.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 14)
	if t.requestID != "" {
		attrs = append(attrs, slog.String("request_id", t.requestID))
	}
	if t.clientIP != "" {
		attrs = append(attrs, slog.String("ip", t.clientIP))
	}
	attrs = append(attrs,
		slog.String("assistant_id", t.assistantID),
		slog.String("org_id", t.orgID),
		slog.String("type", t.typ),
		slog.String("outcome", outcome),
		slog.Int("status", status),
		slog.Duration("duration", d))
	if t.mode != "" {
		attrs = append(attrs, slog.String("auth", t.mode))
	}
	if h.opts.Debug && t.failedCheck != "" {
		attrs = append(attrs, slog.String("failed_check", t.failedCheck))
	}
	if len(t.tools) > 0 {
		attrs = append(attrs, slog.Any("tools", t.tools))
	}
	if t.err != nil {
		attrs = append(attrs, slog.String("err", t.err.Error()))
	}
	if t.touchErr != nil {
		attrs = append(attrs, slog.String("touch_err", t.touchErr.Error()))
	}
	h.log.LogAttrs(ctx, level, "vapi webhook", attrs...)
}
