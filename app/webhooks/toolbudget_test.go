package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"byoc/app"
)

// slowCalendar answers FreeBusy after delay, ignoring its context as a
// stuck provider would; a period starting in 2031 is answered only once
// hang is closed. It counts how many calls run at once.
type slowCalendar struct {
	delay             time.Duration
	hang              chan struct{}
	inflight, maxSeen atomic.Int32
}

func (c *slowCalendar) FreeBusy(_ context.Context, _ string, start, _ time.Time) ([]app.Busy, error) {
	n := c.inflight.Add(1)
	defer c.inflight.Add(-1)
	for {
		m := c.maxSeen.Load()
		if n <= m || c.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if start.Year() == 2031 {
		<-c.hang
	} else {
		time.Sleep(c.delay)
	}
	return nil, nil
}

func (c *slowCalendar) Book(context.Context, string, app.Booking) (string, string, error) {
	return "", "", nil
}

// toolDelivery runs one tool-calls delivery of check_availability calls,
// one per year (2031 hangs), and returns its results and how long it took.
func toolDelivery(t *testing.T, opts Options, cal *slowCalendar, years ...int) ([]toolResult, time.Duration) {
	t.Helper()
	h := New(Deps{Mappings: memDeps{}, Credentials: memDeps{}, Events: memDeps{}, Calendar: cal}, opts)
	calls := make([]map[string]any, len(years))
	for i, y := range years {
		calls[i] = map[string]any{"id": fmt.Sprintf("t%d", i), "function": map[string]any{"name": ToolCheckAvailability,
			"arguments": map[string]any{"start": fmt.Sprintf("%d-01-01T10:00:00Z", y), "end": fmt.Sprintf("%d-01-01T11:00:00Z", y)}}}
	}
	body, err := json.Marshal(map[string]any{"message": map[string]any{"type": TypeToolCalls, "toolCallList": calls,
		"call": map[string]any{"id": t.Name()}, "assistant": map[string]any{"id": fuzzAssistant}}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp := h.Handle(context.Background(), Request{Header: http.Header{HeaderVapiSecret: {fuzzSecret}}.Get, Body: body})
	took := time.Since(start)
	res, ok := resp.Body.(toolResults)
	if resp.Status != http.StatusOK || !ok || len(res.Results) != len(years) {
		t.Fatalf("got %d %+v, want 200 and %d results", resp.Status, resp.Body, len(years))
	}
	for i, r := range res.Results {
		if r.ToolCallID != fmt.Sprintf("t%d", i) || r.Name != ToolCheckAvailability {
			t.Errorf("result %d is %+v, want the results in the order of the calls", i, r)
		}
	}
	return res.Results, took
}

// TestToolCallsRunConcurrently: slow tools of one delivery run a few at a
// time, so that together they finish within the budget although one after
// another they would not, and each gets its own result, in order.
func TestToolCallsRunConcurrently(t *testing.T) {
	// One after another, 8 × 400 ms would overrun the budget and the last
	// calls would time out; a few at a time they take about 0.8 s, leaving
	// the budget a wide margin on a loaded machine.
	cal := &slowCalendar{delay: 400 * time.Millisecond}
	budget := 2500 * time.Millisecond
	years := []int{2030, 2030, 2030, 2030, 2030, 2030, 2030, 2030}
	res, _ := toolDelivery(t, Options{ToolBudget: budget}, cal, years...)
	for i, r := range res {
		if !strings.Contains(r.Result, "is free") {
			t.Errorf("result %d: %q, want the tool's answer", i, r.Result)
		}
	}
	if n := cal.maxSeen.Load(); n < 2 || n > maxConcurrentTools {
		t.Errorf("%d calls ran at once, want 2 to %d", n, maxConcurrentTools)
	}
}

// TestToolCallsOverBudgetTimeOut: a tool that does not finish within the
// budget (or its ToolTimeout) is answered with a result saying it timed
// out, without waiting for it; a call that could not start before the budget
// ran out says so; the other calls keep their answers.
func TestToolCallsOverBudgetTimeOut(t *testing.T) {
	t.Run("budget", func(t *testing.T) {
		cal := &slowCalendar{hang: make(chan struct{})}
		defer close(cal.hang)
		budget := 300 * time.Millisecond
		// Four slots: the quick call and three stuck ones start, the fourth
		// stuck one starts when the quick call is done, and the last call
		// finds no slot before the budget ends.
		res, took := toolDelivery(t, Options{ToolBudget: budget}, cal, 2030, 2031, 2031, 2031, 2031, 2030)
		// The stuck calls never return: answering at all shows nobody
		// waited for them; before the budget ran out nothing was answered.
		if took < budget || took > budget+5*time.Second {
			t.Errorf("took %v, want about the budget %v", took, budget)
		}
		want := []string{"is free", "timed out: it did not finish in time", "timed out: it did not finish in time",
			"timed out: it did not finish in time", "timed out: it did not finish in time", "timed out: it was not run"}
		for i, r := range res {
			if !strings.Contains(r.Result, want[i]) {
				t.Errorf("result %d: %q, want it to contain %q", i, r.Result, want[i])
			}
		}
	})
	t.Run("tool timeout", func(t *testing.T) {
		cal := &slowCalendar{hang: make(chan struct{})}
		defer close(cal.hang)
		res, took := toolDelivery(t, Options{ToolTimeout: 100 * time.Millisecond, ToolBudget: 5 * time.Second}, cal, 2031, 2030)
		if took > 4*time.Second {
			t.Errorf("took %v, want about the tool timeout, well before the budget", took)
		}
		if !strings.Contains(res[0].Result, "timed out") || !strings.Contains(res[1].Result, "is free") {
			t.Errorf("results %+v, want the stuck call timed out and the other answered", res)
		}
	})
}
