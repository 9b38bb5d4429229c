//go:build !e2e

package drills

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"byoc/app/paths"
)

const savesName = "concurrent Vapi saves"

// TestDrillConcurrentVapiSaves sends many saves of one org's Vapi
// credentials at once, spread over three instances: every one must be
// answered 200 with the same assistants, and afterwards the org has one
// credentials row, one inbound and one outbound assistant mapping, and its
// Vapi account holds exactly those two assistants and one signing
// credential.
func TestDrillConcurrentVapiSaves(t *testing.T) {
	c := needCluster(t)
	p := currentPlan()
	w := newWorld(t)
	for range 3 {
		// A long deadline: the saves of one org run one at a time, and
		// the last waits for all the others.
		w.addInstance(c.url, 8, time.Minute)
	}
	o := w.newOrgs(1)[0]

	answers := make([]answer, p.saves)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			answers[i] = w.do(w.instances[i%len(w.instances)], http.MethodPost, paths.IntegrationsPrefix+"/vapi",
				map[string]string{"apiKey": o.vapiKey}, o.token, nil)
		}()
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	took := time.Since(start)

	samples := make([]sample, len(answers))
	for i, a := range answers {
		samples[i] = sample{kind: "Vapi save", inst: w.instances[i%len(w.instances)].name, answer: a}
	}
	onlyStatuses(t, "concurrent saves", samples, http.StatusOK)
	for i, a := range answers {
		if a.status == http.StatusOK && (str(a.data["inboundAssistantId"]) != o.assistant || str(a.data["outboundAssistantId"]) == "") {
			t.Errorf("save %d answered other assistants: inbound %v (want %s), outbound %v", i,
				a.data["inboundAssistantId"], o.assistant, a.data["outboundAssistantId"])
		}
	}

	var rows, inbound, outbound int
	c.query(t, `select count(*) from org_credentials where org_id = $1 and provider = 'vapi'`, []any{o.id}, &rows)
	c.query(t, `select count(*) filter (where assistant_role = 'inbound'), count(*) filter (where assistant_role = 'outbound')
		from assistant_org_mapping where org_id = $1`, []any{o.id}, &inbound, &outbound)
	if rows != 1 || inbound != 1 || outbound != 1 {
		t.Errorf("after %d saves: %d credential rows, %d inbound and %d outbound mappings, want 1, 1 and 1", p.saves, rows, inbound, outbound)
	}
	assistants := w.sb.Vapi.Assistants(o.vapiKey)
	credentials := w.sb.Vapi.Credentials(o.vapiKey)
	if len(assistants) != 2 {
		t.Errorf("the org's Vapi account holds %d assistants, want 2", len(assistants))
	}
	if len(credentials) != 1 {
		t.Errorf("the org's Vapi account holds %d webhook signing credentials, want 1", len(credentials))
	}

	f := summarize(samples)
	r := func(figure, format string, args ...any) { report.add(savesName, figure, format, args...) }
	r("set-up", "%d saves of one org's Vapi credentials at once, through 3 instances in turn", p.saves)
	r("answers", "%s in %s; %s", f.statusText(), ms(took), f.latencyText())
	r("afterwards", "%d credential row, %d inbound + %d outbound mapping; Vapi account: %d assistants, %d signing credential",
		rows, inbound, outbound, len(assistants), len(credentials))
}
