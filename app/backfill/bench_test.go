package backfill_test

import (
	"context"
	"testing"

	"byoc/app/apptest"
)

// BenchmarkBackfill brings over 1,000 legacy orgs, each with sealed Vapi
// and Twilio credentials and an inbound assistant (3,000 legacy rows), in
// the default batches, and reports legacy rows per second and the
// notifications each instance hears per batch.
//
//	go test -run '^$' -bench Backfill ./app/backfill/
func BenchmarkBackfill(b *testing.B) {
	const orgs = 1000
	ctx := context.Background()
	var rows, notes, batches int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		l := newLegacy(b, false)
		var ids []string
		if err := l.d.Pool.QueryRow(ctx, `with o as (insert into orgs (name) select 'bench ' || i from generate_series(1, $1) i
			returning id::text) select array_agg(id) from o`, orgs).Scan(&ids); err != nil {
			b.Fatal(err)
		}
		var iorg, iprov, icfg, aorg, aid []string
		for _, id := range ids {
			iorg = append(iorg, id, id)
			iprov = append(iprov, "vapi", "twilio")
			icfg = append(icfg, legacySeal(b, legacyKeyHex, 12, `{"apiKey":"`+vapiKey+`","webhookSecret":"`+vapiSecret+`"}`),
				legacySeal(b, legacyKeyHex, 16, twilioJSON("account_sid")))
			aorg, aid = append(aorg, id), append(aid, newID(b))
		}
		if _, err := l.d.Pool.Exec(ctx, `insert into `+l.schema+`.integrations select * from unnest($1::uuid[], $2::text[], $3::text[])`,
			iorg, iprov, icfg); err != nil {
			b.Fatal(err)
		}
		if _, err := l.d.Pool.Exec(ctx, `insert into `+l.schema+`.agents select * from unnest($1::uuid[], $2::text[])`, aorg, aid); err != nil {
			b.Fatal(err)
		}
		heard := notifications(b)
		o := opts(b, &apptest.LogBuffer{})
		o.BatchSize = 0 // the default
		b.StartTimer()
		rep := mustRun(b, l.src, l.d, o)
		b.StopTimer()
		if rep.Integrations.Migrated != 2*orgs || rep.Agents.Migrated != orgs {
			b.Fatalf("migrated %d credentials and %d assistants", rep.Integrations.Migrated, rep.Agents.Migrated)
		}
		rows += 3 * orgs
		batches += rep.Batches
		notes += len(heard())
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(notes)/float64(batches), "notifications/batch")
}
