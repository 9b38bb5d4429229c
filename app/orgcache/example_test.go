package orgcache_test

import (
	"context"
	"fmt"
	"time"

	"byoc/app"
	"byoc/app/orgcache"
)

func Example() {
	g := orgcache.NewGroup(orgcache.Options{Slots: 8, SlotWait: 50 * time.Millisecond})

	// A webhook secret depends on the org's Vapi credentials only.
	secrets := orgcache.New[string, string](g, "secrets", 5*time.Minute)
	readSecret := func(ctx context.Context, org string) (orgcache.Entry[string], error) {
		return orgcache.Entry[string]{Owner: orgcache.Owner{Org: org, Provider: app.Vapi}, Value: "whsec-" + org}, nil
	}
	v, _, err := secrets.Load(context.Background(), "org-1", readSecret)
	fmt.Println(v, err)

	// An org's statuses depend on every provider of the org; filled by hand.
	statuses := orgcache.New[string, []string](g, "statuses", time.Minute)
	s := g.Stamp() // before reading the store
	stored := statuses.Put(s, "org-1", orgcache.Entry[[]string]{Owner: orgcache.Owner{Org: "org-1"}, Value: []string{"vapi: connected"}})
	fmt.Println("statuses stored:", stored)

	fmt.Println("twilio changed, dropped:", g.Invalidate("org-1", app.Twilio))
	fmt.Println("vapi changed, dropped:", g.Invalidate("org-1", app.Vapi))
	for _, st := range g.Stats() {
		fmt.Printf("%s: %d hits, %d misses, %d items\n", st.Name, st.Hits, st.Misses, st.Items)
	}
	// Output:
	// whsec-org-1 <nil>
	// statuses stored: true
	// twilio changed, dropped: 1
	// vapi changed, dropped: 1
	// secrets: 0 hits, 1 misses, 0 items
	// statuses: 0 hits, 0 misses, 0 items
}
