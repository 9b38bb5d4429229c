package integrations_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/sandbox"
)

// TestACheckOfReplacedCredentialsRecordsNothing: a Test connection of the
// old key whose refusal arrives after an admin saved a new key must not
// mark the new key as failing (nor decide a break that mails the admins):
// it answers that the credentials changed, and the new key's status stays
// as its own save left it.
func TestACheckOfReplacedCredentialsRecordsNothing(t *testing.T) {
	sb := sandbox.New()
	var hold atomic.Bool
	arrived := make(chan struct{}, 4)
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold.Load() && strings.Contains(r.Header.Get("Authorization"), "_old_") {
			arrived <- struct{}{}
			<-release
			// By now Resend refuses the old key.
			r.Header.Set("Authorization", "Bearer re_invalid_revoked")
		}
		sb.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	urls := sb.BaseURLs(srv.URL)
	e := newEnv(t, func(c *envConfig) { c.urls = &urls }, withTimeout(time.Minute))
	admin, _ := seedOrg(t, "Replaced Key Dental")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.svc.Save(ctx, admin, app.Resend, app.Values{"apiKey": resendKey("old")}); err != nil {
		t.Fatal(err)
	}

	hold.Store(true)
	checked := make(chan error, 1)
	go func() {
		_, err := e.svc.Verify(ctx, admin, app.Resend)
		checked <- err
	}()
	select {
	case <-arrived:
	case <-ctx.Done():
		t.Fatal("the check never reached Resend")
	}
	if _, err := e.svc.Save(ctx, admin, app.Resend, app.Values{"apiKey": resendKey("new")}); err != nil {
		t.Fatal(err)
	}
	releaseOnce()
	if err := <-checked; app.ErrorCode(err) != app.EConflict || !strings.Contains(app.ErrorMessage(err), "changed while") {
		t.Fatalf("the check of the replaced key answered %v, want a conflict saying the credentials changed", err)
	}
	st, err := e.svc.Status(ctx, admin, app.Resend)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Connected || st.NeedsAttention || st.VerificationError != "" {
		t.Fatalf("the new key's status after the old key's refusal: %+v", st)
	}
	var queued int
	if err := e.db.Pool.QueryRow(ctx, `select count(*) from mail_queue where org_id = $1`, admin.OrgID).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != 0 {
		t.Fatalf("%d break notices queued for a key that was replaced, want none", queued)
	}
}
