//go:build !e2e

package drills

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
	"byoc/app/apptest"
	"byoc/app/paths"
)

// Request kinds of the outage drill's load, and its timings.
const (
	kindWarm   = "warm webhook"      // verified from the caches, no write
	kindEvent  = "webhook write"     // a status update, stored once
	kindSave   = "API write (save)"  // Resend credentials saved through the API
	kindStatus = "API read (status)" // the status API (the bearer token's account is read)
	kindProbe  = "recovery probe"    // the probes after PostgreSQL is back

	// The same through HAProxy (deploy/haproxy/haproxy.cfg) in front of
	// the three instances, health checks on /readyz included.
	kindWarmLB  = "warm webhook via HAProxy"
	kindEventLB = "webhook write via HAProxy"
	kindSaveLB  = "API write (save) via HAProxy"
	kindProbeLB = "recovery probe via HAProxy"

	outageName = "PostgreSQL stopped"    // the drill's name in the table
	deadline   = 5 * time.Second         // the request deadline of the drill's instances
	margin     = 1500 * time.Millisecond // how far past its deadline a request may end (scheduling, -race)
	pace       = 10 * time.Millisecond   // pause between two requests of one worker
	probeEvery = 50 * time.Millisecond   // how often the recovery probes ask
	afterLoad  = 1500 * time.Millisecond // load kept running once every instance recovered
	recTarget  = 5 * time.Second         // the recovery target (reported, not asserted)
)

// saveAttempt is one credential save of the load: the key it sent and
// whether it was acknowledged.
type saveAttempt struct {
	key   string
	acked bool
}

