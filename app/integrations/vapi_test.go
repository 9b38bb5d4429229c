package integrations_test

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"byoc/app"
	"byoc/app/integrations"
	"byoc/app/sandbox"
)

// assistantIDs returns the ids of the stand-in's assistants.
func assistantIDs(as []sandbox.VapiAssistant) []string {
	ids := make([]string, len(as))
	for i, a := range as {
		ids[i] = a.ID
	}
	return ids
}

// mappedIDs returns the org's mapped inbound and outbound assistant ids.
func mappedIDs(t *testing.T, e *env, orgID string) (inbound, outbound string) {
	t.Helper()
	for _, m := range e.mappings(t, orgID) {
		switch m.Role {
		case app.Inbound:
			inbound = m.VapiAssistantID
		case app.Outbound:
			outbound = m.VapiAssistantID
		}
	}
	return inbound, outbound
}

func TestSaveVapiCreatesAssistants(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	const orgName = "The Extraordinarily Long-Named Dental Practice of Springfield"
	admin, _ := seedOrg(t, orgName)
	key, secret := vapiKey(), webhookSecret()

	res, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secret})
	if err != nil {
		t.Fatal(err)
	}
	created := e.sb.Vapi.Assistants(key)
	if len(created) != 2 {
		t.Fatalf("the stand-in holds %d assistants, want 2", len(created))
	}
	byID := map[string]sandbox.VapiAssistant{}
	for _, a := range created {
		byID[a.ID] = a
		if a.Server == nil || a.Server.URL != publicURL+"/api/webhooks/vapi" || a.Server.Secret != "" {
			t.Errorf("assistant %s server = %+v, want url %s/api/webhooks/vapi and no static secret", a.ID, a.Server, publicURL)
		}
		if s, _ := e.sb.Vapi.Signing(key, a.ID); s != (sandbox.VapiSigning{Mode: "hmac", Secret: secret}) {
			t.Errorf("assistant %s signs with %+v, want an HMAC of the webhook secret", a.ID, s)
		}
		if n := utf8.RuneCountInString(a.Name); n > 40 || !strings.HasPrefix(a.Name, "The Extraordinarily") {
			t.Errorf("assistant name %q (%d characters), want the org's name shortened to at most 40", a.Name, n)
		}
		if a.FirstMessage == "" || len(a.Model) == 0 {
			t.Errorf("assistant %q has no first message or model", a.Name)
		}
	}
	in, out := byID[res.InboundAssistantID], byID[res.OutboundAssistantID]
	if in.Name != integrations.AssistantName(orgName, app.Inbound) || !strings.HasSuffix(in.Name, "… Inbound") {
		t.Errorf("inbound assistant = %q", in.Name)
	}
	if out.Name != integrations.AssistantName(orgName, app.Outbound) || !strings.HasSuffix(out.Name, "… Outbound") {
		t.Errorf("outbound assistant = %q", out.Name)
	}

	want := []app.AssistantMapping{
		{VapiAssistantID: res.InboundAssistantID, OrgID: admin.OrgID, Role: app.Inbound, Name: in.Name},
		{VapiAssistantID: res.OutboundAssistantID, OrgID: admin.OrgID, Role: app.Outbound, Name: out.Name},
	}
	got := e.mappings(t, admin.OrgID)
	for i := range got {
		got[i].CreatedAt, got[i].LastUsedAt = want[i].CreatedAt, nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mappings = %+v, want %+v", got, want)
	}
	agent, err := e.db.OutboundAgent(ctx, admin.OrgID)
	if err != nil || agent.VapiAssistantID != res.OutboundAssistantID || agent.PhoneNumber != "" {
		t.Errorf("outbound agent = %+v, %v", agent, err)
	}
	e.assertNoLeak(t, admin.OrgID, []string{key, secret}, res)

	t.Run("saving again reuses both", func(t *testing.T) {
		again, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secret})
		if err != nil {
			t.Fatal(err)
		}
		if again.InboundAssistantID != res.InboundAssistantID || again.OutboundAssistantID != res.OutboundAssistantID {
			t.Errorf("ids changed: %+v, want %+v", again, res)
		}
		if !strings.HasSuffix(again.Detail, "Inbound assistant reused, outbound assistant reused.") {
			t.Errorf("detail = %q", again.Detail)
		}
		if n := len(e.sb.Vapi.Assistants(key)); n != 2 {
			t.Errorf("the stand-in holds %d assistants, want still 2", n)
		}
		if n := e.mappingCount(t, admin.OrgID); n != 2 {
			t.Errorf("%d mappings, want 2", n)
		}
	})

	t.Run("an assistant deleted in Vapi is recreated", func(t *testing.T) {
		e.deleteVapiAssistant(t, key, res.InboundAssistantID)
		again, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "webhookSecret": secret})
		if err != nil {
			t.Fatal(err)
		}
		if again.InboundAssistantID == res.InboundAssistantID || again.OutboundAssistantID != res.OutboundAssistantID {
			t.Errorf("ids = %s, %s; want a new inbound and the old outbound %s", again.InboundAssistantID,
				again.OutboundAssistantID, res.OutboundAssistantID)
		}
		if ids := assistantIDs(e.sb.Vapi.Assistants(key)); len(ids) != 2 {
			t.Errorf("the stand-in holds %v, want 2 assistants", ids)
		}
		if in, out := mappedIDs(t, e, admin.OrgID); in != again.InboundAssistantID || out != again.OutboundAssistantID {
			t.Errorf("mapped %s, %s; want %s, %s", in, out, again.InboundAssistantID, again.OutboundAssistantID)
		}
	})

	t.Run("another Vapi account gets its own assistants", func(t *testing.T) {
		before := assistantIDs(e.sb.Vapi.Assistants(key))
		other := vapiKey()
		moved, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": other})
		if err != nil {
			t.Fatal(err)
		}
		ids := assistantIDs(e.sb.Vapi.Assistants(other))
		if len(ids) != 2 || !slicesEqualSet(ids, []string{moved.InboundAssistantID, moved.OutboundAssistantID}) {
			t.Errorf("the new account holds %v, want the result's %s and %s", ids, moved.InboundAssistantID, moved.OutboundAssistantID)
		}
		if in, out := mappedIDs(t, e, admin.OrgID); in != moved.InboundAssistantID || out != moved.OutboundAssistantID {
			t.Errorf("mapped %s, %s; want the new account's", in, out)
		}
		if after := assistantIDs(e.sb.Vapi.Assistants(key)); !reflect.DeepEqual(after, before) {
			t.Errorf("the old account's assistants changed: %v, want %v", after, before)
		}
		for _, a := range e.sb.Vapi.Assistants(other) {
			if s, _ := e.sb.Vapi.Signing(other, a.ID); s != (sandbox.VapiSigning{Mode: "hmac", Secret: secret}) {
				t.Errorf("assistant saved without a webhook secret signs with %+v, want an HMAC of the org's stored secret", s)
			}
		}
		agent, err := e.db.OutboundAgent(ctx, admin.OrgID)
		if err != nil || agent.VapiAssistantID != moved.OutboundAssistantID {
			t.Errorf("outbound agent = %+v, %v", agent, err)
		}
	})
}

func slicesEqualSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestSaveVapiConcurrently(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Busy Dental")
	key := vapiKey()

	const n = 5
	results := make([]integrations.SaveResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		if results[i].InboundAssistantID != results[0].InboundAssistantID || results[i].OutboundAssistantID != results[0].OutboundAssistantID {
			t.Errorf("save %d answered other assistants: %+v vs %+v", i, results[i], results[0])
		}
	}
	if got := len(e.sb.Vapi.Assistants(key)); got != 2 {
		t.Errorf("the stand-in holds %d assistants, want exactly 2", got)
	}
	if got := e.mappingCount(t, admin.OrgID); got != 2 {
		t.Errorf("%d mappings, want exactly 2", got)
	}
	if got := len(e.audit(t, admin.OrgID)); got != n {
		t.Errorf("%d audit entries, want %d", got, n)
	}
}

func TestSaveVapiEU(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin, _ := seedOrg(t, "Zahnarztpraxis München")
	key := vapiKey("eu")

	res, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "region": " EU "})
	if err != nil {
		t.Fatal(err)
	}
	if ids := assistantIDs(e.sb.VapiEU.Assistants(key)); !slicesEqualSet(ids, []string{res.InboundAssistantID, res.OutboundAssistantID}) {
		t.Errorf("the EU stand-in holds %v", ids)
	}
	if n := len(e.sb.Vapi.Assistants(key)); n != 0 {
		t.Errorf("the US stand-in holds %d assistants for an EU key", n)
	}
	if res.Status.Details["region"] != "eu" || !strings.Contains(res.Detail, "EU region") {
		t.Errorf("result = %+v", res)
	}
	stored, err := e.creds.Get(ctx, admin.OrgID, app.Vapi)
	if err != nil || stored.(app.VapiConfig).Region != app.VapiEU {
		t.Errorf("stored = %#v, %v", stored, err)
	}
	// Saving again talks to the EU API too and reuses.
	again, err := e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": key, "region": "eu"})
	if err != nil || again.InboundAssistantID != res.InboundAssistantID || len(e.sb.VapiEU.Assistants(key)) != 2 {
		t.Errorf("second save = %+v, %v", again, err)
	}
	// A US key sent to the EU API is refused.
	_, err = e.svc.Save(ctx, admin, app.Vapi, app.Values{"apiKey": vapiKey(), "region": "eu"})
	wantCode(t, err, app.EVerificationFailed)
}

func TestAssistantName(t *testing.T) {
	tests := []struct {
		name, org string
		role      app.AssistantRole
		want      string
	}{
		{"short", "Acme Dental", app.Inbound, "Acme Dental Inbound"},
		{"outbound", "Acme Dental", app.Outbound, "Acme Dental Outbound"},
		{"empty", "  ", app.Inbound, "BYOC Inbound"},
		{"whitespace collapsed", " Acme \t  Dental\n", app.Inbound, "Acme Dental Inbound"},
		{"exactly fits", strings.Repeat("a", 32), app.Inbound, strings.Repeat("a", 32) + " Inbound"},
		{"one too many", strings.Repeat("a", 33), app.Inbound, strings.Repeat("a", 31) + "… Inbound"},
		{"cut before a space is trimmed", strings.Repeat("a", 30) + " bcd", app.Inbound, strings.Repeat("a", 30) + "… Inbound"},
		{"long outbound", strings.Repeat("b", 50), app.Outbound, strings.Repeat("b", 30) + "… Outbound"},
		{"accents count once", strings.Repeat("ü", 40), app.Inbound, strings.Repeat("ü", 31) + "… Inbound"},
		{"emoji is never split", strings.Repeat("a", 30) + "🦷🦷", app.Inbound, strings.Repeat("a", 30) + "… Inbound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := integrations.AssistantName(tt.org, tt.role)
			if got != tt.want {
				t.Errorf("AssistantName(%q) = %q, want %q", tt.org, got, tt.want)
			}
			if !utf8.ValidString(got) || len(utf16.Encode([]rune(got))) > 40 {
				t.Errorf("%q is not a valid name of at most 40 UTF-16 units", got)
			}
		})
	}
}
