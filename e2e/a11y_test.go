//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/playwright-community/playwright-go"
)

// The accessibility checks run axe-core (node_modules/axe-core, installed by
// `npm ci`) in the page and fail on every serious or critical violation.

var axeSource = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(filepath.Join("..", "node_modules", "axe-core", "axe.min.js"))
	return string(b), err
})

// axeViolation is what a failed check reports of one rule.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// checkA11y runs axe-core on the page as it is now (what is hidden, such as
// a closed dialog, is not checked) and fails the test for each serious or
// critical violation. what names the state checked.
func checkA11y(t *testing.T, page playwright.Page, what string) {
	t.Helper()
	src, err := axeSource()
	if err != nil {
		t.Fatalf("axe-core is not installed (run npm ci): %v", err)
	}
	// Evaluated through the browser's debugging protocol, so the page's
	// Content-Security-Policy (no inline scripts) is left as it is.
	if _, err := page.Evaluate(src + "\n;true"); err != nil {
		t.Fatalf("%s: loading axe-core: %v", what, err)
	}
	v, err := page.Evaluate(`async () => {
		const r = await axe.run(document, {resultTypes: ["violations"]});
		return JSON.stringify(r.violations
			.filter(v => v.impact === "serious" || v.impact === "critical")
			.map(v => ({id: v.id, impact: v.impact, help: v.help,
				nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " " + (n.failureSummary || "").replace(/\s+/g, " "))})));
	}`)
	if err != nil {
		t.Fatalf("%s: running axe-core: %v", what, err)
	}
	var found []axeViolation
	if err := json.Unmarshal([]byte(v.(string)), &found); err != nil {
		t.Fatalf("%s: axe-core answered %v", what, v)
	}
	for _, f := range found {
		t.Errorf("%s: %s (%s): %s\n  %s", what, f.ID, f.Impact, f.Help, strings.Join(f.Nodes, "\n  "))
	}
}

func TestAccessibilityOfErrorPages(t *testing.T) {
	page := newPage(t, "the server responded with a status of 404", "the server responded with a status of 405")
	for _, path := range []string{"/no-such-page"} {
		if _, err := page.Goto(path); err != nil {
			t.Fatal(err)
		}
		checkA11y(t, page, "signed out, "+path)
	}
	signUp(t, page, "Error Page Clinic")
	for _, path := range []string{"/no-such-page", "/dashboard/nothing-here", "/logout"} {
		if _, err := page.Goto(path); err != nil {
			t.Fatal(err)
		}
		integCheck(t, "an error page", integExpect.Locator(page.GetByTestId("error-page")).ToBeVisible())
		checkA11y(t, page, "signed in, "+path)
	}
}