// TestDrillPostgresStopped stops PostgreSQL (as a crash does) under load
// on three instances, keeps it stopped, and starts it again: warm webhooks
// must keep verifying; everything that needs the database must be
// refused with 503 at once (never a 500, never a request past its
// deadline); every instance must recover by itself; and every write that
// was acknowledged must be there afterwards. Part of the load goes through
// HAProxy with the deployment's configuration: the instances stay ready
// while the database they share is away (/readyz answers 200 with the
// database down), so HAProxy keeps them all in rotation and the warm
// webhooks it forwards keep answering 200, rather than every instance
// being taken out at once and HAProxy refusing everything.
func TestDrillPostgresStopped(t *testing.T) {
	c := needCluster(t)
	p := currentPlan()
	w := newWorld(t)
	for range 3 {
		w.addInstance(c.url, 8, deadline)
	}
	hooks := w.newOrgs(3)  // their webhooks: warm ones and stored ones
	savers := w.newOrgs(2) // their Resend credentials are saved over and over
	probes := w.newOrgs(3) // one per instance: its caches' coherence after the outage
	lbSaver := w.newOrgs(1)[0]
	lb := w.startHAProxy() // nil without HAProxy (outside CI)

	// Warm every instance: each org's assistant and secret cached, and each
	// probe org's statuses cached on its instance.
	for _, in := range w.instances {
		for _, o := range hooks {
			if a := w.webhook(in, o, typeWarm, "warm-"+apptest.RandomHex(6)); a.status != http.StatusOK {
				t.Fatalf("warming %s: %d %s %v", in.name, a.status, a.code, a.err)
			}
		}
	}
	for i, o := range probes {
		if hmacOnly(w.do(w.instances[i], http.MethodGet, paths.APIStatus, nil, o.token, nil)) != true {
			t.Fatalf("probe org %d does not start HMAC only", i)
		}
	}

	rec := &recorder{}
	stalls := startStallMeter()
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var seq atomic.Int64
	run := apptest.RandomHex(4)
	var ackedMu sync.Mutex
	var acked []string                             // call ids of acknowledged stored webhooks
	attempts := make([][]saveAttempt, len(savers)) // per saving org, in order
	worker := func(kind string, n int, fn func(k int) sample) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					rec.add(fn(int(seq.Add(1))))
					time.Sleep(pace)
				}
			}()
		}
	}
	pick := func(k int) *instance { return w.instances[k%len(w.instances)] }
	worker(kindWarm, p.workers, func(k int) sample {
		in, o := pick(k), hooks[k%len(hooks)]
		return sample{kind: kindWarm, inst: in.name, at: time.Now(), answer: w.webhook(in, o, typeWarm, fmt.Sprintf("warm-%s-%d", run, k))}
	})
	worker(kindEvent, p.workers, func(k int) sample {
		in, o := pick(k), hooks[k%len(hooks)]
		id := fmt.Sprintf("drill-%s-%d", run, k)
		s := sample{kind: kindEvent, inst: in.name, at: time.Now(), answer: w.webhook(in, o, typeWrite, id)}
		if s.status == http.StatusOK {
			ackedMu.Lock()
			acked = append(acked, id)
			ackedMu.Unlock()
		}
		return s
	})
	worker(kindStatus, 1, func(k int) sample {
		in, o := pick(k), hooks[k%len(hooks)]
		return sample{kind: kindStatus, inst: in.name, at: time.Now(), answer: w.do(in, http.MethodGet, paths.APIStatus, nil, o.token, nil)}
	})
	if lb != nil {
		worker(kindWarmLB, p.workers, func(k int) sample {
			o := hooks[k%len(hooks)]
			return sample{kind: kindWarmLB, inst: lb.name, at: time.Now(), answer: w.webhook(lb, o, typeWarm, fmt.Sprintf("warm-lb-%s-%d", run, k))}
		})
		worker(kindEventLB, 1, func(k int) sample {
			id := fmt.Sprintf("drill-lb-%s-%d", run, k)
			s := sample{kind: kindEventLB, inst: lb.name, at: time.Now(), answer: w.webhook(lb, hooks[k%len(hooks)], typeWrite, id)}
			if s.status == http.StatusOK {
				ackedMu.Lock()
				acked = append(acked, id)
				ackedMu.Unlock()
			}
			return s
		})
		worker(kindSaveLB, 1, func(k int) sample {
			return sample{kind: kindSaveLB, inst: lb.name, at: time.Now(), answer: w.do(lb, http.MethodPost, paths.IntegrationsPrefix+"/resend",
				map[string]string{"apiKey": fmt.Sprintf("re_drill_lb_%s_%d", run, k)}, lbSaver.token, nil)}
		})
	}
	for i, o := range savers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				in := w.instances[n%len(w.instances)]
				key := fmt.Sprintf("re_drill_%s_%d_%d", run, i, n)
				s := sample{kind: kindSave, inst: in.name, at: time.Now(),
					answer: w.do(in, http.MethodPost, paths.IntegrationsPrefix+"/resend", map[string]string{"apiKey": key}, o.token, nil)}
				rec.add(s)
				attempts[i] = append(attempts[i], saveAttempt{key: key, acked: s.status == http.StatusOK})
				time.Sleep(pace)
			}
		}()
	}

	time.Sleep(p.steady)
	crashAt := time.Now()
	if err := c.crash(); err != nil {
		stopLoad()
		wg.Wait()
		t.Fatal(err)
	}
	downAt := time.Now()
	// Half-way through the outage every instance is still ready, saying
	// the database is down, and so is HAProxy's answer.
	time.Sleep(p.outage / 2)
	targets := append([]*instance{}, w.instances...)
	if lb != nil {
		targets = append(targets, lb)
	}
	readyWhileDown := make([]ready, len(targets))
	for i, in := range targets {
		readyWhileDown[i] = w.readiness(in)
	}
	time.Sleep(p.outage - p.outage/2)
	startAt := time.Now()
	if err := c.start(); err != nil {
		stopLoad()
		wg.Wait()
		t.Fatal(err)
	}
	upAt := time.Now()

	// Recovery: each instance stores a webhook again, and sees a change
	// made through another instance (its invalidation listener is back).
	writeBack := make([]time.Duration, len(w.instances))
	coherent := make([]time.Duration, len(w.instances))
	var pw sync.WaitGroup
	for i, in := range w.instances {
		pw.Add(1)
		go func() {
			defer pw.Done()
			limit := time.Now().Add(p.recoveryBound)
			for k := 0; ; k++ {
				s := sample{kind: kindProbe, inst: in.name, at: time.Now(),
					answer: w.webhook(in, hooks[i], typeWrite, fmt.Sprintf("probe-%s-%d-%d", run, i, k))}
				rec.add(s)
				if s.status == http.StatusOK {
					ackedMu.Lock()
					acked = append(acked, fmt.Sprintf("probe-%s-%d-%d", run, i, k))
					ackedMu.Unlock()
					writeBack[i] = time.Since(upAt)
					break
				}
				if time.Now().After(limit) {
					writeBack[i] = -1
					break
				}
				time.Sleep(probeEvery)
			}
			other := w.instances[(i+1)%len(w.instances)]
			for {
				a := w.do(other, http.MethodPost, paths.VapiWebhookSigning, map[string]bool{"hmacOnly": false}, probes[i].token, nil)
				if a.status == http.StatusOK {
					break
				}
				if time.Now().After(limit) {
					coherent[i] = -1
					return
				}
				time.Sleep(probeEvery)
			}
			for {
				if hmacOnly(w.do(in, http.MethodGet, paths.APIStatus, nil, probes[i].token, nil)) == false {
					coherent[i] = time.Since(upAt)
					return
				}
				if time.Now().After(limit) {
					coherent[i] = -1
					return
				}
				time.Sleep(probeEvery)
			}
		}()
	}
	lbBack := time.Duration(-1) // until a write through HAProxy is stored again
	if lb != nil {
		pw.Add(1)
		go func() {
			defer pw.Done()
			limit := time.Now().Add(p.recoveryBound)
			for k := 0; time.Now().Before(limit); k++ {
				id := fmt.Sprintf("probe-lb-%s-%d", run, k)
				s := sample{kind: kindProbeLB, inst: lb.name, at: time.Now(), answer: w.webhook(lb, hooks[k%len(hooks)], typeWrite, id)}
				rec.add(s)
				if s.status == http.StatusOK {
					ackedMu.Lock()
					acked = append(acked, id)
					ackedMu.Unlock()
					lbBack = time.Since(upAt)
					return
				}
				time.Sleep(probeEvery)
			}
		}()
	}
	pw.Wait()
	time.Sleep(afterLoad)
	stopLoad()
	wg.Wait()
	stall := stalls.end()

	// Warm webhooks kept verifying throughout; everything else was
	// answered or refused with 503, never a 500, never past its deadline.
	all := rec.select_("", time.Time{}, time.Time{})
	onlyStatuses(t, "warm webhooks", rec.select_(kindWarm, time.Time{}, time.Time{}), http.StatusOK)
	onlyStatuses(t, "warm webhooks through HAProxy", rec.select_(kindWarmLB, time.Time{}, time.Time{}), http.StatusOK)
	onlyStatuses(t, "everything", all, http.StatusOK, http.StatusServiceUnavailable)
	withinDeadline(t, "everything", all, deadline, margin, stall)
	for _, s := range all {
		if s.status == http.StatusServiceUnavailable && s.code != app.EUnavailable {
			t.Errorf("%s through %s: 503 with code %q, want %q", s.kind, s.inst, s.code, app.EUnavailable)
			break
		}
	}
	// Down: from the stop until PostgreSQL accepts connections again
	// (its start, with crash recovery, included).
	down := func(kind string) figures { return summarize(rec.select_(kind, downAt, upAt)) }
	for _, kind := range []string{kindEvent, kindSave, kindStatus, kindEventLB, kindSaveLB} {
		if f := down(kind); f.n > 0 && f.statuses[http.StatusServiceUnavailable] == 0 {
			t.Errorf("%s while PostgreSQL was down: %s, want 503s", kind, f.statusText())
		}
	}
	kinds := []string{kindWarm, kindEvent, kindSave, kindStatus}
	if lb != nil {
		kinds = append(kinds, kindWarmLB, kindEventLB, kindSaveLB)
	}
	for _, kind := range kinds {
		if f := down(kind); f.n == 0 {
			t.Errorf("no %s was sent while PostgreSQL was down", kind)
		}
	}
	for i, r := range readyWhileDown {
		if r.status != http.StatusOK || r.state != "degraded" || r.database != "down" {
			t.Errorf("/readyz of %s while PostgreSQL was down: %s, want 200 degraded, database down", targets[i].name, r)
		}
	}

	// Every instance recovered by itself.
	for i, in := range w.instances {
		if writeBack[i] < 0 {
			t.Errorf("%s stored no webhook within %s of PostgreSQL's return", in.name, p.recoveryBound)
		}
		if coherent[i] < 0 {
			t.Errorf("%s did not see another instance's change within %s of PostgreSQL's return", in.name, p.recoveryBound)
		}
		if a := w.do(in, http.MethodGet, paths.Readyz, nil, "", nil); a.status != http.StatusOK {
			t.Errorf("%s is not ready after PostgreSQL's return: %d", in.name, a.status)
		}
	}
	if lb != nil {
		if lbBack < 0 {
			t.Errorf("no webhook write through HAProxy was stored within %s of PostgreSQL's return", p.recoveryBound)
		}
		if r := w.readiness(lb); r.status != http.StatusOK || r.database != "up" {
			t.Errorf("/readyz through HAProxy after PostgreSQL's return: %s, want 200 with the database up", r)
		}
	}

	// No acknowledged write is lost.
	var found int
	c.query(t, `select count(*) from call_events where call_id = any($1)`, []any{acked}, &found)
	if found != len(acked) {
		t.Errorf("%d of %d acknowledged webhook writes are stored: acknowledged writes were lost", found, len(acked))
	}
	checker := w.instances[0].sys.Credentials
	checker.Flush()
	savedAcked, savedTotal := 0, 0
	for i, o := range savers {
		last := -1
		for n, a := range attempts[i] {
			if a.acked {
				last = n
				savedAcked++
			}
		}
		savedTotal += len(attempts[i])
		cfg, err := checker.Get(context.Background(), o.id, app.Resend)
		if err != nil {
			t.Errorf("saving org %d: reading its stored Resend key: %v", i, err)
			continue
		}
		stored := cfg.(app.ResendConfig).APIKey.Reveal()
		// The last acknowledged save, or one sent after it that was not
		// acknowledged (it may have committed all the same).
		ok := last < 0
		for n := max(last, 0); n < len(attempts[i]); n++ {
			ok = ok || attempts[i][n].key == stored
		}
		if !ok {
			t.Errorf("saving org %d: the stored key is neither its last acknowledged save nor a later one: an acknowledged write was lost", i)
		}
	}

	// Figures.
	pools := make([]string, 0, len(w.instances))
	for _, in := range w.instances {
		pools = append(pools, waitPoolIdle(t, in, 10*time.Second))
	}
	r := func(figure, format string, args ...any) { report.add(outageName, figure, format, args...) }
	r("set-up", "3 instances (pool 8, deadline %s), %d load workers per kind, PostgreSQL stopped as by a crash for %s",
		deadline, p.workers, p.outage.Round(100*time.Millisecond))
	r("down", "%s in all: stopping took %s, stopped %s, starting (with crash recovery) %s",
		ms(upAt.Sub(crashAt)), ms(downAt.Sub(crashAt)), ms(startAt.Sub(downAt)), ms(upAt.Sub(startAt)))
	for _, kind := range kinds {
		f := down(kind)
		r(kind+" while down", "%d: %s; %s", f.n, f.statusText(), f.latencyText())
	}
	for i, rd := range readyWhileDown {
		r("/readyz of "+targets[i].name+" while down", "%s", rd)
	}
	for _, kind := range kinds {
		f := summarize(rec.select_(kind, time.Time{}, time.Time{}))
		r(kind+" whole run", "%d: %s; %s", f.n, f.statusText(), f.latencyText())
	}
	fa := summarize(all)
	r("slowest request of the run", "%s (%s through %s, status %d); the test process's longest stall %s",
		ms(fa.max), fa.slowest.kind, fa.slowest.inst, fa.slowest.status, ms(stall))
	for i, in := range w.instances {
		r("recovery of "+in.name, "stores again %s, sees another instance's change %s after PostgreSQL was back (target %s)",
			durText(writeBack[i]), durText(coherent[i]), recTarget)
	}
	if lb != nil {
		r("recovery via HAProxy", "stores a webhook again %s after PostgreSQL was back", durText(lbBack))
	}
	r("acknowledged writes found", "webhooks %d of %d; credential saves: %d acknowledged of %d, each org's last one stored",
		found, len(acked), savedAcked, savedTotal)
	for _, s := range pools {
		r("pool after the run", "%s", s)
	}
}

// hmacOnly returns the webhookHmacOnly of a status answer's Vapi entry,
// or nil when the answer has none.
func hmacOnly(a answer) any {
	if a.status != http.StatusOK {
		return nil
	}
	v, _ := a.data["vapi"].(map[string]any)
	return v["webhookHmacOnly"]
}

func durText(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return ms(d)
}
