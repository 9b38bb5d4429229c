package integrations_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"byoc/app"
	"byoc/app/integrations"
)

// Every attempted change tells Changed about it, so the webhook routing of
// this instance forgets a disconnected org's assistants at once.
func TestChangedIsCalledForEveryAttemptedChange(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	e := newEnv(t, withChanged(func(orgID string, p app.Provider) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, orgID+"/"+string(p))
	}))
	admin, member := seedOrg(t, "Changed Clinic")
	ctx := context.Background()
	want := admin.OrgID + "/vapi"

	if _, err := e.svc.SaveVapi(ctx, admin, integrations.VapiInput{APIKey: vapiKey()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Disconnect(ctx, admin, app.Vapi); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SaveVapi(ctx, admin, integrations.VapiInput{APIKey: vapiKey("invalid")}); err == nil {
		t.Fatal("an invalid key was saved")
	}
	// Refused before anything could change: no call.
	if _, err := e.svc.Disconnect(ctx, member, app.Vapi); app.ErrorCode(err) != app.EForbidden {
		t.Fatalf("member disconnect: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(calls, []string{want, want, want}) {
		t.Fatalf("Changed calls %v, want three for %s", calls, want)
	}
}
