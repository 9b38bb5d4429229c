package alerts_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/alerts"
	"byoc/app/apptest"
	"byoc/app/mail"
	"byoc/app/providers/resend"
	"byoc/app/sandbox"
	"byoc/db"
	"byoc/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// The platform's own Resend key and sender in these tests.
var (
	platformKey = "re_platform_" + apptest.RandomHex(12)
	sender      = "BYOC <noreply@" + sandbox.SendingDomain + ">"
)

const reason = "Twilio rejected the Account SID or Auth Token."

// era returns a start time of its own for test n: every notice a test
// queues is due at or after it, and a later test's era lies years before
// an earlier one's, so no test's sender claims another test's notices.
func era(n int) time.Time { return time.Date(2020-2*n, 1, 1, 0, 0, 0, 0, time.UTC) }

// seedOrg makes an org with the given members (e-mail to role) and
// returns its id.
func seedOrg(t *testing.T, d *db.DB, members map[string]string) string {
	t.Helper()
	org := dbtest.SeedOrg(t, "alerts")
	for email, role := range members {
		if _, err := d.Pool.Exec(context.Background(), `
			with u as (insert into users (email, password_hash) values ($1, 'x') returning id)
			insert into org_members (org_id, user_id, role) select $2, id, $3 from u`, email, org, role); err != nil {
			t.Fatal(err)
		}
	}
	return org
}

