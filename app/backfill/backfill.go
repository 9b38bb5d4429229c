// Package backfill brings existing orgs over from the old platform's tables
// (`byoc backfill-legacy`): each provider's credentials from `integrations`
// (decrypted with the old service's key, checked as a save checks them,
// optionally verified with the provider, sealed in BYOC's stored format) and
// each assistant from `agents` into the assistant mappings and the outbound
// agent set-up.
//
// A run goes through the legacy orgs in batches; each batch is written in
// one transaction that also records which items it brought over and
// announces the changed orgs to every instance's caches once per batch. It
// only adds: whatever BYOC already holds for an org (saved by an admin, or
// brought over before) is kept, and an item once brought over is never
// brought over again, even after an admin disconnected it. So a second run
// changes nothing, and a run that stops half-way loses nothing: the next
// one carries on. Nothing it prints or logs holds a secret.
package backfill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"byoc/app"
	"byoc/app/credentials"
	"byoc/app/keyring"
)

// Source reads the old platform's tables; *db.DB implements it (on BYOC's
// database or another).
type Source interface {
	// LegacyOrgIDs returns which legacy tables exist and the distinct org
	// ids (as text, "" for NULL) of their rows, in order.
	LegacyOrgIDs(ctx context.Context) (tables []string, orgIDs []string, err error)
	// LegacyRows returns every row of the legacy tables whose org id is one
	// of orgIDs, and the agents of other orgs that name one of their
	// assistants (so an assistant given to two orgs is seen as such).
	LegacyRows(ctx context.Context, orgIDs []string) ([]app.LegacyIntegration, []app.LegacyAgent, error)
}

// Target is BYOC's database; *db.DB implements it.
type Target interface {
	ImportState(ctx context.Context, orgIDs, assistantIDs []string) (app.ImportState, error)
	// ImportRows writes rows in one transaction that announces the orgs it
	// changed, and returns the credentials and mappings it added (a row
	// already there is left alone and not returned).
	ImportRows(ctx context.Context, rows app.ImportRows) (app.ImportRows, error)
}

// Verifier asks a provider whether it accepts a config;
// integrations.Verifier values implement it.
type Verifier interface {
	Verify(ctx context.Context, orgID string, cfg app.Config) (app.Verification, error)
}

// DefaultBatchSize is how many legacy orgs one transaction brings over.
const DefaultBatchSize = 500

// Options says how Run works. Legacy and Keyring are required.
type Options struct {
	// Legacy decrypts the old service's configs.
	Legacy *LegacyKey
	// Keyring seals the configs for BYOC, with its primary key, and opens
	// BYOC's stored rows to compare them.
	Keyring *keyring.Keyring
	// DryRun reads and checks everything and writes nothing; the report
	// then says what a run would do.
	DryRun bool
	// Verify asks each provider whether it accepts the config before it is
	// brought over (Verifiers by provider); a refused or unreachable one
	// fails. Without it nothing calls a provider.
	Verify    bool
	Verifiers map[app.Provider]Verifier
	// BatchSize is how many orgs one transaction covers (0:
	// DefaultBatchSize).
	BatchSize int
	// DefaultPhoneRegion reads national phone numbers ("US" when empty).
	DefaultPhoneRegion string
	// Now is the clock of verifications (nil: time.Now).
	Now func() time.Time
	// Logger receives a line per batch; nil discards.
	Logger *slog.Logger
}

