package web

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

func TestRequestContextMakesNoTimerUntilWaitedOn(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	deadline := time.Now().Add(time.Hour)
	r, release := newRequestContext(parent, deadline)
	defer release()
	if d, ok := r.Deadline(); !ok || !d.Equal(deadline) {
		t.Fatalf("Deadline = %v, %v", d, ok)
	}
	if r.Value(ctxKey{}) != "v" {
		t.Fatal("the parent's value is lost")
	}
	if r.real.Load() != nil {
		t.Fatal("a timer was made before anything waited")
	}
	if r.Err() != nil {
		t.Fatalf("Err = %v before the deadline", r.Err())
	}
	if r.real.Load() == nil {
		t.Fatal("Err did not make the timer")
	}
	select {
	case <-r.Done():
		t.Fatal("Done closed before the deadline")
	default:
	}
	if r.Value(ctxKey{}) != "v" {
		t.Fatal("the parent's value is lost once the timer exists")
	}
}

func TestRequestContextEndsAtItsDeadline(t *testing.T) {
	r, release := newRequestContext(context.Background(), time.Now().Add(20*time.Millisecond))
	defer release()
	child, cancel := context.WithTimeout(r, time.Hour)
	defer cancel()
	<-r.Done()
	if !errors.Is(r.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want the deadline", r.Err())
	}
	<-child.Done()
	if !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Fatalf("child's Err = %v, want the deadline", child.Err())
	}
	if d, _ := child.Deadline(); d.After(time.Now()) {
		t.Fatalf("the child's deadline %v is not the request's", d)
	}
}

func TestRequestContextEndsWithItsParent(t *testing.T) {
	parent, stop := context.WithCancelCause(context.Background())
	r, release := newRequestContext(parent, time.Now().Add(time.Hour))
	defer release()
	child, cancel := context.WithCancel(r)
	defer cancel()
	cause := errors.New("shutting down")
	stop(cause)
	<-child.Done()
	if !errors.Is(r.Err(), context.Canceled) || !errors.Is(context.Cause(child), cause) {
		t.Fatalf("Err = %v, child's cause = %v", r.Err(), context.Cause(child))
	}

	// A parent that ended before anything waited is seen at the first wait.
	parent2, stop2 := context.WithCancel(context.Background())
	stop2()
	r2, release2 := newRequestContext(parent2, time.Now().Add(time.Hour))
	defer release2()
	select {
	case <-r2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done stayed open under an ended parent")
	}
}

func TestRequestContextReleased(t *testing.T) {
	for _, waited := range []bool{false, true} {
		r, release := newRequestContext(context.WithValue(context.Background(), ctxKey{}, "v"), time.Now().Add(time.Hour))
		var child context.Context
		if waited {
			var cancel context.CancelFunc
			child, cancel = context.WithCancel(r)
			defer cancel()
		}
		release()
		if !errors.Is(r.Err(), context.Canceled) {
			t.Fatalf("waited=%v: Err after release = %v", waited, r.Err())
		}
		if r.Value(ctxKey{}) != "v" {
			t.Fatalf("waited=%v: the parent's value is lost after release", waited)
		}
		if child != nil {
			<-child.Done()
		}
		release() // twice is harmless
	}
}

// TestRequestContextRace waits on, reads and releases one context from
// several goroutines at once (run with -race).
func TestRequestContextRace(t *testing.T) {
	r, release := newRequestContext(context.Background(), time.Now().Add(time.Hour))
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			_ = r.Value(ctxKey{})
			_ = r.Done()
			_ = r.Err()
		}()
	}
	release()
	for range 4 {
		<-done
	}
	<-r.Done()
}

func BenchmarkRequestContext(b *testing.B) {
	parent, stop := context.WithCancel(context.Background())
	defer stop()
	b.Run("lazy, never waited on", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, release := newRequestContext(parent, time.Now().Add(time.Minute))
			release()
		}
	})
	b.Run("context.WithTimeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, cancel := context.WithTimeout(parent, time.Minute)
			cancel()
		}
	})
}
