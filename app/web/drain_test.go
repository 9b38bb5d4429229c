package web_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDrain(t *testing.T) {
	e := newEnv(t)
	if res := e.do(request(http.MethodGet, "/readyz", nil)); res.StatusCode != http.StatusOK || res.Close {
		t.Fatalf("before Drain: /readyz %d, close %v", res.StatusCode, res.Close)
	}
	e.srv.Drain()
	res := e.do(request(http.MethodGet, "/readyz", nil))
	if res.StatusCode != http.StatusServiceUnavailable || res.json(t)["status"] != "draining" {
		t.Fatalf("draining: /readyz %d %s, want 503 draining", res.StatusCode, res.body)
	}
	// Requests are still served, each closing its connection so that no
	// proxy keeps one to this instance.
	for _, path := range []string{"/healthz", "/login", "/readyz"} {
		res := e.do(request(http.MethodGet, path, nil))
		if res.StatusCode >= 500 && path != "/readyz" {
			t.Errorf("draining: %s answered %d", path, res.StatusCode)
		}
		if !res.Close && !strings.EqualFold(res.Header.Get("Connection"), "close") {
			t.Errorf("draining: %s keeps its connection open", path)
		}
	}
}

// A connection that sends nothing gets no answer when the server stops
// waiting: an unsolicited error page would be read by whoever sends the
// next request on it. One that sent part of a request still learns why it
// was cut off.
func TestIdleConnectionClosedWithoutAnswer(t *testing.T) {
	e := newEnv(t, func(s *envSetup) { s.opts.Web.RequestTimeout = 50 * time.Millisecond })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.Serve(ln) }()
	t.Cleanup(func() { _ = e.srv.Shutdown(context.Background()) })

	read := func(sent string) (string, error) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return "", err
		}
		defer conn.Close()
		if sent != "" {
			if _, err := io.WriteString(conn, sent); err != nil {
				return "", err
			}
		}
		// The server's read timeout is the request timeout plus 5 s.
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(conn)
		return string(got), err
	}
	type result struct {
		got string
		err error
	}
	silent, partial := make(chan result, 1), make(chan result, 1)
	go func() { got, err := read(""); silent <- result{got, err} }()
	go func() {
		got, err := read("GET /api/integrations/status HTTP/1.1\r\nHost: byoc.test\r\n")
		partial <- result{got, err}
	}()

	if r := <-silent; r.err != nil || r.got != "" {
		t.Errorf("a connection that sent nothing got %q (err %v), want it closed without an answer", r.got, r.err)
	}
	r := <-partial
	if r.err != nil {
		t.Fatalf("partial request: %v", r.err)
	}
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(r.got)), nil)
	if err != nil {
		t.Fatalf("partial request: no answer: %v (%q)", err, r.got)
	}
	res.Body.Close()
	if res.StatusCode < 400 {
		t.Errorf("partial request answered %d", res.StatusCode)
	}
}
