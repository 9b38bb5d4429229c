//go:build e2e

// Package e2e drives the real BYOC server in Debian's Chromium through
// playwright-go: the built binary (BYOC_BIN) in demo mode, so every provider
// is one of the sandbox stand-ins, and a fresh database on the real
// PostgreSQL (DATABASE_URL). `make e2e` (and `make test`) provide all of that.
//
// Under CI=true nothing here skips: a missing browser or database fails.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"

	"byoc/app/apptest"
	"byoc/db/dbtest"
)

var (
	baseURL string
	browser playwright.Browser
	// serverLog collects the server's output, so tests can assert that no
	// secret was ever logged.
	serverLog apptest.LogBuffer
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if reason := missing(); reason != "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "e2e: cannot run the browser tests under CI:", reason)
			return 1
		}
		fmt.Fprintln(os.Stderr, "e2e: skipping the browser tests:", reason)
		return 0
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbURL, dropDB, err := dbtest.Create(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer dropDB()

	stop, err := startServer(ctx, dbURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: server:", err)
		fmt.Fprintln(os.Stderr, serverLog.String())
		return 1
	}
	defer stop()

	pw, err := playwright.Run(&playwright.RunOptions{
		DriverDirectory:     os.Getenv("PLAYWRIGHT_DRIVER_PATH"),
		SkipInstallBrowsers: true,
		Verbose:             false,
		Stdout:              io.Discard,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: playwright driver:", err)
		return 1
	}
	defer pw.Stop()

	browser, err = pw.Chromium.Launch(playwright.BrowserTypeLaunchOptions{
		ExecutablePath: playwright.String(os.Getenv("CHROMIUM_PATH")),
		Headless:       playwright.Bool(true),
		Args: []string{"--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: launch chromium:", err)
		return 1
	}
	defer browser.Close()

	return m.Run()
}

// missing says what the browser tests lack, or "" when they can run.
func missing() string {
	for _, v := range []string{"BYOC_BIN", "CHROMIUM_PATH", "PLAYWRIGHT_DRIVER_PATH", "DATABASE_URL"} {
		if os.Getenv(v) == "" {
			return v + " is not set (run them with `make e2e`)"
		}
	}
	if _, err := os.Stat(os.Getenv("CHROMIUM_PATH")); err != nil {
		return "no Chromium at " + os.Getenv("CHROMIUM_PATH")
	}
	return ""
}

// startServer runs the real binary on a free port and waits until it is ready.
func startServer(ctx context.Context, dbURL string) (stop func(), err error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "byoc-e2e-")
	if err != nil {
		return nil, err
	}
	baseURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(os.Getenv("BYOC_BIN"), "demo")
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+dbURL,
		fmt.Sprintf("PORT=%d", port),
		"PUBLIC_URL="+baseURL,
		"APP_ENV=development",
		"DATA_DIR="+dataDir,
		"LOG_LEVEL=info",
	)
	cmd.Dir = filepath.Dir(os.Getenv("BYOC_BIN"))
	cmd.Stdout = &serverLog
	cmd.Stderr = &serverLog
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dataDir)
	}
	for {
		if ctx.Err() != nil {
			stop()
			return nil, fmt.Errorf("not ready in time")
		}
		resp, err := http.Get(baseURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// newPage opens a page in a browser context of its own. The test fails if
// the page logs an error to the console or throws, unless the console
// error contains one of expected (such as the failed load of an error page
// a test opens on purpose).
func newPage(t *testing.T, expected ...string) playwright.Page {
	t.Helper()
	bctx, err := browser.NewContext(playwright.BrowserNewContextOptions{BaseURL: playwright.String(baseURL)})
	if err != nil {
		t.Fatal(err)
	}
	page, err := bctx.NewPage()
	if err != nil {
		t.Fatal(err)
	}
	page.SetDefaultTimeout(10000)
	var mu sync.Mutex
	var problems []string
	page.OnConsole(func(m playwright.ConsoleMessage) {
		if m.Type() == "error" && !slices.ContainsFunc(expected, func(s string) bool { return strings.Contains(m.Text(), s) }) {
			mu.Lock()
			problems = append(problems, "console error: "+m.Text())
			mu.Unlock()
		}
	})
	page.OnPageError(func(err error) {
		mu.Lock()
		problems = append(problems, "page error: "+err.Error())
		mu.Unlock()
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Error(p)
		}
		if t.Failed() {
			shot := filepath.Join(os.TempDir(), "byoc-e2e-"+strings.ReplaceAll(t.Name(), "/", "_")+".png")
			if _, err := page.Screenshot(playwright.PageScreenshotOptions{Path: playwright.String(shot), FullPage: playwright.Bool(true)}); err == nil {
				t.Logf("screenshot: %s", shot)
			}
		}
		bctx.Close()
	})
	return page
}
