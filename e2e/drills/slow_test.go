//go:build !e2e

package drills

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app/apptest"
	"byoc/app/paths"
)

// Request kinds of the slow-database drill.
const (
	slowName     = "slow database"
	kindCold     = "cold webhook"     // an assistant id no instance has cached: a lookup
	kindVapiSave = "API write (Vapi)" // saves under the org's advisory lock
	slowPool     = 4                  // the slow instance's pool: fewer connections than workers
	slowWorkers  = 1                  // workers per kind of request (five kinds need the database)
	slowMargin   = 1 * time.Second    // how far past its deadline a request may end (scheduling, -race)
	slowAfter    = 10 * time.Second   // how long pool connections may take to come back
)

// TestDrillSlowDatabase puts a proxy that delays every answer of
// PostgreSQL between one instance and the database, and loads that
// instance with more concurrent requests than its pool has connections:
// no request may end later than its deadline (plus scheduling margin), none
// may fail with a 500, and once the load ends every connection of both
// pools comes back and the instance serves normally again.
func TestDrillSlowDatabase(t *testing.T) {
	c := needCluster(t)
	p := currentPlan()
	w := newWorld(t)
	w.addInstance(c.url, 8, deadline) // direct: the set-up goes through it too
	u, err := url.Parse(c.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startSlowProxy(t, u.Host)
	u.Host = proxy.addr()
	slow := w.addInstance(u.String(), slowPool, p.slowDeadline)
	orgs := w.newOrgs(4) // through both instances in turn
	for _, o := range orgs {
		if a := w.webhook(slow, o, typeWarm, "warm-"+apptest.RandomHex(6)); a.status != http.StatusOK {
			t.Fatalf("warming %s: %d %s", slow.name, a.status, a.code)
		}
	}

	proxy.setDelay(p.slowDelay)
	rec := &recorder{}
	stalls := startStallMeter()
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var seq atomic.Int64
	run := apptest.RandomHex(4)
	worker := func(kind string, fn func(k int) answer) {
		for range slowWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					k := int(seq.Add(1))
					rec.add(sample{kind: kind, inst: slow.name, at: time.Now(), answer: fn(k)})
					time.Sleep(pace)
				}
			}()
		}
	}
	worker(kindWarm, func(k int) answer {
		return w.webhook(slow, orgs[k%len(orgs)], typeWarm, fmt.Sprintf("w-%s-%d", run, k))
	})
	worker(kindEvent, func(k int) answer {
		return w.webhook(slow, orgs[k%len(orgs)], typeWrite, fmt.Sprintf("s-%s-%d", run, k))
	})
	worker(kindCold, func(k int) answer {
		o := *orgs[k%len(orgs)]
		o.assistant = randomUUID() // no org has it: looked up, then remembered as unknown
		return w.webhook(slow, &o, typeWarm, fmt.Sprintf("c-%s-%d", run, k))
	})
	worker(kindStatus, func(k int) answer {
		return w.do(slow, http.MethodGet, paths.APIStatus, nil, orgs[k%len(orgs)].token, nil)
	})
	worker(kindSave, func(k int) answer {
		return w.do(slow, http.MethodPost, paths.IntegrationsPrefix+"/resend",
			map[string]string{"apiKey": fmt.Sprintf("re_slow_%s_%d", run, k)}, orgs[k%len(orgs)].token, nil)
	})
	worker(kindVapiSave, func(k int) answer {
		o := orgs[k%len(orgs)]
		return w.do(slow, http.MethodPost, paths.IntegrationsPrefix+"/vapi", map[string]string{"apiKey": o.vapiKey}, o.token, nil)
	})
	time.Sleep(p.slowFor)
	stopLoad()
	wg.Wait()
	stall := stalls.end()
	proxy.setDelay(0)

	all := rec.select_("", time.Time{}, time.Time{})
	withinDeadline(t, "slow database", all, p.slowDeadline, slowMargin, stall)
	onlyStatuses(t, "slow database", all, http.StatusOK, http.StatusNotFound, http.StatusServiceUnavailable)
	onlyStatuses(t, "warm webhooks on a slow database", rec.select_(kindWarm, time.Time{}, time.Time{}), http.StatusOK)
	for _, s := range all {
		if s.status == http.StatusNotFound && s.kind != kindCold {
			t.Errorf("%s: 404 %s", s.kind, s.code)
		}
	}

	// Every connection comes back, and the instance works normally again.
	pool := waitPoolIdle(t, slow, slowAfter)
	var locks string
	limit := time.Now().Add(slowAfter)
	for {
		st := slow.db.LockStat()
		if st == nil {
			t.Fatal("no lock pool")
		}
		if st.AcquiredConns() == 0 {
			locks = fmt.Sprintf("in use 0, open %d of %d", st.TotalConns(), st.MaxConns())
			break
		}
		if time.Now().After(limit) {
			t.Errorf("%d lock pool connections still in use %s after the load ended (a leak)", st.AcquiredConns(), slowAfter)
			locks = fmt.Sprintf("in use %d (leak)", st.AcquiredConns())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := w.webhook(slow, orgs[0], typeWrite, "after-"+run)
	if after.status != http.StatusOK {
		t.Errorf("a stored webhook after the slowdown: %d %s", after.status, after.code)
	}
	o := orgs[1]
	if a := w.do(slow, http.MethodPost, paths.IntegrationsPrefix+"/vapi", map[string]string{"apiKey": o.vapiKey}, o.token, nil); a.status != http.StatusOK {
		t.Errorf("a Vapi save after the slowdown: %d %s", a.status, a.code)
	}

	r := func(figure, format string, args ...any) { report.add(slowName, figure, format, args...) }
	r("set-up", "every answer of PostgreSQL delayed %s; deadline %s; pool %d; %d worker per kind for %s",
		p.slowDelay, p.slowDeadline, slowPool, slowWorkers, p.slowFor)
	for _, kind := range []string{kindWarm, kindCold, kindEvent, kindStatus, kindSave, kindVapiSave} {
		f := summarize(rec.select_(kind, time.Time{}, time.Time{}))
		r(kind, "%d: %s; %s", f.n, f.statusText(), f.latencyText())
	}
	fa := summarize(all)
	r("slowest request", "%s (%s, status %d), deadline %s; the test process's longest stall %s",
		ms(fa.max), fa.slowest.kind, fa.slowest.status, p.slowDeadline, ms(stall))
	r("pool after the load", "%s", pool)
	r("lock pool after the load", "%s", locks)
	r("after the slowdown", "stored webhook %d, Vapi save answered in time", after.status)
}
