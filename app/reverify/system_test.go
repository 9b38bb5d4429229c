package reverify_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/auth"
	"byoc/app/integrations"
	"byoc/app/mail"
	"byoc/app/metrics"
	"byoc/app/reverify"
	"byoc/app/sandbox"
	"byoc/app/system"
	"byoc/app/system/systemtest"
	"byoc/app/web"
	"byoc/db/dbtest"
)

// instance is one server's graph on the shared test database, with the
// registry its metrics count in.
type instance struct {
	sys *system.System
	reg *prometheus.Registry
}

// scheduled returns how many scheduled verifications of provider ended
// with outcome, counted by the instance.
func (in instance) scheduled(t *testing.T, p app.Provider, outcome string) float64 {
	t.Helper()
	mfs, err := in.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range mfs {
		if f.GetName() != metrics.Verifications {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["provider"] == string(p) && labels["trigger"] == integrations.TriggerScheduled && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s series for %s %s", metrics.Verifications, p, outcome)
	return 0
}

// TestBrokenConnectionsAreMailedToAdminsOnce runs the background
// re-verification through the whole graph (two instances, the Resend
// stand-in, the development outbox they share): its checks land as a Test
// connection does (status, audit entry, the scheduled trigger counted),
// and a connection that breaks is mailed once to every admin of its org,
// no member and nobody of another org, again only after it recovered and
// broke anew, and once when two instances see the break at the same time.
func TestBrokenConnectionsAreMailedToAdminsOnce(t *testing.T) {
	d := dbtest.DB(t)
	reset(t, d)
	ctx := context.Background()
	sb := sandbox.New()
	hs := httptest.NewServer(sb.Handler())
	t.Cleanup(hs.Close)
	cfg := systemtest.Config(t, sb.BaseURLs(hs.URL))
	const interval = 24 * time.Hour
	cfg.ReverifyInterval = interval
	start := time.Now().UTC().Truncate(time.Second)
	clock := apptest.NewClock(start)
	outbox := mail.NewOutbox(clock.Now)
	logs := &apptest.LogBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	build := func() instance {
		reg := metrics.NewRegistry()
		sys, err := system.Build(cfg, d, system.Options{Logger: logger, Now: clock.Now, Mailer: outbox,
			Accounts: auth.Options{BcryptCost: bcrypt.MinCost}, Web: web.Options{Registry: reg}})
		if err != nil {
			t.Fatal(err)
		}
		return instance{sys: sys, reg: reg}
	}
	one, two := build(), build()
	// Each instance follows the other's changes, as in a deployment.
	lctx, stopListening := context.WithCancel(ctx)
	t.Cleanup(stopListening)
	for _, in := range []instance{one, two} {
		ready := make(chan struct{})
		var once sync.Once
		go d.ListenInvalidationsReporting(lctx, func(org, p string) { in.sys.Credentials.Invalidate(org, p) }, in.sys.Credentials.Flush, func(on bool) {
			in.sys.Sessions.Listening(on)
			if on {
				once.Do(func() { close(ready) })
			}
		})
		<-ready
	}

	signup := func(org, email string) auth.Account {
		a, err := one.sys.Accounts.Signup(ctx, auth.SignupInput{OrgName: org, Email: email, Password: "a long enough password"})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	suffix := apptest.RandomHex(4)
	owner := "owner." + suffix + "@example.com"
	admin2 := "second.admin." + suffix + "@example.com"
	member := "member." + suffix + "@example.com"
	other := "other.owner." + suffix + "@example.com"
	acme := signup("Acme Dental", owner)
	join := func(email string, role app.Role) {
		if _, err := d.Pool.Exec(ctx, `
			with u as (insert into users (email, password_hash) values ($1, 'x') returning id)
			insert into org_members (org_id, user_id, role) select $2, id, $3 from u`, email, acme.Principal.OrgID, string(role)); err != nil {
			t.Fatal(err)
		}
	}
	join(admin2, app.RoleAdmin)
	join(member, app.RoleMember)
	globex := signup("Globex Clinic", other)

	good := "re_good_" + apptest.RandomHex(12)
	bad := "re_echo_" + apptest.RandomHex(12) // refused with a message that repeats it, encoded
	store := func(org, key string) {
		t.Helper()
		if _, err := one.sys.Credentials.Save(ctx, app.Connection{OrgID: org, VerifiedAt: clock.Now(),
			Config: app.ResendConfig{APIKey: app.NewSecret(key), FromEmail: "desk@example.com"}}); err != nil {
			t.Fatal(err)
		}
		// Wait until the other instance has the change (its listener drops
		// its cached config), so that whichever checks next uses this key.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			cfg, err := two.sys.Credentials.Resend(ctx, org)
			if err == nil && cfg.APIKey.Reveal() == key {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the second instance never saw the new key (%v)", err)
			}
		}
	}
	store(acme.Principal.OrgID, good)
	store(globex.Principal.OrgID, good)

	schedOne := reverify.New(d, one.sys.Integrations, reverify.Options{Interval: interval, Now: clock.Now})
	schedTwo := reverify.New(d, two.sys.Integrations, reverify.Options{Interval: interval, Now: clock.Now})
	// sweep moves the clock past the next checks and lets both instances'
	// schedulers run at once; it returns how many connections they checked.
	sweep := func() int {
		t.Helper()
		clock.Advance(interval + schedOne.Jitter() + time.Second)
		var wg sync.WaitGroup
		counts := make([]int, 2)
		for i, s := range []*reverify.Scheduler{schedOne, schedTwo} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := s.RunOnce(ctx)
				if err != nil {
					t.Error(err)
				}
				counts[i] = n
			}()
		}
		wg.Wait()
		return counts[0] + counts[1]
	}
	status := func(org string) app.Status {
		t.Helper()
		sts, err := one.sys.Credentials.Statuses(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			if st.Provider == app.Resend {
				return st
			}
		}
		t.Fatal("no Resend status")
		return app.Status{}
	}
	// waitMail lets both instances' senders deliver the queued notices at
	// once and expects the outbox to hold n messages then.
	waitMail := func(n int) []mail.Message {
		t.Helper()
		var wg sync.WaitGroup
		for _, in := range []instance{one, two} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := in.sys.Notices.RunOnce(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		msgs := outbox.Messages()
		if len(msgs) != n {
			t.Fatalf("outbox holds %d messages, want %d", len(msgs), n)
		}
		return msgs
	}
	breaks := func() int { return strings.Count(logs.String(), `"msg":"connection broke"`) }
	lastAudit := func(org string) app.AuditEntry {
		t.Helper()
		es, err := d.AuditLog(ctx, org, 1)
		if err != nil || len(es) != 1 {
			t.Fatalf("audit log: %v, %v", es, err)
		}
		return es[0]
	}
	// systemChecks counts the org's audit entries of checks without an
	// actor: one per scheduled check, stored with its outcome.
	systemChecks := func(org string) int {
		t.Helper()
		es, err := d.AuditLog(ctx, org, 100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range es {
			if e.Action == integrations.ActionVerify && e.ActorID == "" {
				n++
			}
		}
		return n
	}

	// Working connections: checked once, passed, audited as the system's.
	if n := sweep(); n != 2 {
		t.Fatalf("first sweep checked %d connections, want 2", n)
	}
	if st := status(acme.Principal.OrgID); st.NeedsAttention || st.LastVerified == nil || !st.LastVerified.Equal(clock.Now()) {
		t.Fatalf("after a passed scheduled check: %+v", st)
	}
	if e := lastAudit(acme.Principal.OrgID); e.Action != integrations.ActionVerify || e.Outcome != app.OutcomeSuccess ||
		e.ActorID != "" || e.Provider != app.Resend {
		t.Fatalf("audit entry of a scheduled check: %+v", e)
	}
	if a, g := systemChecks(acme.Principal.OrgID), systemChecks(globex.Principal.OrgID); a != 1 || g != 1 {
		t.Fatalf("%d and %d audit entries of the first sweep's checks, want one per org", a, g)
	}
	if got := one.scheduled(t, app.Resend, integrations.VerificationOK) + two.scheduled(t, app.Resend, integrations.VerificationOK); got != 2 {
		t.Fatalf("scheduled ok checks counted: %v, want 2", got)
	}
	if msgs := waitMail(0); len(msgs) != 0 {
		t.Fatal("mail for connections that work")
	}

	// The key stops working at Resend: the next sweep finds it.
	store(acme.Principal.OrgID, bad)
	if n := sweep(); n != 2 {
		t.Fatalf("second sweep checked %d connections, want 2", n)
	}
	st := status(acme.Principal.OrgID)
	if !st.NeedsAttention || st.VerificationError == "" {
		t.Fatalf("after a refused scheduled check: %+v", st)
	}
	if e := lastAudit(acme.Principal.OrgID); e.Outcome != app.OutcomeFailure || e.ActorID != "" || e.Detail != st.VerificationError {
		t.Fatalf("audit entry of a refused scheduled check: %+v (status error %q)", e, st.VerificationError)
	}
	if got := one.scheduled(t, app.Resend, integrations.VerificationRefused) + two.scheduled(t, app.Resend, integrations.VerificationRefused); got != 1 {
		t.Fatalf("scheduled refusals counted: %v, want 1", got)
	}
	msgs := waitMail(2)
	var to []string
	for _, m := range msgs {
		to = append(to, m.To)
		if !strings.Contains(m.Subject, "Resend") || !strings.Contains(m.Text, "Resend") || !strings.Contains(m.Text, st.VerificationError) ||
			!strings.Contains(m.Text, systemtest.PublicURL+"/dashboard/integrations") {
			t.Fatalf("the alert does not name the provider, the reason and the dashboard:\n%s\n%s", m.Subject, m.Text)
		}
		apptest.AssertNoFragment(t, "alert mail", m.Subject+"\n"+m.Text, bad, good)
	}
	slices.Sort(to)
	if want := []string{owner, admin2}; !slices.Equal(to, sortedCopy(want)) {
		t.Fatalf("alert went to %v, want every admin of the org (%v) and nobody else", to, want)
	}

	// Failing on: no second mail, from the schedule or an admin's Test
	// connection on the other instance.
	if n := sweep(); n != 2 {
		t.Fatalf("third sweep checked %d connections, want 2", n)
	}
	if _, err := two.sys.Integrations.Verify(ctx, acme.Principal, app.Resend); app.ErrorCode(err) != app.EVerificationFailed {
		t.Fatalf("Test connection of the broken key: %v", err)
	}
	waitMail(2)
	if breaks() != 1 || len(outbox.Messages()) != 2 {
		t.Fatalf("a connection still failing broke again: %d breaks, %d messages", breaks(), len(outbox.Messages()))
	}

	// It recovers (new credentials pass the next check), then breaks anew,
	// seen by both instances at the same moment: one more mail per admin.
	store(acme.Principal.OrgID, good)
	if n := sweep(); n != 2 || status(acme.Principal.OrgID).NeedsAttention {
		t.Fatalf("recovery sweep: %d checked, status %+v", n, status(acme.Principal.OrgID))
	}
	store(acme.Principal.OrgID, bad)
	var wg sync.WaitGroup
	for _, in := range []instance{one, two, one, two} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := in.sys.Integrations.Recheck(ctx, acme.Principal.OrgID, app.Resend); app.ErrorCode(err) != app.EVerificationFailed {
				t.Errorf("concurrent re-check: %v", err)
			}
		}()
	}
	wg.Wait()
	// Every check so far: four sweeps and the four re-checks.
	if n := systemChecks(acme.Principal.OrgID); n != 8 {
		t.Fatalf("%d audit entries of scheduled checks, want 8 (one per check)", n)
	}
	if breaks() != 2 {
		t.Fatalf("four concurrent failed checks of a working connection broke it %d times, want once", breaks()-1)
	}
	msgs = waitMail(4)
	for _, m := range msgs[2:] {
		if m.To != owner && m.To != admin2 {
			t.Fatalf("second alert went to %s", m.To)
		}
	}
	if msgs[2].To == msgs[3].To {
		t.Fatalf("second alert went twice to %s", msgs[2].To)
	}
	apptest.AssertNoFragment(t, "log", logs.String(), bad, good)
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