// breakAt stores working Twilio credentials for org and records a failed
// check at at: the break that queues a notice per admin.
func breakAt(t *testing.T, d *db.DB, org string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	if _, err := d.SaveConnection(ctx, app.CredentialRecord{OrgID: org, Provider: app.Twilio, Ciphertext: []byte("sealed")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, broke, err := d.RecordCheck(ctx, org, app.Twilio, app.CheckOutcome{At: at, Error: reason, Code: app.ReasonReconnect}); err != nil || !broke {
		t.Fatalf("break: %v, %v", broke, err)
	}
}

// notice is a queued notice as the database holds it.
type notice struct {
	status, lastError string
	attempts          int
}

// notices returns the org's queued notices by recipient.
func notices(t *testing.T, d *db.DB, org string) map[string]notice {
	t.Helper()
	rows, err := d.Pool.Query(context.Background(), `
		select recipient, status, coalesce(last_error, ''), attempts from mail_queue where org_id = $1`, org)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]notice{}
	for rows.Next() {
		var to string
		var n notice
		if err := rows.Scan(&to, &n.status, &n.lastError, &n.attempts); err != nil {
			t.Fatal(err)
		}
		out[to] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// standIn serves the Resend stand-in; keys records the Idempotency-Key of
// every send it was asked for, and hold, when set, runs before each send.
type standIn struct {
	sb  *sandbox.Sandbox
	url string

	mu   sync.Mutex
	keys []string
	hold func()
}

func newStandIn(t *testing.T) *standIn {
	s := &standIn{sb: sandbox.New()}
	h := s.sb.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/emails") {
			s.mu.Lock()
			s.keys = append(s.keys, r.Header.Get("Idempotency-Key"))
			hold := s.hold
			s.mu.Unlock()
			if hold != nil {
				hold()
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = s.sb.BaseURLs(srv.URL).Resend
	return s
}

// requests returns the idempotency keys of the sends asked for so far.
func (s *standIn) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...)
}

// mailer sends through the stand-in with the platform's key, from from.
func (s *standIn) mailer(from string) mail.Mailer {
	return mail.New(mail.Options{APIKey: app.NewSecret(platformKey), From: from,
		Client: resend.New(s.url, nil, 2*time.Second), Logger: slog.New(slog.DiscardHandler)})
}

// counts records the outcomes a sender counts.
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counts) QueuedMail(outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[outcome]++
}

func (c *counts) get(outcome string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[outcome]
}

func runOnce(t *testing.T, s *alerts.Sender) int {
	t.Helper()
	n, err := s.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFailedSendIsRetriedAndDeliveredOnce: Resend answers 500, then 429,
// then takes the message: the notice is retried after a backoff (not
// before), delivered once with the same idempotency key on every attempt,
// and never again; the message names the provider, the reason and the
// dashboard, and carries no credential.
func TestFailedSendIsRetriedAndDeliveredOnce(t *testing.T) {
	d := dbtest.DB(t)
	clock := apptest.NewClock(era(0))
	admin := "admin." + apptest.RandomHex(4) + "@example.com"
	org := seedOrg(t, d, map[string]string{admin: "admin"})
	breakAt(t, d, org, clock.Now())
	si := newStandIn(t)
	si.sb.Resend.FailSends(http.StatusInternalServerError, http.StatusTooManyRequests)
	m := &counts{}
	logs := &apptest.LogBuffer{}
	s := alerts.New(d, si.mailer(sender), alerts.Options{PublicURL: "https://byoc.example/", Now: clock.Now,
		Rand: func() float64 { return 0 }, Metrics: m, Logger: slog.New(slog.NewJSONHandler(logs, nil))})

	if n := runOnce(t, s); n != 1 {
		t.Fatalf("first run attempted %d notices, want 1", n)
	}
	if got := notices(t, d, org)[admin]; got.status != "pending" || got.attempts != 1 || !strings.Contains(got.lastError, "500") {
		t.Fatalf("after a 500: %+v", got)
	}
	if n := runOnce(t, s); n != 0 {
		t.Fatalf("retried before its backoff: %d", n)
	}
	clock.Advance(s.Backoff(1))
	if n := runOnce(t, s); n != 1 {
		t.Fatalf("second attempt: %d", n)
	}
	if got := notices(t, d, org)[admin]; got.status != "pending" || got.attempts != 2 || !strings.Contains(got.lastError, "429") {
		t.Fatalf("after a 429: %+v", got)
	}
	clock.Advance(s.Backoff(2) - time.Second)
	if n := runOnce(t, s); n != 0 {
		t.Fatalf("retried before its (doubled) backoff: %d", n)
	}
	clock.Advance(time.Second)
	if n := runOnce(t, s); n != 1 {
		t.Fatalf("third attempt: %d", n)
	}
	if got := notices(t, d, org)[admin]; got.status != "sent" || got.attempts != 3 || got.lastError != "" {
		t.Fatalf("after delivery: %+v", got)
	}
	clock.Advance(48 * time.Hour)
	if n := runOnce(t, s); n != 0 {
		t.Fatalf("a sent notice was attempted again: %d", n)
	}

	sent := si.sb.Resend.Sent()
	if len(sent) != 1 || len(sent[0].To) != 1 || sent[0].To[0] != admin || sent[0].Key != platformKey || sent[0].From != sender {
		t.Fatalf("sent %+v, want one message to %s with the platform's key", sent, admin)
	}
	if !strings.Contains(sent[0].Subject, "Twilio") || !strings.Contains(sent[0].Text, reason) ||
		!strings.Contains(sent[0].Text, "https://byoc.example/dashboard/integrations") {
		t.Fatalf("the message does not name the provider, the reason and the dashboard:\n%s\n%s", sent[0].Subject, sent[0].Text)
	}
	keys := si.requests()
	if len(keys) != 3 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] {
		t.Fatalf("idempotency keys of the three attempts: %q, want one key, the same each time", keys)
	}
	if m.get(alerts.OutcomeRetried) != 2 || m.get(alerts.OutcomeSent) != 1 || m.get(alerts.OutcomeFailed) != 0 {
		t.Fatalf("outcomes counted: %v", m.n)
	}
	apptest.AssertNoFragment(t, "the alert mail", sent[0].Subject+"\n"+sent[0].Text, platformKey)
	apptest.AssertNoFragment(t, "the log", logs.String(), platformKey)
}

// TestRefusalIsFinal: Resend refuses the message (a sender whose domain is
// not verified): the notice fails at once with why, and is never tried
// again.
func TestRefusalIsFinal(t *testing.T) {
	d := dbtest.DB(t)
	clock := apptest.NewClock(era(1))
	admin := "admin." + apptest.RandomHex(4) + "@example.com"
	org := seedOrg(t, d, map[string]string{admin: "admin"})
	breakAt(t, d, org, clock.Now())
	si := newStandIn(t)
	m := &counts{}
	s := alerts.New(d, si.mailer("BYOC <noreply@unverified.example.org>"), alerts.Options{Now: clock.Now, Metrics: m})

	if n := runOnce(t, s); n != 1 {
		t.Fatalf("attempted %d, want 1", n)
	}
	got := notices(t, d, org)[admin]
	if got.status != "failed" || got.attempts != 1 || !strings.Contains(got.lastError, "Resend refused to send the e-mail (403 Forbidden)") {
		t.Fatalf("after a refusal: %+v", got)
	}
	clock.Advance(48 * time.Hour)
	if n := runOnce(t, s); n != 0 {
		t.Fatalf("a refused notice was tried again: %d", n)
	}
	if len(si.requests()) != 1 || len(si.sb.Resend.Sent()) != 0 {
		t.Fatalf("%d sends asked for, %d sent; want 1 and 0", len(si.requests()), len(si.sb.Resend.Sent()))
	}
	if m.get(alerts.OutcomeFailed) != 1 || m.get(alerts.OutcomeRetried) != 0 {
		t.Fatalf("outcomes counted: %v", m.n)
	}
}

// TestGivesUpAfterTheBound: a notice that keeps failing is retried with
// growing waits until GiveUpAfter has passed since it was queued, then
// fails with why.
func TestGivesUpAfterTheBound(t *testing.T) {
	d := dbtest.DB(t)
	start := era(2)
	clock := apptest.NewClock(start)
	admin := "admin." + apptest.RandomHex(4) + "@example.com"
	org := seedOrg(t, d, map[string]string{admin: "admin"})
	breakAt(t, d, org, clock.Now())
	si := newStandIn(t)
	fails := make([]int, 50)
	for i := range fails {
		fails[i] = http.StatusServiceUnavailable
	}
	si.sb.Resend.FailSends(fails...)
	m := &counts{}
	s := alerts.New(d, si.mailer(sender), alerts.Options{Now: clock.Now, Metrics: m,
		GiveUpAfter: time.Hour, FirstRetry: 5 * time.Minute, MaxRetry: 20 * time.Minute})

	attempts := 0
	for range 40 {
		attempts += runOnce(t, s)
		if notices(t, d, org)[admin].status != "pending" {
			break
		}
		clock.Advance(5 * time.Minute)
	}
	got := notices(t, d, org)[admin]
	if got.status != "failed" || !strings.Contains(got.lastError, "Gave up after 1h0m0s") || !strings.Contains(got.lastError, "503") {
		t.Fatalf("after an hour of failures: %+v", got)
	}
	if clock.Now().Sub(start) > time.Hour {
		t.Fatalf("gave up %v after the notice was queued, later than the bound", clock.Now().Sub(start))
	}
	// Waits of 2.5-5, 5-10, 10-20 and 10-20 minutes fit in the hour: at
	// most six attempts, and at least the first three.
	if attempts < 3 || attempts > 6 || got.attempts != attempts {
		t.Fatalf("%d attempts (%d recorded), want 3 to 6", attempts, got.attempts)
	}
	if m.get(alerts.OutcomeFailed) != 1 || m.get(alerts.OutcomeRetried) != attempts-1 || len(si.sb.Resend.Sent()) != 0 {
		t.Fatalf("outcomes counted: %v, sent %d", m.n, len(si.sb.Resend.Sent()))
	}
}

// TestTwoSendersDeliverEachNoticeOnce: two senders with pools of their own
// on one database, running at the same moments while Resend fails now and
// then, deliver every notice exactly once.
func TestTwoSendersDeliverEachNoticeOnce(t *testing.T) {
	d := dbtest.DB(t)
	ctx := context.Background()
	other, err := db.Open(ctx, dbtest.URL(t), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	clock := apptest.NewClock(era(3))
	var admins []string
	for range 5 {
		suffix := apptest.RandomHex(4)
		a, b := "a."+suffix+"@example.com", "b."+suffix+"@example.com"
		admins = append(admins, a, b)
		breakAt(t, d, seedOrg(t, d, map[string]string{a: "admin", b: "admin", "m." + suffix + "@example.com": "member"}), clock.Now())
	}
	si := newStandIn(t)
	si.sb.Resend.FailSends(http.StatusInternalServerError, http.StatusBadGateway, http.StatusTooManyRequests)
	m := &counts{}
	opts := alerts.Options{Now: clock.Now, Metrics: m, Batch: 3}
	senders := []*alerts.Sender{alerts.New(d, si.mailer(sender), opts), alerts.New(other, si.mailer(sender), opts)}
	for range 10 {
		var wg sync.WaitGroup
		for _, s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.RunOnce(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		clock.Advance(time.Hour)
	}
	per := map[string]int{}
	for _, e := range si.sb.Resend.Sent() {
		for _, to := range e.To {
			per[to]++
		}
	}
	for _, a := range admins {
		if per[a] != 1 {
			t.Errorf("%s got %d messages, want 1", a, per[a])
		}
	}
	if len(per) != len(admins) {
		t.Errorf("mail went to %d addresses, want %d (the admins only)", len(per), len(admins))
	}
	if m.get(alerts.OutcomeSent) != len(admins) || m.get(alerts.OutcomeRetried) != 3 {
		t.Fatalf("outcomes counted: %v", m.n)
	}
}

// TestStoppedSenderLeavesNothingHalfDone: a sender stopped while a send is
// under way finishes it and records it before Run returns, and claims
// nothing more; a sender stopped before it started claims nothing.
func TestStoppedSenderLeavesNothingHalfDone(t *testing.T) {
	d := dbtest.DB(t)
	clock := apptest.NewClock(era(4))
	admin := "admin." + apptest.RandomHex(4) + "@example.com"
	org := seedOrg(t, d, map[string]string{admin: "admin"})
	breakAt(t, d, org, clock.Now())
	si := newStandIn(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	si.mu.Lock()
	si.hold = func() {
		once.Do(func() { close(arrived) })
		<-release
	}
	si.mu.Unlock()
	s := alerts.New(d, si.mailer(sender), alerts.Options{Now: clock.Now})

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	<-arrived
	stop()
	// A notice queued after the stop is not claimed by this sender.
	late := "late." + apptest.RandomHex(4) + "@example.com"
	lateOrg := seedOrg(t, d, map[string]string{late: "admin"})
	breakAt(t, d, lateOrg, clock.Now())
	close(release)
	<-done

	if got := notices(t, d, org)[admin]; got.status != "sent" || got.attempts != 1 {
		t.Fatalf("the notice whose send was under way at the stop: %+v, want sent", got)
	}
	if got := notices(t, d, lateOrg)[late]; got.status != "pending" || got.attempts != 0 {
		t.Fatalf("a notice queued after the stop: %+v, want untouched", got)
	}
	if sent := si.sb.Resend.Sent(); len(sent) != 1 || sent[0].To[0] != admin {
		t.Fatalf("sent %+v", sent)
	}

	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	s.Run(stopped)
	if got := notices(t, d, lateOrg)[late]; got.status != "pending" || got.attempts != 0 {
		t.Fatalf("a sender stopped before it started touched a notice: %+v", got)
	}
	// Another sender delivers it.
	si.mu.Lock()
	si.hold = nil
	si.mu.Unlock()
	if n := runOnce(t, alerts.New(d, si.mailer(sender), alerts.Options{Now: clock.Now})); n != 1 {
		t.Fatalf("the late notice: %d attempted", n)
	}
	if got := notices(t, d, lateOrg)[late]; got.status != "sent" {
		t.Fatalf("the late notice: %+v", got)
	}
}

// forgetful loses the first outcome it is asked to record, as a process
// that stops between the send and the mark does.
type forgetful struct {
	alerts.Queue
	mu     sync.Mutex
	forgot bool
}

func (f *forgetful) SettleMail(ctx context.Context, id string, attempt int, s app.MailSettlement) (bool, error) {
	f.mu.Lock()
	forget := !f.forgot
	f.forgot = true
	f.mu.Unlock()
	if forget {
		return false, errors.New("the process stopped")
	}
	return f.Queue.SettleMail(ctx, id, attempt, s)
}

// TestSendWithLostOutcomeIsCollapsed: a notice sent whose outcome was
// never recorded stays claimed for the lease, is then sent once more by
// another sender with the same idempotency key, and Resend delivers it
// only once.
func TestSendWithLostOutcomeIsCollapsed(t *testing.T) {
	d := dbtest.DB(t)
	clock := apptest.NewClock(era(5))
	admin := "admin." + apptest.RandomHex(4) + "@example.com"
	org := seedOrg(t, d, map[string]string{admin: "admin"})
	breakAt(t, d, org, clock.Now())
	si := newStandIn(t)
	crashed := alerts.New(&forgetful{Queue: d}, si.mailer(sender), alerts.Options{Now: clock.Now})
	next := alerts.New(d, si.mailer(sender), alerts.Options{Now: clock.Now})

	if n := runOnce(t, crashed); n != 1 || len(si.sb.Resend.Sent()) != 1 {
		t.Fatalf("first send: %d attempted, %d sent", n, len(si.sb.Resend.Sent()))
	}
	if got := notices(t, d, org)[admin]; got.status != "pending" {
		t.Fatalf("a notice whose outcome was lost: %+v", got)
	}
	clock.Advance(crashed.Lease() - time.Second)
	if n := runOnce(t, next); n != 0 {
		t.Fatalf("claimed again within the lease: %d", n)
	}
	clock.Advance(time.Second)
	if n := runOnce(t, next); n != 1 {
		t.Fatalf("after the lease: %d attempted", n)
	}
	if got := notices(t, d, org)[admin]; got.status != "sent" || got.attempts != 2 {
		t.Fatalf("after the second send: %+v", got)
	}
	keys := si.requests()
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("idempotency keys %q, want the same on both sends", keys)
	}
	if sent := si.sb.Resend.Sent(); len(sent) != 1 {
		t.Fatalf("Resend delivered %d messages, want the repeated send collapsed into 1", len(sent))
	}
}

// TestWithoutMailResend: a server that sends no e-mail closes each notice
// at once and logs that nothing was sent; the development outbox gets the
// message.
func TestWithoutMailResend(t *testing.T) {
	d := dbtest.DB(t)
	clock := apptest.NewClock(era(6))

	t.Run("production without MAIL_*", func(t *testing.T) {
		admin := "admin." + apptest.RandomHex(4) + "@example.com"
		org := seedOrg(t, d, map[string]string{admin: "admin"})
		breakAt(t, d, org, clock.Now())
		m := &counts{}
		logs := &apptest.LogBuffer{}
		s := alerts.New(d, mail.New(mail.Options{}), alerts.Options{Now: clock.Now, Metrics: m,
			Logger: slog.New(slog.NewJSONHandler(logs, nil))})
		if n := runOnce(t, s); n != 1 {
			t.Fatalf("attempted %d", n)
		}
		got := notices(t, d, org)[admin]
		if got.status != "failed" || !strings.Contains(got.lastError, "not set up to send e-mail") {
			t.Fatalf("a notice on a server without mail: %+v", got)
		}
		if !strings.Contains(logs.String(), "no e-mail sent") || !strings.Contains(logs.String(), org) {
			t.Fatalf("the log does not say no mail was sent: %s", logs.String())
		}
		if m.get(alerts.OutcomeDropped) != 1 {
			t.Fatalf("outcomes counted: %v", m.n)
		}
		clock.Advance(48 * time.Hour)
		if n := runOnce(t, s); n != 0 {
			t.Fatalf("attempted again: %d", n)
		}
	})

	t.Run("development outbox", func(t *testing.T) {
		admin := "admin." + apptest.RandomHex(4) + "@example.com"
		org := seedOrg(t, d, map[string]string{admin: "admin"})
		breakAt(t, d, org, clock.Now())
		out := mail.NewOutbox(clock.Now)
		s := alerts.New(d, out, alerts.Options{PublicURL: "http://localhost:3000", Now: clock.Now})
		s.ConnectionBroke(context.Background(), org, app.Twilio, reason)
		if n := runOnce(t, s); n != 1 {
			t.Fatalf("attempted %d", n)
		}
		msgs := out.Messages()
		if len(msgs) != 1 || msgs[0].To != admin || !strings.Contains(msgs[0].Text, reason) ||
			!strings.Contains(msgs[0].Text, "http://localhost:3000/dashboard/integrations") {
			t.Fatalf("outbox %+v", msgs)
		}
		if got := notices(t, d, org)[admin]; got.status != "sent" {
			t.Fatalf("%+v", got)
		}
	})
}

// claims tells of every claim made through it.
type claims struct {
	alerts.Queue
	made chan struct{}
}

func (c claims) ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]app.QueuedMail, error) {
	got, err := c.Queue.ClaimMail(ctx, now, lease, limit)
	c.made <- struct{}{}
	return got, err
}

// TestRunWakesOnABreak: Run, which looked for notices when it started and
// now waits out a long poll, sends a notice as soon as it is told of the
// break.
func TestRunWakesOnABreak(t *testing.T) {
	d := dbtest.DB(t)
	clock := apptest.NewClock(era(7))
	out := mail.NewOutbox(clock.Now)
	q := claims{Queue: d, made: make(chan struct{}, 8)}
	s := alerts.New(q, out, alerts.Options{Now: clock.Now, Poll: time.Hour})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	<-q.made // the look at the start, with nothing due

	admin := "admin." + apptest.RandomHex(4) + "@example.com"
	org := seedOrg(t, d, map[string]string{admin: "admin"})
	breakAt(t, d, org, clock.Now())
	s.ConnectionBroke(ctx, org, app.Twilio, reason)
	<-q.made
	for deadline := time.Now().Add(10 * time.Second); len(out.Messages()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the woken sender sent nothing")
		}
	}
	if msgs := out.Messages(); len(msgs) != 1 || msgs[0].To != admin {
		t.Fatalf("outbox %+v", msgs)
	}
}

