// Package activity answers what an org's admins may see of its activity:
// the audit log (who changed what, when, how it went), the Vapi deliveries
// it recorded and the refused ones, counted. Pages are newest first and
// continue with an opaque cursor that is bound, by an HMAC, to the listing,
// the org and the filters it was made for: a cursor that was altered,
// forged or made for another org or other filters is refused as invalid
// input, never read.
//
// Errors: EForbidden for a principal who is not an admin, EValidation (with
// the field) for a bad filter, limit or cursor; anything else is internal.
package activity

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"time"

	"byoc/app"
	"byoc/app/integrations"
)

// Page sizes.
const (
	DefaultLimit = 50
	MaxLimit     = 100
)

// RefusalWindow is how far back the refusal counts reach.
const RefusalWindow = 24 * time.Hour

// Store is what the service reads; *db.DB implements it.
type Store interface {
	AuditPage(ctx context.Context, q app.AuditQuery) ([]app.AuditRecord, error)
	Deliveries(ctx context.Context, orgID string, before *app.Position, limit int) ([]app.Delivery, error)
	RefusalCounts(ctx context.Context, orgID string, since time.Time) ([]app.RefusalCount, error)
	LastDelivery(ctx context.Context, orgID string) (time.Time, bool, error)
}

// Service reads the activity of an org.
type Service struct {
	store Store
	key   []byte
	now   func() time.Time
}

