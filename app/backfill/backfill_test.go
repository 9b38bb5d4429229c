package backfill_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/backfill"
	"byoc/app/credentials"
	"byoc/app/keyring"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// The real adapters satisfy the backfill's consumer-side interfaces.
var (
	_ backfill.Source = (*db.DB)(nil)
	_ backfill.Target = (*db.DB)(nil)
)

const byocKeyHex = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

func byocKeyring(t testing.TB) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.Parse(byocKeyHex, "")
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// legacy is a set of the old platform's tables, in a schema of its own
// in the test database, read through src (whose search path finds them
// first, as an operator's would find public.integrations).
type legacy struct {
	t      testing.TB
	d      *db.DB // where the rows are written
	schema string
	src    *db.DB
}

// newLegacy makes empty legacy tables; withRole gives agents its optional
// role column.
func newLegacy(t testing.TB, withRole bool) *legacy {
	t.Helper()
	d := dbtest.DB(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	l := &legacy{t: t, d: d, schema: "legacy_" + hex.EncodeToString(b[:])}
	role := ""
	if withRole {
		role = ", role text"
	}
	ctx := context.Background()
	for _, q := range []string{
		`create schema ` + l.schema,
		`create table ` + l.schema + `.integrations (org_id uuid, provider text, encrypted_config text)`,
		`create table ` + l.schema + `.agents (org_id uuid, vapi_assistant_id text` + role + `)`,
	} {
		if _, err := d.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = d.Pool.Exec(context.Background(), `drop schema `+l.schema+` cascade`) })
	u, err := url.Parse(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", l.schema+",public")
	u.RawQuery = q.Encode()
	if l.src, err = db.Open(ctx, u.String(), db.Options{MaxConns: 2}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.src.Close)
	return l
}

// integration adds a row to integrations; org nil is NULL.
func (l *legacy) integration(org any, provider, config string) {
	l.t.Helper()
	if _, err := l.d.Pool.Exec(context.Background(), `insert into `+l.schema+`.integrations values ($1, $2, $3)`,
		org, provider, config); err != nil {
		l.t.Fatal(err)
	}
}

// agent adds a row to agents; role is left out without the role column.
func (l *legacy) agent(org any, assistant string, role ...any) {
	l.t.Helper()
	args := []any{org, assistant}
	q := `insert into ` + l.schema + `.agents values ($1, $2)`
	if len(role) > 0 {
		args, q = append(args, role[0]), `insert into `+l.schema+`.agents values ($1, $2, $3)`
	}
	if _, err := l.d.Pool.Exec(context.Background(), q, args...); err != nil {
		l.t.Fatal(err)
	}
}

func newID(t testing.TB) string {
	t.Helper()
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// opts are the options of a run with the test keys, small batches and its
// log in logs.
func opts(t testing.TB, logs *apptest.LogBuffer) backfill.Options {
	return backfill.Options{Legacy: legacyKey(t), Keyring: byocKeyring(t), BatchSize: 2,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

func mustRun(t testing.TB, src backfill.Source, dst backfill.Target, o backfill.Options) backfill.Report {
	t.Helper()
	rep, err := backfill.Run(context.Background(), src, dst, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// tally is a Tally in one line, reasons sorted: "3 rows: 1 migrated;
// skipped: reason=1; failed: reason=1".
func tally(t backfill.Tally) string {
	s := fmt.Sprintf("%d rows: %d migrated", t.Rows, t.Migrated)
	for _, kind := range []struct {
		name string
		m    map[string]int
	}{{"skipped", t.Skipped}, {"failed", t.Failed}} {
		if len(kind.m) == 0 {
			continue
		}
		var parts []string
		for k, v := range kind.m {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
		slices.Sort(parts)
		s += "; " + kind.name + ": " + strings.Join(parts, ", ")
	}
	return s
}

// checkTally compares a tally with the counts wanted (nil maps: none).
func checkTally(t *testing.T, what string, got backfill.Tally, rows, migrated int, skipped, failed map[string]int) {
	t.Helper()
	if skipped == nil {
		skipped = map[string]int{}
	}
	if failed == nil {
		failed = map[string]int{}
	}
	want := backfill.Tally{Rows: rows, Migrated: migrated, Skipped: skipped, Failed: failed}
	if tally(got) != tally(want) {
		t.Errorf("%s:\n got %s\nwant %s", what, tally(got), tally(want))
	}
}

// snapshot renders what BYOC holds for orgs (credentials with their
// ciphertext and timestamps, mappings, outbound agents, imported items),
// to tell whether a run changed anything.
func snapshot(t *testing.T, d *db.DB, orgs []string) string {
	t.Helper()
	var out []string
	for _, table := range []string{"org_credentials", "assistant_org_mapping", "outbound_agent_config", "legacy_imports"} {
		var text string
		if err := d.Pool.QueryRow(context.Background(), `select coalesce(string_agg(x::text, E'\n' order by x::text), '')
			from `+table+` x where x.org_id = any($1::uuid[])`, orgs).Scan(&text); err != nil {
			t.Fatal(err)
		}
		out = append(out, table+":\n"+text)
	}
	return strings.Join(out, "\n")
}

// notifications subscribes to the cache channel and returns a function
// that collects what was announced meanwhile (waiting briefly for
// stragglers).
func notifications(t testing.TB) func() []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "listen "+db.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	return func() []string {
		var got []string
		for {
			wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			n, err := conn.WaitForNotification(wctx)
			cancel()
			if err != nil {
				return got
			}
			got = append(got, n.Payload)
		}
	}
}

// Secrets of the legacy rows the tests write: none may be printed or logged.
const (
	vapiKey       = "11111111-2222-4333-8444-555555555555"
	vapiSecret    = "legacy-webhook-secret-0123456789"
	twilioToken   = "0123456789abcdef0123456789abcdef"
	resendKey     = "re_legacyResendKey12345"
	elevenKey     = "sk_legacyElevenLabs12345"
	refreshToken  = "1//0legacyRefreshTokenXYZ"
	otherResend   = "re_otherResendKey67890"
	badKeySecret  = "sk_sealedUnderAnotherKey999"
	invalidSecret = "short"
)

var secrets = []string{vapiKey, vapiSecret, twilioToken, resendKey, elevenKey, refreshToken, otherResend, badKeySecret}

func twilioJSON(sidStyle string) string {
	return fmt.Sprintf(`{%q:"AC0123456789abcdef0123456789abcdef","auth_token":%q,"phone_number":"+14155550100"}`, sidStyle, twilioToken)
}

// TestBackfillBringsOrgsOver seeds good, duplicate, malformed and
// unknown-provider rows, and checks what a run brings over, what it
// reports, and that a second run changes nothing.
func TestBackfillBringsOrgsOver(t *testing.T) {
	l := newLegacy(t, true)
	d := l.d
	ctx := context.Background()
	a, b, c, e := dbtest.SeedOrg(t, "A"), dbtest.SeedOrg(t, "B"), dbtest.SeedOrg(t, "C"), dbtest.SeedOrg(t, "E")
	f, g := dbtest.SeedOrg(t, "F"), dbtest.SeedOrg(t, "G")
	gone := newID(t) // an org that does not exist
	inA, outA, inB, inGone, shared := newID(t), newID(t), newID(t), newID(t), newID(t)

	// Org A: every provider, sealed every way the old service wrote.
	l.integration(a, "vapi", legacySeal(t, legacyKeyHex, 12, `{"apiKey":"`+vapiKey+`","webhookSecret":"`+vapiSecret+`"}`))
	l.integration(a, "Twilio", legacySeal(t, legacyKeyHex, 16, twilioJSON("account_sid")))
	l.integration(a, "resend", `{"api_key":"`+resendKey+`","from_email":"hello@example.com"}`)
	l.integration(a, "eleven_labs", legacySeal(t, legacyKeyHex, 12, `{"apiKey":"`+elevenKey+`","voiceId":"21m00Tcm4TlvDq8ikWAM"}`))
	l.integration(a, "google", legacySeal(t, legacyKeyHex, 16, `{"refresh_token":"`+refreshToken+`","scope":"openid","email":"owner@example.com"}`))
	l.integration(a, "stripe", `{"apiKey":"sk_live_whatever123"}`)
	l.agent(a, inA, nil) // no role: inbound
	l.agent(a, strings.ToUpper(outA), "Outbound")
	// Org B: the same rows twice.
	l.integration(b, "twilio", legacySeal(t, legacyKeyHex, 12, twilioJSON("accountSid")))
	l.integration(b, "twilio", legacySeal(t, legacyKeyHex, 16, twilioJSON("account_sid")))
	l.agent(b, inB, "inbound")
	l.agent(b, inB, nil)
	// Org C: two different Resend rows; a Google grant without a refresh token.
	l.integration(c, "resend", `{"apiKey":"`+resendKey+`"}`)
	l.integration(c, "resend", `{"apiKey":"`+otherResend+`"}`)
	l.integration(c, "google_calendar", `{"access_token":"ya29.only"}`)
	// Org E: malformed rows.
	l.integration(e, "twilio", "zz:yy:xx")
	l.integration(e, "elevenlabs", legacySeal(t, strings.Repeat("ab", 32), 12, `{"apiKey":"`+badKeySecret+`"}`))
	l.integration(e, "vapi", `{"apiKey":"`+invalidSecret+`"}`)
	l.integration(e, "resend", "")
	l.agent(e, "asst_not_a_uuid", nil)
	l.agent(e, newID(t), "sideways")
	// Org F: two inbound assistants; org G shares one with F.
	l.agent(f, newID(t), nil)
	l.agent(f, newID(t), "inbound")
	l.agent(f, shared, "outbound")
	l.agent(g, shared, "outbound")
	// Rows of no org, and of an org that does not exist.
	l.integration(nil, "resend", `{"apiKey":"`+resendKey+`"}`)
	l.integration(gone, "vapi", `{"apiKey":"`+vapiKey+`"}`)
	l.agent(gone, inGone, nil)

	logs := &apptest.LogBuffer{}
	o := opts(t, logs)
	heard := notifications(t)
	rep := mustRun(t, l.src, d, o)

	checkTally(t, "integrations", rep.Integrations, 17, 6,
		map[string]int{backfill.ErrNoRefreshToken.Error(): 1, backfill.ReasonDuplicate: 1, backfill.ReasonUnknownProvider: 1, backfill.ReasonNoOrg: 1},
		map[string]int{backfill.ReasonConflict: 2, backfill.ReasonBadOrgID: 1, backfill.ErrLegacyFormat.Error(): 1,
			backfill.ErrLegacyDecrypt.Error(): 1, backfill.ErrLegacyEmpty.Error(): 1, "invalid fields: apiKey": 1})
	checkTally(t, "agents", rep.Agents, 11, 3,
		map[string]int{backfill.ReasonDuplicate: 1, backfill.ReasonNoOrg: 1},
		map[string]int{backfill.ReasonAssistantTwice: 2, backfill.ReasonBadAssistant: 1, backfill.ReasonBadRole: 1, backfill.ReasonRoleConflict: 2})
	if rep.Failed() != 13 || rep.Batches != 4 || rep.DryRun {
		t.Errorf("failed %d, batches %d, dry run %v", rep.Failed(), rep.Batches, rep.DryRun)
	}

	// What the credential service reads is what the legacy rows held.
	svc := credentials.New(d, byocKeyring(t), credentials.Options{})
	vc, err := svc.Vapi(ctx, a)
	if err != nil || vc.APIKey.Reveal() != vapiKey || vc.WebhookSecret.Reveal() != vapiSecret || vc.Region != app.VapiUS {
		t.Errorf("vapi: %v", err)
	}
	tc, err := svc.Twilio(ctx, a)
	if err != nil || tc.AuthToken.Reveal() != twilioToken || tc.PhoneNumber != "+14155550100" {
		t.Errorf("twilio: %+v, %v", tc, err)
	}
	if rc, err := svc.Resend(ctx, a); err != nil || rc.APIKey.Reveal() != resendKey || rc.FromEmail != "hello@example.com" {
		t.Errorf("resend: %v", err)
	}
	if ec, err := svc.ElevenLabs(ctx, a); err != nil || ec.APIKey.Reveal() != elevenKey {
		t.Errorf("elevenlabs: %v", err)
	}
	if gc, err := svc.GoogleCalendar(ctx, a); err != nil || gc.RefreshToken.Reveal() != refreshToken || gc.Email != "owner@example.com" {
		t.Errorf("google: %v", err)
	}
	if bc, err := svc.Twilio(ctx, b); err != nil || bc.AuthToken.Reveal() != twilioToken {
		t.Errorf("org B twilio: %v", err)
	}
	for _, org := range []string{c, e} {
		if _, err := svc.Resend(ctx, org); app.ErrorCode(err) != app.ENotConfigured {
			t.Errorf("org %s has Resend credentials: %v", org, err)
		}
	}
	statuses, err := svc.Statuses(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range statuses {
		if !st.Connected || st.NeedsAttention || st.LastVerified != nil || st.WebhookHMACOnly {
			t.Errorf("org A %s: %+v (want connected, never verified, not HMAC only)", st.Provider, st)
		}
	}
	// The assistants route to their orgs; the outbound one is the org's
	// outbound agent, with the Twilio number.
	for id, want := range map[string]app.AssistantMapping{inA: {OrgID: a, Role: app.Inbound}, outA: {OrgID: a, Role: app.Outbound},
		inB: {OrgID: b, Role: app.Inbound}} {
		m, err := d.ResolveAssistant(ctx, id)
		if err != nil || m.OrgID != want.OrgID || m.Role != want.Role {
			t.Errorf("assistant %s: %+v, %v", id, m, err)
		}
	}
	for _, id := range []string{inGone, shared} {
		if _, err := d.ResolveAssistant(ctx, id); app.ErrorCode(err) != app.ENotFound {
			t.Errorf("assistant %s was mapped: %v", id, err)
		}
	}
	if ob, err := d.OutboundAgent(ctx, a); err != nil || ob.VapiAssistantID != outA || ob.PhoneNumber != "+14155550100" {
		t.Errorf("outbound agent: %+v, %v", ob, err)
	}
	if ob, err := d.OutboundAgent(ctx, b); err != nil || ob.VapiAssistantID != "" || ob.PhoneNumber != "+14155550100" {
		t.Errorf("org B outbound agent: %+v, %v", ob, err)
	}

	// Announced once per batch and provider, never per row.
	var named int
	for _, p := range heard() {
		var inv struct {
			Org      string   `json:"org"`
			Orgs     []string `json:"orgs"`
			Provider string   `json:"provider"`
		}
		if err := json.Unmarshal([]byte(p), &inv); err != nil || inv.Org != "" || len(inv.Orgs) == 0 || inv.Provider == "" {
			t.Errorf("announcement %s", p)
		}
		named += len(inv.Orgs)
	}
	// A: five providers (its mappings go with Vapi); B: Twilio, Vapi.
	if named != 7 {
		t.Errorf("the announcements name %d orgs by provider, want 7", named)
	}

	text := rep.String()
	for _, want := range []string{"integrations: 17 rows: migrated 6, skipped 4, failed 7", "agents: 11 rows: migrated 3, skipped 2, failed 6",
		"integrations org " + e + " twilio: failed: " + backfill.ErrLegacyFormat.Error(), "org " + gone + " vapi: skipped: " + backfill.ReasonNoOrg,
		"org " + a + " stripe: skipped: " + backfill.ReasonUnknownProvider, `integrations org "" resend: failed`} {
		if !strings.Contains(text, want) {
			t.Errorf("the report does not say %q:\n%s", want, text)
		}
	}
	apptest.AssertNoSecret(t, "report", text, secrets...)
	apptest.AssertNoSecret(t, "log", logs.String(), secrets...)

	// A second run changes nothing and announces nothing.
	orgs := []string{a, b, c, e, f, g}
	before := snapshot(t, d, orgs)
	again := mustRun(t, l.src, d, o)
	if after := snapshot(t, d, orgs); after != before {
		t.Errorf("the second run changed something:\n%s\n---\n%s", before, after)
	}
	if got := heard(); len(got) != 0 {
		t.Errorf("the second run announced %v", got)
	}
	if again.Integrations.Migrated != 0 || again.Integrations.Skipped[backfill.ReasonAlreadyMigrated] != 6 ||
		again.Agents.Migrated != 0 || again.Agents.Skipped[backfill.ReasonAlreadyMigrated] != 3 {
		t.Errorf("second run: integrations %s; agents %s", tally(again.Integrations), tally(again.Agents))
	}
	if again.Failed() != rep.Failed() {
		t.Errorf("the second run failed %d rows, the first %d", again.Failed(), rep.Failed())
	}
	if strings.Contains(again.String(), backfill.ReasonAlreadyMigrated+"\n"+"integrations org") {
		t.Error("rows already migrated are listed one by one")
	}
}

func TestBackfillDryRunWritesNothing(t *testing.T) {
	l := newLegacy(t, false)
	a, b := dbtest.SeedOrg(t, "dry A"), dbtest.SeedOrg(t, "dry B")
	l.integration(a, "vapi", legacySeal(t, legacyKeyHex, 12, `{"apiKey":"`+vapiKey+`"}`))
	l.integration(b, "twilio", legacySeal(t, legacyKeyHex, 16, twilioJSON("accountSid")))
	l.integration(b, "resend", `{"apiKey":"`+invalidSecret+`"}`)
	l.agent(a, newID(t))

	logs := &apptest.LogBuffer{}
	o := opts(t, logs)
	o.DryRun = true
	heard := notifications(t)
	before := snapshot(t, l.d, []string{a, b})
	dry := mustRun(t, l.src, l.d, o)
	if after := snapshot(t, l.d, []string{a, b}); after != before {
		t.Fatalf("a dry run wrote:\n%s", after)
	}
	if got := heard(); len(got) != 0 {
		t.Errorf("a dry run announced %v", got)
	}
	text := dry.String()
	if !strings.HasPrefix(text, "dry run: nothing was written\n") || !strings.Contains(text, "integrations: 3 rows: would migrate 2, skipped 0, failed 1") ||
		!strings.Contains(text, "agents: 1 rows: would migrate 1") {
		t.Errorf("dry run report:\n%s", text)
	}
	apptest.AssertNoSecret(t, "report", text, secrets...)

	// The real run does what the dry run said.
	o.DryRun = false
	real := mustRun(t, l.src, l.d, o)
	if tally(real.Integrations) != tally(dry.Integrations) || tally(real.Agents) != tally(dry.Agents) {
		t.Errorf("dry run %s / %s; run %s / %s", tally(dry.Integrations), tally(dry.Agents), tally(real.Integrations), tally(real.Agents))
	}
}

// TestBackfillKeepsWhatBYOCHolds: credentials or assistants an admin saved
// in BYOC win over the legacy rows, and what an admin disconnects after a
// backfill stays disconnected.
func TestBackfillKeepsWhatBYOCHolds(t *testing.T) {
	l := newLegacy(t, true)
	d := l.d
	ctx := context.Background()
	kr := byocKeyring(t)
	svc := credentials.New(d, kr, credentials.Options{})
	a, b := dbtest.SeedOrg(t, "kept A"), dbtest.SeedOrg(t, "kept B")
	theirs, mine, other := newID(t), newID(t), newID(t)

	// A already saved other Resend credentials, the same ElevenLabs ones,
	// and has an inbound assistant; B's outbound assistant is A's too.
	if _, err := svc.Save(ctx, app.Connection{OrgID: a, Config: app.ResendConfig{APIKey: app.NewSecret(otherResend)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Save(ctx, app.Connection{OrgID: a, Config: app.ElevenLabsConfig{APIKey: app.NewSecret(elevenKey)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Save(ctx, app.Connection{OrgID: a, Config: app.VapiConfig{APIKey: app.NewSecret(vapiKey), Region: app.VapiUS},
		Assistants: []app.AssistantMapping{{VapiAssistantID: mine, OrgID: a, Role: app.Inbound}, {VapiAssistantID: other, OrgID: a, Role: app.Outbound}}}); err != nil {
		t.Fatal(err)
	}
	l.integration(a, "resend", `{"apiKey":"`+resendKey+`"}`)
	l.integration(a, "elevenlabs", `{"api_key":"`+elevenKey+`"}`)
	l.integration(a, "twilio", twilioJSON("account_sid"))
	l.agent(a, theirs, nil)
	l.agent(b, other, "outbound")

	logs := &apptest.LogBuffer{}
	rep := mustRun(t, l.src, d, opts(t, logs))
	checkTally(t, "integrations", rep.Integrations, 3, 1, map[string]int{backfill.ReasonAlreadyMigrated: 1, backfill.ReasonKept: 1}, nil)
	checkTally(t, "agents", rep.Agents, 2, 0, map[string]int{backfill.ReasonAssistantKept: 1}, map[string]int{backfill.ReasonAssistantTaken: 1})
	if rc, err := svc.Resend(ctx, a); err != nil || rc.APIKey.Reveal() != otherResend {
		t.Errorf("A's own Resend key was replaced: %v", err)
	}
	if m, err := d.ResolveAssistant(ctx, other); err != nil || m.OrgID != a {
		t.Errorf("A's outbound assistant: %+v, %v", m, err)
	}
	if _, err := d.ResolveAssistant(ctx, theirs); app.ErrorCode(err) != app.ENotFound {
		t.Errorf("the legacy inbound assistant replaced A's: %v", err)
	}

	// An admin disconnects Twilio after the backfill: a later run leaves it
	// disconnected, and the kept and skipped items stay as they are.
	if err := svc.Delete(ctx, a, app.Twilio); err != nil {
		t.Fatal(err)
	}
	if err := svc.Delete(ctx, a, app.Resend); err != nil {
		t.Fatal(err)
	}
	again := mustRun(t, l.src, d, opts(t, logs))
	if again.Integrations.Migrated != 0 || again.Integrations.Skipped[backfill.ReasonAlreadyMigrated] != 3 {
		t.Errorf("after the disconnect: %s", tally(again.Integrations))
	}
	for _, p := range []app.Provider{app.Twilio, app.Resend} {
		if _, err := svc.Get(ctx, a, p); app.ErrorCode(err) != app.ENotConfigured {
			t.Errorf("%s came back: %v", p, err)
		}
	}
}

// failingTarget fails the write of its second batch, as a crash would
// leave it: nothing of that batch is committed.
type failingTarget struct {
	backfill.Target
	writes int
}

func (f *failingTarget) ImportRows(ctx context.Context, rows app.ImportRows) (app.ImportRows, error) {
	if f.writes++; f.writes == 2 {
		return app.ImportRows{}, errors.New("connection lost")
	}
	return f.Target.ImportRows(ctx, rows)
}

func TestBackfillResumesAfterAStop(t *testing.T) {
	l := newLegacy(t, false)
	var orgs []string
	for i := range 5 {
		org := dbtest.SeedOrg(t, fmt.Sprintf("resume %d", i))
		orgs = append(orgs, org)
		l.integration(org, "resend", `{"apiKey":"re_resume`+strings.Repeat("x", i+5)+`"}`)
		l.agent(org, newID(t))
	}
	logs := &apptest.LogBuffer{}
	o := opts(t, logs)
	rep, err := backfill.Run(context.Background(), l.src, &failingTarget{Target: l.d}, o)
	if err == nil || rep.Batches != 1 || rep.Integrations.Migrated != 2 {
		t.Fatalf("the stopped run: %v, %d batches, %s", err, rep.Batches, tally(rep.Integrations))
	}
	var n int
	if err := l.d.Pool.QueryRow(context.Background(), `select count(*) from org_credentials where org_id = any($1::uuid[])`, orgs).Scan(&n); err != nil || n != 2 {
		t.Fatalf("after the stop %d rows are stored, want the first batch's 2 (%v)", n, err)
	}
	rep = mustRun(t, l.src, l.d, o)
	if rep.Integrations.Migrated != 3 || rep.Integrations.Skipped[backfill.ReasonAlreadyMigrated] != 2 ||
		rep.Agents.Migrated != 3 || rep.Agents.Skipped[backfill.ReasonAlreadyMigrated] != 2 {
		t.Fatalf("the next run: %s / %s", tally(rep.Integrations), tally(rep.Agents))
	}
	svc := credentials.New(l.d, byocKeyring(t), credentials.Options{})
	for _, org := range orgs {
		if _, err := svc.Resend(context.Background(), org); err != nil {
			t.Errorf("org %s: %v", org, err)
		}
	}
}

// racingTarget saves an org's credentials through the credential service
// just before the batch is written, as an admin on the dashboard might.
type racingTarget struct {
	backfill.Target
	before func()
}

func (r *racingTarget) ImportRows(ctx context.Context, rows app.ImportRows) (app.ImportRows, error) {
	r.before()
	return r.Target.ImportRows(ctx, rows)
}

func TestBackfillNeverOverwritesASaveMadeMeanwhile(t *testing.T) {
	l := newLegacy(t, false)
	ctx := context.Background()
	svc := credentials.New(l.d, byocKeyring(t), credentials.Options{})
	a := dbtest.SeedOrg(t, "race")
	l.integration(a, "resend", `{"apiKey":"`+resendKey+`"}`)
	target := &racingTarget{Target: l.d, before: func() {
		if _, err := svc.Save(ctx, app.Connection{OrgID: a, Config: app.ResendConfig{APIKey: app.NewSecret(otherResend)}}); err != nil {
			t.Fatal(err)
		}
	}}
	logs := &apptest.LogBuffer{}
	rep := mustRun(t, l.src, target, opts(t, logs))
	if rep.Integrations.Skipped[backfill.ReasonMeanwhile] != 1 {
		t.Errorf("report: %s", tally(rep.Integrations))
	}
	if rc, err := svc.Resend(ctx, a); err != nil || rc.APIKey.Reveal() != otherResend {
		t.Errorf("the admin's save was overwritten: %v", err)
	}
}

// TestBackfillFromAnotherDatabase reads the legacy tables of another
// database (--from), in its public schema, and writes into BYOC's.
func TestBackfillFromAnotherDatabase(t *testing.T) {
	ctx := context.Background()
	d := dbtest.DB(t)
	otherURL, drop, err := dbtest.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	other, err := db.Open(ctx, otherURL, db.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	a := dbtest.SeedOrg(t, "from elsewhere")
	id := newID(t)
	for _, q := range []string{
		`create table integrations (org_id uuid, provider text, encrypted_config text)`,
		`create table agents (org_id uuid, vapi_assistant_id text)`,
	} {
		if _, err := other.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Pool.Exec(ctx, `insert into integrations values ($1, 'vapi', $2)`, a,
		legacySeal(t, legacyKeyHex, 12, `{"apiKey":"`+vapiKey+`","webhookSecret":"`+vapiSecret+`"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Pool.Exec(ctx, `insert into agents values ($1, $2)`, a, id); err != nil {
		t.Fatal(err)
	}
	logs := &apptest.LogBuffer{}
	rep := mustRun(t, other, d, opts(t, logs))
	if rep.Integrations.Migrated != 1 || rep.Agents.Migrated != 1 || rep.Failed() != 0 {
		t.Fatalf("%s / %s", tally(rep.Integrations), tally(rep.Agents))
	}
	if m, err := d.ResolveAssistant(ctx, id); err != nil || m.OrgID != a {
		t.Errorf("assistant: %+v, %v", m, err)
	}
}

func TestBackfillWithoutLegacyTables(t *testing.T) {
	d := dbtest.DB(t)
	logs := &apptest.LogBuffer{}
	rep := mustRun(t, d, d, opts(t, logs))
	if len(rep.Tables) != 0 || rep.Integrations.Rows != 0 || !strings.Contains(rep.String(), "no legacy tables") {
		t.Fatalf("%+v\n%s", rep, rep.String())
	}
}

func TestBackfillRefusesALegacyTableOfAnotherShape(t *testing.T) {
	l := newLegacy(t, false)
	if _, err := l.d.Pool.Exec(context.Background(), `alter table `+l.schema+`.integrations rename column encrypted_config to config`); err != nil {
		t.Fatal(err)
	}
	logs := &apptest.LogBuffer{}
	_, err := backfill.Run(context.Background(), l.src, l.d, opts(t, logs))
	if err == nil || !strings.Contains(err.Error(), "the legacy table integrations has no column encrypted_config") {
		t.Fatalf("got %v", err)
	}
}

func TestBackfillNeedsItsKeys(t *testing.T) {
	d := dbtest.DB(t)
	if _, err := backfill.Run(context.Background(), d, d, backfill.Options{Keyring: byocKeyring(t)}); err == nil {
		t.Fatal("a run without a legacy key")
	}
	if _, err := backfill.Run(context.Background(), d, d, backfill.Options{Legacy: legacyKey(t)}); err == nil {
		t.Fatal("a run without a keyring")
	}
}

// newOrg adds an org to BYOC's database.
func (l *legacy) newOrg(name string) string { return dbtest.SeedOrg(l.t, name) }
