package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"byoc/app/apptest"
	"byoc/db/dbtest"
)

// The smoke run against the real binary in demo mode, on a free port and a
// fresh database: every step passes, and neither its output nor the
// server's log shows a credential.
func TestSmokeAgainstDemoServer(t *testing.T) {
	base, serverLog := startDemo(t)
	values := DemoValues()
	var out strings.Builder
	if err := Run(t.Context(), Options{BaseURL: base, Values: values, Out: &out}); err != nil {
		t.Fatalf("%v\n%s\nserver log:\n%s", err, out.String(), serverLog.String())
	}
	text := out.String()
	for _, want := range []string{"ok   sign up", "ok   save vapi", "ok   verify twilio", "ok   signed webhook accepted",
		"ok   forged webhook refused", "ok   google calendar sign-in starts", "ok   disconnect elevenlabs",
		"ok   google calendar connected (stand-in)", "ok   verify google_calendar", "ok   disconnect google_calendar",
		"ok   webhook refused after disconnect", "smoke: all 24 steps passed"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	secrets := allValues(values)
	apptest.AssertNoSecret(t, "the smoke output", text, secrets...)
	apptest.AssertNoSecret(t, "the server log", serverLog.String(), secrets...)

	// The first failure ends the run: a key the Vapi stand-in refuses stops
	// it at the save, before anything later is tried, and the key is not
	// printed.
	t.Run("stops at the first failure", func(t *testing.T) {
		bad := DemoValues()
		bad["vapi"]["apiKey"] = "vapi-invalid-" + apptest.RandomHex(12)
		var out strings.Builder
		err := Run(t.Context(), Options{BaseURL: base, Values: bad, Out: &out})
		if err == nil || !strings.Contains(err.Error(), "(save vapi) failed") {
			t.Fatalf("got %v, want the Vapi save to fail\n%s", err, out.String())
		}
		text := out.String()
		if !strings.Contains(text, "FAIL save vapi") || !strings.Contains(text, "verification_failed") {
			t.Errorf("the failure is not reported with its code:\n%s", text)
		}
		if strings.Contains(text, "verify vapi") || strings.Contains(text, "save twilio") {
			t.Errorf("steps ran after the failure:\n%s", text)
		}
		apptest.AssertNoSecret(t, "the smoke output", text+err.Error(), allValues(bad)...)
	})
}

func TestSmokeRefusesWhatItCannotReach(t *testing.T) {
	for _, base := range []string{"", "ftp://example.com", "http://"} {
		if err := Run(t.Context(), Options{BaseURL: base}); err == nil {
			t.Errorf("URL %q accepted", base)
		}
	}
	var out strings.Builder
	err := Run(t.Context(), Options{BaseURL: apptest.ClosedURL(t), Out: &out})
	if err == nil || !strings.Contains(out.String(), "FAIL health") {
		t.Fatalf("a closed port: %v\n%s", err, out.String())
	}
}

func TestValuesFromEnv(t *testing.T) {
	got := valuesFromEnv([]string{
		"SMOKE_VAPI_APIKEY=k1", "SMOKE_VAPI_WEBHOOKSECRET=s1", "SMOKE_TWILIO_ACCOUNTSID=AC1",
		"SMOKE_RESEND_UNKNOWN=x", "SMOKE_GOOGLE_APIKEY=x", "SMOKE_ELEVENLABS_APIKEY=", "PATH=/bin",
	})
	want := map[string]map[string]string{
		"vapi":   {"apiKey": "k1", "webhookSecret": "s1"},
		"twilio": {"accountSid": "AC1"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func allValues(v map[string]map[string]string) []string {
	var out []string
	for _, fields := range v {
		for name, s := range fields {
			if name != "phoneNumber" && name != "fromEmail" {
				out = append(out, s)
			}
		}
	}
	return out
}

// startDemo runs `byoc demo` (BYOC_BIN, else a binary built from this
// checkout) on a free port with a fresh database, until the test ends.
func startDemo(t *testing.T) (string, *apptest.LogBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dbURL, drop, err := dbtest.Create(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(drop)

	bin := os.Getenv("BYOC_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "byoc")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "byoc")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build the server: %v\n%s", err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	var log apptest.LogBuffer
	cmd := exec.Command(bin, "demo")
	cmd.Dir = t.TempDir() // no .env.local
	// PUBLIC_URL names the server otherwise than the smoke's URL, as an
	// operator's may: Google's sign-in returns the browser there.
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, fmt.Sprintf("PORT=%d", port), fmt.Sprintf("PUBLIC_URL=http://localhost:%d", port),
		"APP_ENV=development", "DATA_DIR="+t.TempDir(), "LOG_LEVEL=debug")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, &log
			}
		}
		select {
		case <-done:
			t.Fatalf("the server exited before it was ready:\n%s", log.String())
		case <-ctx.Done():
			t.Fatalf("the server was not ready in time:\n%s", log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Consent at Google itself takes a person: the run reports it as skipped,
// with the steps that need the connection, instead of failing.
func TestGoogleConsentSkippedAwayFromTheStandIn(t *testing.T) {
	s, err := newSession(Options{BaseURL: "https://byoc.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	s.authURL = "https://accounts.google.com/o/oauth2/v2/auth?redirect_uri=https%3A%2F%2Fbyoc.example.com%2Fcb&state=x"
	if err := s.googleConsent(t.Context()); !errors.Is(err, errSkipped) {
		t.Fatalf("got %v, want a skip", err)
	}
	if err := s.ifGoogle(func(context.Context) error { return nil })(t.Context()); !errors.Is(err, errSkipped) {
		t.Fatalf("a step needing Google ran without it: %v", err)
	}
}