// Run brings the legacy tables of src over into dst (see the package
// documentation) and reports what it did. It returns an error only when a
// table cannot be read or written, or the options are incomplete; batches
// written before that stay written.
func Run(ctx context.Context, src Source, dst Target, opts Options) (Report, error) {
	if opts.Legacy == nil || opts.Keyring == nil {
		return Report{}, errors.New("backfill: a legacy key and a keyring are required")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &run{src: src, dst: dst, opts: opts, log: opts.Logger.With("component", "backfill"),
		rep: Report{DryRun: opts.DryRun, Integrations: newTally(), Agents: newTally()}}
	start := time.Now()
	tables, ids, err := src.LegacyOrgIDs(ctx)
	if err != nil {
		return r.rep, fmt.Errorf("backfill: read the legacy tables: %w", err)
	}
	r.rep.Tables = tables
	for lo := 0; lo < len(ids); lo += opts.BatchSize {
		if err := r.batch(ctx, ids[lo:min(lo+opts.BatchSize, len(ids))]); err != nil {
			r.rep.Elapsed = time.Since(start)
			return r.rep, err
		}
		r.rep.Batches++
	}
	r.rep.Elapsed = time.Since(start)
	r.log.InfoContext(ctx, "legacy backfill finished", "dry_run", opts.DryRun, "batches", r.rep.Batches,
		"credentials_migrated", r.rep.Integrations.Migrated, "assistants_migrated", r.rep.Agents.Migrated,
		"failed", r.rep.Failed())
	return r.rep, nil
}

type run struct {
	src  Source
	dst  Target
	opts Options
	log  *slog.Logger
	rep  Report
}

// credRow is one row of the legacy integrations table on its way.
type credRow struct {
	org, raw string // the org id (normalized when valid) and the provider as read
	provider app.Provider
	cfg      app.Config
	canon    []byte // cfg's stored form, to compare rows; holds secrets
	verified time.Time
	outcome  Outcome
	reason   string
}

// agentRow is one row of the legacy agents table on its way.
type agentRow struct {
	org, id string // normalized when valid
	role    app.AssistantRole
	outcome Outcome
	reason  string
}

func (c *credRow) settle(o Outcome, reason string) {
	if c.outcome == "" {
		c.outcome, c.reason = o, reason
	}
}

func (a *agentRow) settle(o Outcome, reason string) {
	if a.outcome == "" {
		a.outcome, a.reason = o, reason
	}
}

type credKey struct {
	org      string
	provider app.Provider
}

type roleKey struct {
	org  string
	role app.AssistantRole
}

// batch brings over the legacy rows of the orgs ids.
func (r *run) batch(ctx context.Context, ids []string) error {
	ints, agents, err := r.src.LegacyRows(ctx, ids)
	if err != nil {
		return fmt.Errorf("backfill: read the legacy rows: %w", err)
	}
	creds := make([]*credRow, len(ints))
	for i, in := range ints {
		creds[i] = r.parseCredential(in)
	}
	defer func() {
		for _, c := range creds {
			clear(c.canon)
		}
	}()
	inBatch := map[string]bool{}
	for _, id := range ids {
		inBatch[id] = true
	}
	all := make([]*agentRow, len(agents))
	var agentRows []*agentRow // the batch's own; the others only tell of their assistants
	for i, a := range agents {
		all[i] = parseAgent(a)
		if inBatch[a.OrgID] {
			agentRows = append(agentRows, all[i])
		}
	}
	dedupeCredentials(creds)
	dedupeAgents(all)

	// What BYOC holds for the orgs and assistants still in play.
	orgSet, idSet := map[string]bool{}, map[string]bool{}
	for _, c := range creds {
		if c.outcome == "" {
			orgSet[c.org] = true
		}
	}
	for _, a := range agentRows {
		if a.outcome == "" {
			orgSet[a.org], idSet[a.id] = true, true
		}
	}
	var rows app.ImportRows
	if len(orgSet) > 0 {
		st, err := r.dst.ImportState(ctx, slices.Sorted(maps.Keys(orgSet)), slices.Sorted(maps.Keys(idSet)))
		if err != nil {
			return fmt.Errorf("backfill: read BYOC's state: %w", err)
		}
		rows, err = r.plan(ctx, st, creds, agentRows)
		if err != nil {
			return err
		}
	}
	if !r.opts.DryRun && (len(rows.Credentials) > 0 || len(rows.Mappings) > 0 || len(rows.Items) > 0) {
		written, err := r.dst.ImportRows(ctx, rows)
		if err != nil {
			return fmt.Errorf("backfill: write batch: %w", err)
		}
		settleWritten(written, creds, agentRows)
	}
	for _, c := range creds {
		c.settle(Migrated, "")
		r.rep.Integrations.add(c.outcome, c.reason)
		if c.outcome != Migrated && c.reason != ReasonAlreadyMigrated {
			r.rep.Entries = append(r.rep.Entries, Entry{TableIntegrations, clip(c.org), clip(c.raw), c.outcome, c.reason})
		}
	}
	for _, a := range agentRows {
		a.settle(Migrated, "")
		r.rep.Agents.add(a.outcome, a.reason)
		if a.outcome != Migrated && a.reason != ReasonAlreadyMigrated {
			r.rep.Entries = append(r.rep.Entries, Entry{TableAgents, clip(a.org), clip(a.id), a.outcome, a.reason})
		}
	}
	r.log.DebugContext(ctx, "legacy batch done", "orgs", len(ids), "credentials", len(rows.Credentials),
		"assistants", len(rows.Mappings), "dry_run", r.opts.DryRun)
	return nil
}

// parseCredential checks one integrations row and decodes its config.
func (r *run) parseCredential(in app.LegacyIntegration) *credRow {
	c := &credRow{org: normalizeID(in.OrgID), raw: in.Provider}
	if !app.IsUUID(c.org) {
		c.org = in.OrgID
		c.settle(Failed, ReasonBadOrgID)
		return c
	}
	p, ok := parseProvider(in.Provider)
	if !ok {
		c.settle(Skipped, ReasonUnknownProvider)
		return c
	}
	c.provider, c.raw = p, string(p)
	spec := app.MustDescribe(p)
	plain, err := r.opts.Legacy.Plaintext(in.Config.Reveal())
	if err != nil {
		c.settle(Failed, err.Error())
		return c
	}
	cfg, err := Decode(spec, plain, r.opts.DefaultPhoneRegion)
	clear(plain)
	switch {
	case errors.Is(err, ErrNoRefreshToken):
		c.settle(Skipped, err.Error())
		return c
	case app.ErrorCode(err) == app.EValidation && len(app.ErrorFields(err)) > 0:
		c.settle(Failed, "invalid fields: "+strings.Join(slices.Sorted(maps.Keys(app.ErrorFields(err))), ", "))
		return c
	case err != nil:
		c.settle(Failed, "invalid config: "+reasonOf(err))
		return c
	}
	if c.canon, err = spec.Encode(cfg); err != nil {
		c.settle(Failed, "invalid config: it cannot be stored")
		return c
	}
	c.cfg = cfg
	return c
}

// reasonOf is the report's reason for a config Decode refused: its own
// errors say which field, never what it holds.
func reasonOf(err error) string {
	var e *app.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// parseAgent checks one agents row.
func parseAgent(in app.LegacyAgent) *agentRow {
	a := &agentRow{org: normalizeID(in.OrgID), id: normalizeID(in.AssistantID)}
	switch strings.ToLower(strings.TrimSpace(in.Role)) {
	case "", string(app.Inbound):
		a.role = app.Inbound
	case string(app.Outbound):
		a.role = app.Outbound
	default:
		a.settle(Failed, ReasonBadRole)
	}
	if !app.IsUUID(a.org) {
		a.org = in.OrgID
		a.settle(Failed, ReasonBadOrgID)
	}
	if !app.IsUUID(a.id) {
		a.id = in.AssistantID
		a.settle(Failed, ReasonBadAssistant)
	}
	return a
}

// dedupeCredentials settles rows that share an org and provider: copies of
// one config keep the first and skip the others; rows that differ (or of
// which one cannot be read) all fail, since nothing says which is right.
func dedupeCredentials(rows []*credRow) {
	groups := map[credKey][]*credRow{}
	for _, c := range rows {
		if c.provider != "" {
			k := credKey{c.org, c.provider}
			groups[k] = append(groups[k], c)
		}
	}
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		same := true
		for _, c := range g {
			same = same && c.cfg != nil && bytes.Equal(c.canon, g[0].canon)
		}
		for i, c := range g {
			switch {
			case !same:
				c.settle(Failed, ReasonConflict)
			case i > 0:
				c.settle(Skipped, ReasonDuplicate)
			}
		}
	}
}

// dedupeAgents settles rows that give an org two assistants for one role,
// or one assistant to two orgs or roles (all fail), and copies of a row
// (the first stays).
func dedupeAgents(rows []*agentRow) {
	byRole := map[roleKey][]*agentRow{}
	byID := map[string][]*agentRow{}
	for _, a := range rows {
		if a.outcome == "" {
			byRole[roleKey{a.org, a.role}] = append(byRole[roleKey{a.org, a.role}], a)
			byID[a.id] = append(byID[a.id], a)
		}
	}
	for _, g := range byID {
		for _, a := range g {
			if a.org != g[0].org || a.role != g[0].role {
				for _, b := range g {
					b.settle(Failed, ReasonAssistantTwice)
				}
				break
			}
		}
	}
	for _, g := range byRole {
		for _, a := range g {
			if a.id != g[0].id {
				for _, b := range g {
					b.settle(Failed, ReasonRoleConflict)
				}
				break
			}
		}
		for _, a := range g[1:] {
			a.settle(Skipped, ReasonDuplicate)
		}
	}
}

// plan settles the rows still in play against what BYOC holds, verifies
// the configs to bring over when asked to, and returns the rows to write.
func (r *run) plan(ctx context.Context, st app.ImportState, creds []*credRow, agents []*agentRow) (app.ImportRows, error) {
	orgs := map[string]bool{}
	for _, o := range st.Orgs {
		orgs[o] = true
	}
	done := map[app.ImportItem]bool{}
	for _, it := range st.Items {
		done[it] = true
	}
	stored := map[credKey]app.CredentialRecord{}
	for _, rec := range st.Credentials {
		stored[credKey{rec.OrgID, rec.Provider}] = rec
	}
	byID := map[string]app.AssistantMapping{}
	byRole := map[roleKey]app.AssistantMapping{}
	for _, m := range st.Mappings {
		byID[m.VapiAssistantID] = m
		byRole[roleKey{m.OrgID, m.Role}] = m
	}

	var rows app.ImportRows
	outbound := map[string]*app.OutboundAgent{}
	outboundOf := func(org string) *app.OutboundAgent {
		if outbound[org] == nil {
			outbound[org] = &app.OutboundAgent{OrgID: org}
		}
		return outbound[org]
	}
	for _, c := range creds {
		if c.outcome != "" {
			continue
		}
		item := app.ImportItem{OrgID: c.org, Kind: app.ImportCredentials, Item: string(c.provider)}
		switch {
		case !orgs[c.org]:
			c.settle(Skipped, ReasonNoOrg)
			continue
		case done[item]:
			c.settle(Skipped, ReasonAlreadyMigrated)
			continue
		}
		if rec, ok := stored[credKey{c.org, c.provider}]; ok {
			if r.sameConfig(rec, c.canon) {
				c.settle(Skipped, ReasonAlreadyMigrated)
			} else {
				c.settle(Skipped, ReasonKept)
			}
			rows.Items = append(rows.Items, item)
			continue
		}
		if r.opts.Verify {
			if reason := r.verify(ctx, c); reason != "" {
				c.settle(Failed, reason)
				continue
			}
		}
		rec := app.CredentialRecord{OrgID: c.org, Provider: c.provider, IsActive: true}
		if !c.verified.IsZero() {
			rec.LastVerifiedAt = &c.verified
		}
		var err error
		if rec.Ciphertext, err = credentials.Seal(r.opts.Keyring, c.org, c.cfg); err != nil {
			return app.ImportRows{}, fmt.Errorf("backfill: seal org %s %s: %w", c.org, c.provider, err)
		}
		rows.Credentials = append(rows.Credentials, rec)
		rows.Items = append(rows.Items, item)
		if n, ok := c.cfg.(app.OutboundNumberer); ok && n.OutboundNumber() != "" {
			outboundOf(c.org).PhoneNumber = n.OutboundNumber()
		}
	}
	for _, a := range agents {
		if a.outcome != "" {
			continue
		}
		item := app.ImportItem{OrgID: a.org, Kind: app.ImportAssistant, Item: string(a.role)}
		switch {
		case !orgs[a.org]:
			a.settle(Skipped, ReasonNoOrg)
			continue
		case done[item]:
			a.settle(Skipped, ReasonAlreadyMigrated)
			continue
		}
		if m, ok := byID[a.id]; ok {
			if m.OrgID == a.org && m.Role == a.role {
				a.settle(Skipped, ReasonAlreadyMigrated)
				rows.Items = append(rows.Items, item)
			} else {
				a.settle(Failed, ReasonAssistantTaken)
			}
			continue
		}
		if _, ok := byRole[roleKey{a.org, a.role}]; ok {
			a.settle(Skipped, ReasonAssistantKept)
			rows.Items = append(rows.Items, item)
			continue
		}
		rows.Mappings = append(rows.Mappings, app.AssistantMapping{VapiAssistantID: a.id, OrgID: a.org, Role: a.role})
		rows.Items = append(rows.Items, item)
		if a.role == app.Outbound {
			outboundOf(a.org).VapiAssistantID = a.id
		}
	}
	for _, org := range slices.Sorted(maps.Keys(outbound)) {
		rows.Outbound = append(rows.Outbound, *outbound[org])
	}
	return rows, nil
}

// sameConfig reports whether BYOC's stored row rec holds the config whose
// stored form is canon. A row that cannot be opened holds something else.
func (r *run) sameConfig(rec app.CredentialRecord, canon []byte) bool {
	cfg, err := credentials.Open(r.opts.Keyring, rec)
	if err != nil {
		return false
	}
	stored, err := app.MustDescribe(rec.Provider).Encode(cfg)
	defer clear(stored)
	return err == nil && bytes.Equal(stored, canon)
}

// verify asks c's provider about c's config and returns why it cannot be
// brought over ("" when the provider accepted it).
func (r *run) verify(ctx context.Context, c *credRow) string {
	v := r.opts.Verifiers[c.provider]
	if v == nil {
		return ReasonNoVerifier
	}
	if _, err := v.Verify(ctx, c.org, c.cfg); err != nil {
		r.log.InfoContext(ctx, "legacy credentials not verified", "org_id", c.org, "provider", c.provider,
			"code", app.ErrorCode(err))
		return "not verified: " + app.ErrorMessage(err)
	}
	c.verified = r.opts.Now().UTC().Truncate(time.Microsecond)
	return ""
}

// settleWritten marks what the batch's transaction added as migrated and
// what it found already there (saved by someone else meanwhile) as kept.
func settleWritten(written app.ImportRows, creds []*credRow, agents []*agentRow) {
	addedCred := map[credKey]bool{}
	for _, rec := range written.Credentials {
		addedCred[credKey{rec.OrgID, rec.Provider}] = true
	}
	addedMapping := map[string]bool{}
	for _, m := range written.Mappings {
		addedMapping[m.VapiAssistantID] = true
	}
	for _, c := range creds {
		if c.outcome == "" && !addedCred[credKey{c.org, c.provider}] {
			c.settle(Skipped, ReasonMeanwhile)
		}
	}
	for _, a := range agents {
		if a.outcome == "" && !addedMapping[a.id] {
			a.settle(Skipped, ReasonMeanwhile)
		}
	}
}

// parseProvider reads a legacy provider name: a BYOC provider in any letter
// case, with or without underscores or hyphens, and "google" for Google
// Calendar.
func parseProvider(s string) (app.Provider, bool) {
	n := normalize(strings.TrimSpace(s))
	if n == "google" {
		return app.GoogleCalendar, true
	}
	for _, p := range app.Providers {
		if normalize(string(p)) == n {
			return p, true
		}
	}
	return "", false
}

// normalizeID trims an id and folds it to lower case, as PostgreSQL prints
// UUIDs and Vapi writes its ids.
func normalizeID(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
