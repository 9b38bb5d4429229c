package db_test

import (
	"context"
	"testing"
	"time"

	"byoc/db"
	"byoc/db/dbtest"
)

// TestCancelMessagesReachEveryListener: RequestCancel and AckCancel reach
// Listeners.Cancel and CancelAck; a payload that cannot be read on those
// channels is dropped without flushing any cache.
func TestCancelMessagesReachEveryListener(t *testing.T) {
	d := dbtest.DB(t)
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	defer func() { stop(); <-stopped }() // no listener outlives the test
	type msg struct{ kind, user, attempt string }
	got := make(chan msg, 16)
	listening := make(chan bool, 16)
	go func() {
		defer close(stopped)
		d.Listen(ctx, db.Listeners{
			Invalidate: func(string, string) {},
			Flush:      func() { got <- msg{kind: "flush"} },
			Listening:  func(on bool) { listening <- on },
			Cancel:     func(user, attempt string) { got <- msg{"cancel", user, attempt} },
			CancelAck:  func(user, attempt string) { got <- msg{"ack", user, attempt} },
		})
	}()
	select {
	case on := <-listening:
		if !on {
			t.Fatal("the listener reported not listening first")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listener never listened")
	}
	expect := func(want msg) {
		t.Helper()
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %+v, want %+v", m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no message, want %+v", want)
		}
	}
	bg := context.Background()
	user, attempt := "5f0c6a4e-1111-4222-8333-944455556666", "0123456789abcdef-x"
	if err := d.RequestCancel(bg, user, attempt); err != nil {
		t.Fatal(err)
	}
	expect(msg{"cancel", user, attempt})
	if err := d.AckCancel(bg, user, attempt); err != nil {
		t.Fatal(err)
	}
	expect(msg{"ack", user, attempt})
	for _, garbage := range []string{"not json", `{"user":""}`, `{"attempt":"x"}`} {
		if _, err := d.Pool.Exec(bg, `select pg_notify($1, $2)`, db.CancelChannel, garbage); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RequestCancel(bg, user, "after-the-garbage-0"); err != nil {
		t.Fatal(err)
	}
	// Only the readable request arrives, and nothing is flushed.
	expect(msg{"cancel", user, "after-the-garbage-0"})

}