// TestPurgeKeepsWhatIsRecentOrPending: settled notices older than KeepFor
// are deleted; recent ones and pending ones, however old, are kept.
func TestPurgeKeepsWhatIsRecentOrPending(t *testing.T) {
	d := dbtest.DB(t)
	start := era(8)
	clock := apptest.NewClock(start)
	sent, refused, waiting := "sent."+apptest.RandomHex(4)+"@example.com", "refused."+apptest.RandomHex(4)+"@example.com",
		"waiting."+apptest.RandomHex(4)+"@example.com"
	orgs := map[string]string{}
	for _, a := range []string{sent, refused, waiting} {
		orgs[a] = seedOrg(t, d, map[string]string{a: "admin"})
		breakAt(t, d, orgs[a], start)
	}
	ctx := context.Background()
	for _, set := range []struct{ to, sql string }{
		{sent, `update mail_queue set status = 'sent', finished_at = $2 where org_id = $1`},
		{refused, `update mail_queue set status = 'failed', finished_at = $2, last_error = 'refused' where org_id = $1`},
	} {
		if _, err := d.Pool.Exec(ctx, set.sql, orgs[set.to], start); err != nil {
			t.Fatal(err)
		}
	}
	// The pending one is not due in this test's time (nothing claims it).
	if _, err := d.Pool.Exec(ctx, `update mail_queue set next_attempt_at = $2 where org_id = $1`, orgs[waiting], start.AddDate(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	s := alerts.New(d, mail.NewOutbox(clock.Now), alerts.Options{Now: clock.Now, KeepFor: 7 * 24 * time.Hour})
	clock.Advance(7*24*time.Hour - time.Second)
	if n, err := s.Purge(ctx); err != nil || n != 0 {
		t.Fatalf("within KeepFor: %d deleted, %v", n, err)
	}
	clock.Advance(2 * time.Second)
	if n, err := s.Purge(ctx); err != nil || n != 2 {
		t.Fatalf("after KeepFor: %d deleted, %v; want the two settled notices", n, err)
	}
	if got := notices(t, d, orgs[waiting]); got[waiting].status != "pending" {
		t.Fatalf("the pending notice: %+v", got)
	}
	if len(notices(t, d, orgs[sent]))+len(notices(t, d, orgs[refused])) != 0 {
		t.Fatal("a settled notice was kept")
	}
}