// New returns a Service whose cursors are keyed from secret (at least 32
// bytes, such as SESSION_SECRET). now may be nil (time.Now).
func New(store Store, secret []byte, now func() time.Time) (*Service, error) {
	if len(secret) < 32 {
		return nil, errors.New("activity: the cursor secret must be at least 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "byoc activity cursor hmac-sha256", 32)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, key: key, now: now}, nil
}

// Action is one kind of audit entry as the filter offers it.
type Action struct {
	Code  string
	Label string
}

// Actions are the audit actions, in the order the filter lists them.
var Actions = []Action{
	{integrations.ActionSave, "Saved or connected"},
	{integrations.ActionVerify, "Tested the connection"},
	{integrations.ActionDisconnect, "Disconnected"},
	{integrations.ActionRotateSecret, "Rotated the webhook secret"},
	{integrations.ActionRevealSecret, "Revealed the webhook secret"},
	{integrations.ActionWebhookSigning, "Changed webhook signing"},
	{app.AuditInviteCreate, "Invited"},
	{app.AuditInviteRevoke, "Revoked an invitation"},
	{app.AuditInviteAccept, "Joined"},
	{app.AuditMemberRole, "Changed a role"},
	{app.AuditMemberRemove, "Removed a member"},
	{app.AuditPasswordChange, "Changed their password"},
	{app.AuditPasswordReset, "Reset their password"},
}

// Describe says in words what an entry did: its action's label, and
// "Connected" for a save of an OAuth provider (its credentials come from
// the provider's sign-in, not a form).
func Describe(e app.AuditEntry) string {
	if e.Action == integrations.ActionSave && e.Provider == app.GoogleCalendar {
		return "Connected"
	}
	for _, a := range Actions {
		if a.Code == e.Action {
			return a.Label
		}
	}
	return e.Action
}

// AuditInput is a request for a page of the audit log, as received: every
// field may be empty.
type AuditInput struct {
	Provider, Action, Cursor, Limit string
}

// AuditPage is one page of the audit log. Next is the cursor of the
// following page, "" when this is the last.
type AuditPage struct {
	Entries  []app.AuditRecord
	Provider app.Provider
	Action   string
	Next     string
}

// Audit returns a page of p's org's audit log, newest first.
func (s *Service) Audit(ctx context.Context, p app.Principal, in AuditInput) (AuditPage, error) {
	if !p.IsAdmin() {
		return AuditPage{}, errNotAdmin()
	}
	fields := map[string]string{}
	var provider app.Provider
	if in.Provider != "" {
		pr, err := app.ParseProvider(in.Provider)
		if err != nil {
			fields["provider"] = "Not one of the providers."
		}
		provider = pr
	}
	if in.Action != "" && !slices.ContainsFunc(Actions, func(a Action) bool { return a.Code == in.Action }) {
		fields["action"] = "Not one of the audited actions."
	}
	limit, lerr := parseLimit(in.Limit)
	if lerr != "" {
		fields["limit"] = lerr
	}
	scope := []string{"audit", p.OrgID, string(provider), in.Action}
	var before *app.Position
	if len(fields) == 0 && in.Cursor != "" {
		pos, ok := s.open(in.Cursor, scope)
		if !ok {
			fields["cursor"] = "Not a cursor of this listing: start again from the first page."
		}
		before = &pos
	}
	if len(fields) > 0 {
		return AuditPage{}, app.ValidationError(fields)
	}
	rows, err := s.store.AuditPage(ctx, app.AuditQuery{OrgID: p.OrgID, Provider: provider, Action: in.Action,
		Before: before, Limit: limit + 1})
	if err != nil {
		return AuditPage{}, app.Internal(err)
	}
	page := AuditPage{Entries: rows, Provider: provider, Action: in.Action}
	if len(rows) > limit {
		page.Entries = rows[:limit]
		last := page.Entries[limit-1]
		page.Next = s.seal(app.Position{At: last.At, ID: last.ID}, scope)
	}
	return page, nil
}

// DeliveriesPage is one page of the recorded deliveries with the refusal
// counts of the RefusalWindow before Since... now.
type DeliveriesPage struct {
	Deliveries []app.Delivery
	Next       string
	// Refusals counts the refused deliveries naming the org's assistants
	// since Since, per assistant and reason.
	Refusals []app.RefusalCount
	Since    time.Time
}

// Deliveries returns a page of p's org's recorded deliveries, newest
// first, and its refusal counts over the last RefusalWindow.
func (s *Service) Deliveries(ctx context.Context, p app.Principal, cursor, limitText string) (DeliveriesPage, error) {
	if !p.IsAdmin() {
		return DeliveriesPage{}, errNotAdmin()
	}
	fields := map[string]string{}
	limit, lerr := parseLimit(limitText)
	if lerr != "" {
		fields["limit"] = lerr
	}
	scope := []string{"deliveries", p.OrgID}
	var before *app.Position
	if cursor != "" {
		pos, ok := s.open(cursor, scope)
		if !ok {
			fields["cursor"] = "Not a cursor of this listing: start again from the first page."
		}
		before = &pos
	}
	if len(fields) > 0 {
		return DeliveriesPage{}, app.ValidationError(fields)
	}
	rows, err := s.store.Deliveries(ctx, p.OrgID, before, limit+1)
	if err != nil {
		return DeliveriesPage{}, app.Internal(err)
	}
	since := s.now().Add(-RefusalWindow)
	refusals, err := s.store.RefusalCounts(ctx, p.OrgID, since)
	if err != nil {
		return DeliveriesPage{}, app.Internal(err)
	}
	page := DeliveriesPage{Deliveries: rows, Refusals: refusals, Since: since}
	if len(rows) > limit {
		page.Deliveries = rows[:limit]
		last := page.Deliveries[limit-1]
		page.Next = s.seal(app.Position{At: last.ReceivedAt, ID: last.ID}, scope)
	}
	return page, nil
}

// LastDelivery returns when p's org last recorded a delivery (any member
// may know), and false when it never did.
func (s *Service) LastDelivery(ctx context.Context, p app.Principal) (time.Time, bool, error) {
	at, ok, err := s.store.LastDelivery(ctx, p.OrgID)
	if err != nil {
		return time.Time{}, false, app.Internal(err)
	}
	return at, ok, nil
}

func errNotAdmin() error {
	return app.Errorf(app.EForbidden, "Only an admin of this organization can see its activity.")
}

// parseLimit reads a page size: empty means DefaultLimit; else 1 to
// MaxLimit. The second result is the field's message when it is invalid.
func parseLimit(s string) (int, string) {
	if s == "" {
		return DefaultLimit, ""
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, "Must be a whole number from 1 to " + strconv.Itoa(MaxLimit) + "."
	}
	return n, ""
}

// Cursors: 16 bytes of position (the time in microseconds, the id) and the
// first 16 bytes of an HMAC over the position and the scope, base64url.
const (
	posLen    = 16
	macLen    = 16
	cursorLen = posLen + macLen
)

func (s *Service) mac(pos []byte, scope []string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(pos)
	for _, part := range scope {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		m.Write(n[:])
		m.Write([]byte(part))
	}
	return m.Sum(nil)[:macLen]
}

// seal returns the cursor of the rows strictly before pos in scope.
func (s *Service) seal(pos app.Position, scope []string) string {
	b := make([]byte, posLen, cursorLen)
	binary.BigEndian.PutUint64(b[:8], uint64(pos.At.UnixMicro()))
	binary.BigEndian.PutUint64(b[8:], uint64(pos.ID))
	b = append(b, s.mac(b, scope)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// open returns the position of a cursor sealed for scope, and false for
// anything else, another spelling of the same bytes included.
func (s *Service) open(cursor string, scope []string) (app.Position, bool) {
	if len(cursor) != base64.RawURLEncoding.EncodedLen(cursorLen) {
		return app.Position{}, false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	if err != nil || len(b) != cursorLen || !hmac.Equal(b[posLen:], s.mac(b[:posLen], scope)) {
		return app.Position{}, false
	}
	return app.Position{
		At: time.UnixMicro(int64(binary.BigEndian.Uint64(b[:8]))).UTC(),
		ID: int64(binary.BigEndian.Uint64(b[8:16])),
	}, true
}
