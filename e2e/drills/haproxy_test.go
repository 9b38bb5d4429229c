//go:build !e2e

package drills

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"byoc/app/paths"
)

// lockedBuffer is HAProxy's output, written by its process and read when a
// drill fails.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// haproxyPath finds the haproxy binary: on PATH, or where Debian puts it.
func haproxyPath() (string, error) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy", nil
	}
	return "", errors.New("haproxy not found (Debian: apt-get install haproxy; `make test` installs it as root)")
}

// startHAProxy runs HAProxy with deploy/haproxy/haproxy.cfg, the file a
// deployment uses, in front of the world's three instances, waits until
// it answers through every one of them, and returns it as a target of
// w.do and w.webhook. The test's cleanup stops it (SIGTERM to its PID).
// Without HAProxy installed it returns nil, unless the run must have it
// (CI=true or the full form), which fails.
func (w *world) startHAProxy() *instance {
	t := w.t
	t.Helper()
	if len(w.instances) != 3 {
		t.Fatalf("deploy/haproxy/haproxy.cfg names 3 instances, the drill has %d", len(w.instances))
	}
	bin, err := haproxyPath()
	if err != nil {
		if os.Getenv("CI") == "true" || *fullRun {
			t.Fatal(err)
		}
		t.Logf("the drill runs without its load balancer part: %v", err)
		return nil
	}
	cfg, err := filepath.Abs(filepath.Join("..", "..", "deploy", "haproxy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", cfg, "-db")
	cmd.Env = append(os.Environ(), "BYOC_LISTEN=127.0.0.1:"+strconv.Itoa(port))
	for i, in := range w.instances {
		cmd.Env = append(cmd.Env, fmt.Sprintf("BYOC_APP%d=%s", i+1, strings.TrimPrefix(in.base, "http://")))
	}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("HAProxy's output (end):\n%s", tail(out.String(), 2000))
		}
	})
	lb := &instance{name: "haproxy", base: "http://127.0.0.1:" + strconv.Itoa(port)}
	// Round robin: as many ready answers in a row as instances means every
	// instance answers through HAProxy.
	limit := time.Now().Add(30 * time.Second)
	for inRow := 0; inRow < len(w.instances); {
		select {
		case <-exited:
			t.Fatalf("haproxy exited: %s", out.String())
		default:
		}
		if r := w.readiness(lb); r.status == http.StatusOK && r.database == "up" {
			inRow++
			continue
		}
		inRow = 0
		if time.Now().After(limit) {
			t.Fatalf("HAProxy does not answer /readyz through every instance within 30 s: %s", tail(out.String(), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return lb
}

// ready is one answer of /readyz.
type ready struct {
	status          int
	state, database string
	err             error
}

func (r ready) String() string {
	if r.err != nil {
		return "no answer (" + r.err.Error() + ")"
	}
	return fmt.Sprintf("%d %s, database %s", r.status, r.state, r.database)
}

// readiness asks in's /readyz.
func (w *world) readiness(in *instance) ready {
	res, err := w.client.Get(in.base + paths.Readyz)
	if err != nil {
		return ready{err: err}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var body struct{ Status, Database string }
	_ = json.Unmarshal(b, &body)
	return ready{status: res.StatusCode, state: body.Status, database: body.Database}
}
