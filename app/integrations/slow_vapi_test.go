package integrations_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/sandbox"
	"byoc/db"
)

// heldVapi is an env whose Vapi stand-in holds every POST made with a key
// containing "-held-" (a credential or assistant creation) until
// releaseOnce, telling arrived of each.
type heldVapi struct {
	sb          *sandbox.Sandbox
	env         *env
	arrived     chan struct{}
	releaseOnce func()
}

func newHeldVapi(t *testing.T) heldVapi {
	t.Helper()
	h := heldVapi{sb: sandbox.New(), arrived: make(chan struct{}, 64)}
	release := make(chan struct{})
	h.releaseOnce = sync.OnceFunc(func() { close(release) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.Header.Get("Authorization"), "-held-") {
			h.arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		h.sb.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	urls := h.sb.BaseURLs(srv.URL)
	// The provider timeout outlasts the test: only the release ends a wait.
	h.env = newEnv(t, func(c *envConfig) { c.urls = &urls }, withTimeout(time.Minute))
	return h
}

func TestSaveVapiSlowOrgsDoNotDelayOthers(t *testing.T) {
	// Vapi answering slowly for some orgs (up to PROVIDER_TIMEOUT) once held
	// a lock connection per org: db.LockMaxConns slow orgs made every other
	// org's Vapi save wait for them. Now another org's save finishes while
	// they are still waiting for Vapi, and the slow ones still create
	// exactly their two assistants once Vapi answers.
	h := newHeldVapi(t)
	defer h.releaseOnce()
	sb, arrived, releaseOnce, e := h.sb, h.arrived, h.releaseOnce, h.env
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	slow := int(db.LockMaxConns)
	keys := make([]string, slow)
	errs := make(chan error, slow)
	for i := range keys {
		admin, _ := seedOrg(t, "Slow Dental")
		keys[i] = vapiKey("held")
		go func() {
			_, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": keys[i]})
			errs <- err
		}()
	}
	for range slow {
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatal("the slow orgs' saves never reached Vapi")
		}
	}

	// Every slow org now waits for Vapi inside its lock.
	admin, _ := seedOrg(t, "Quick Dental")
	key := vapiKey()
	res, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key})
	if err != nil {
		t.Fatalf("another org's save while %d orgs wait for Vapi: %v", slow, err)
	}
	if res.InboundAssistantID == "" || len(sb.Vapi.Assistants(key)) != 2 {
		t.Fatalf("another org's save: %+v, %d assistants", res, len(sb.Vapi.Assistants(key)))
	}
	select {
	case err := <-errs:
		t.Fatalf("a slow save finished before Vapi answered it: %v", err)
	default:
	}

	releaseOnce()
	for range slow {
		if err := <-errs; err != nil {
			t.Errorf("slow save: %v", err)
		}
	}
	for i, k := range keys {
		if n := len(sb.Vapi.Assistants(k)); n != 2 {
			t.Errorf("slow org %d: the stand-in holds %d assistants, want 2", i, n)
		}
	}
}

// TestSaveVapiRunsToItsEndOnceVapiIsChanged: a save whose caller gives up
// (a cancel, the server stopping) after the first change at Vapi was sent
// still finishes, within its deadline: the assistants at Vapi and the
// stored connection agree, instead of Vapi signing with a secret nothing
// stored.
func TestSaveVapiRunsToItsEndOnceVapiIsChanged(t *testing.T) {
	h := newHeldVapi(t)
	defer h.releaseOnce()
	sb, arrived, releaseOnce, e := h.sb, h.arrived, h.releaseOnce, h.env
	admin, _ := seedOrg(t, "Cancelled Dental")
	key := vapiKey("held")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	caller, giveUp := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.Save(caller, admin, app.Vapi, app.Values{"apiKey": key})
		done <- err
	}()
	select {
	case <-arrived:
	case <-ctx.Done():
		t.Fatal("the save never reached Vapi")
	}
	giveUp()
	releaseOnce()
	if err := <-done; err != nil {
		t.Fatalf("the save stopped half-way after Vapi was changed: %v", err)
	}
	if n := len(sb.Vapi.Assistants(key)); n != 2 {
		t.Fatalf("the stand-in holds %d assistants, want 2", n)
	}
	st, err := e.svc.Status(ctx, admin, app.Vapi)
	if err != nil || !st.Connected {
		t.Fatalf("stored after the given-up save: %+v, %v", st, err)
	}
}
