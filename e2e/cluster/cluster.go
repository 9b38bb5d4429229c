package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
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
	"byoc/app/sandbox"
)

// Instances is how many BYOC instances a cluster runs: the HAProxy
// configuration names this many servers.
const Instances = 3

// Drain is the SHUTDOWN_DRAIN of every instance: longer than HAProxy's
// checks take to mark a draining instance down (fall 2 x inter 500ms, plus
// one check in flight).
const Drain = 3 * time.Second

// Options say what a cluster runs on.
type Options struct {
	// Bin is the BYOC binary (bin/byoc).
	Bin string
	// HAProxyConfig is deploy/haproxy/haproxy.cfg.
	HAProxyConfig string
	// DataDir holds each instance's data folder (app1, app2, ...) and the
	// processes' logs; it is made when missing.
	DataDir string
	// DatabaseURL is the database every instance uses.
	DatabaseURL string
	// Secrets are ENCRYPTION_KEY, JWT_SECRET, SESSION_SECRET and OPS_TOKEN,
	// shared by every instance as production instances share them.
	Secrets map[string]string
	// Env is added to every instance's environment (it wins over the
	// cluster's own settings).
	Env []string
}

// Cluster is a running HAProxy in front of Instances BYOC instances, whose
// providers are the stand-ins of one sandbox served by this process.
type Cluster struct {
	// URL is HAProxy's address, where clients connect.
	URL string
	// Apps are the instances, app1 first.
	Apps []*Instance
	// Sandbox holds what every instance did at the providers.
	Sandbox *sandbox.Sandbox

	opts    Options
	haproxy *process
	stands  *http.Server
}

// Instance is one BYOC process on its own port and data folder.
type Instance struct {
	Name string
	// URL is the instance's own address, bypassing HAProxy.
	URL string

	bin, dir, log string
	env           []string
	mu            sync.Mutex
	proc          *process
}

// process is a child process started by this program, stopped by its PID.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// NewSecrets returns fresh secrets for a cluster's instances.
func NewSecrets() map[string]string {
	return map[string]string{
		"ENCRYPTION_KEY": randomHex(32),
		"JWT_SECRET":     randomHex(32),
		"SESSION_SECRET": randomHex(32),
		"OPS_TOKEN":      randomHex(16),
	}
}

// Start runs the sandbox, every instance (each on a free port, waiting for
// its /readyz) and HAProxy (on a free port, waiting until it answers
// /readyz through every instance). On failure it stops what it started.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	for _, k := range []string{"ENCRYPTION_KEY", "JWT_SECRET", "SESSION_SECRET", "OPS_TOKEN"} {
		if o.Secrets[k] == "" {
			return nil, fmt.Errorf("cluster: secret %s missing", k)
		}
	}
	if o.DatabaseURL == "" {
		return nil, errors.New("cluster: no database URL")
	}
	haproxyBin, err := HAProxyPath()
	if err != nil {
		return nil, err
	}
	if o.DataDir, err = filepath.Abs(o.DataDir); err != nil {
		return nil, err
	}
	if o.Bin, err = filepath.Abs(o.Bin); err != nil {
		return nil, err
	}
	if o.HAProxyConfig, err = filepath.Abs(o.HAProxyConfig); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, err
	}
	ports, err := freePorts(Instances + 1)
	if err != nil {
		return nil, err
	}
	c := &Cluster{URL: "http://127.0.0.1:" + strconv.Itoa(ports[0]), Sandbox: sandbox.New(), opts: o}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	providerEnv, err := c.serveStandIns()
	if err != nil {
		return nil, err
	}
	env := []string{
		"APP_ENV=development",
		"PUBLIC_URL=" + c.URL,
		"DATABASE_URL=" + o.DatabaseURL,
		"LOG_LEVEL=info",
		// HAProxy connects from loopback and names the client in
		// X-Forwarded-For.
		"TRUSTED_PROXIES=127.0.0.1",
		"SHUTDOWN_DRAIN=" + Drain.String(),
	}
	for k, v := range o.Secrets {
		env = append(env, k+"="+v)
	}
	env = append(env, providerEnv...)
	for i := range Instances {
		name := "app" + strconv.Itoa(i+1)
		dir := filepath.Join(o.DataDir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		port := ports[i+1]
		c.Apps = append(c.Apps, &Instance{
			Name: name, URL: "http://127.0.0.1:" + strconv.Itoa(port), bin: o.Bin, dir: dir,
			log: filepath.Join(o.DataDir, name+".log"),
			env: append(append([]string{"PORT=" + strconv.Itoa(port), "DATA_DIR=" + dir}, env...), o.Env...),
		})
	}
	// The first instance migrates the database alone; the others start
	// together once it is ready.
	if err := c.Apps[0].Start(ctx); err != nil {
		return nil, err
	}
	errs := make(chan error, Instances)
	for _, a := range c.Apps[1:] {
		go func() { errs <- a.Start(ctx) }()
	}
	for range c.Apps[1:] {
		err = errors.Join(err, <-errs)
	}
	if err != nil {
		return nil, err
	}

	hEnv := []string{"BYOC_LISTEN=127.0.0.1:" + strconv.Itoa(ports[0])}
	for i, a := range c.Apps {
		hEnv = append(hEnv, fmt.Sprintf("BYOC_APP%d=%s", i+1, strings.TrimPrefix(a.URL, "http://")))
	}
	c.haproxy, err = startProcess(haproxyBin, []string{"-f", o.HAProxyConfig, "-db"}, hEnv, o.DataDir,
		filepath.Join(o.DataDir, "haproxy.log"))
	if err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	// Round robin: as many good answers in a row as instances means every
	// instance answers through HAProxy.
	if err := waitReady(ctx, c.URL, c.haproxy, Instances, 30*time.Second); err != nil {
		return nil, fmt.Errorf("haproxy: %w (log: %s)", err, filepath.Join(o.DataDir, "haproxy.log"))
	}
	return c, nil
}

// serveStandIns serves the sandbox's stand-ins (and Google's) on a free
// loopback port and returns the environment pointing an instance at them.
func (c *Cluster) serveStandIns() ([]string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	root := "http://" + ln.Addr().String()
	callback := c.URL + paths.GoogleCallback
	google := sandbox.NewGoogle(sandbox.GoogleOptions{
		ClientID: sandbox.GoogleSandboxClientID, ClientSecret: sandbox.GoogleSandboxClientSecret,
		RedirectURIs: []string{callback},
	})
	mux := http.NewServeMux()
	mux.Handle("/google/", http.StripPrefix("/google", google))
	mux.Handle("/", c.Sandbox.Handler())
	c.stands = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = c.stands.Serve(ln) }()
	u := c.Sandbox.BaseURLs(root)
	g := google.URLs(root + "/google")
	return []string{
		"VAPI_BASE_URL=" + u.Vapi, "VAPI_EU_BASE_URL=" + u.VapiEU, "TWILIO_BASE_URL=" + u.Twilio,
		"RESEND_BASE_URL=" + u.Resend, "ELEVENLABS_BASE_URL=" + u.ElevenLabs,
		"GOOGLE_CLIENT_ID=" + sandbox.GoogleSandboxClientID, "GOOGLE_CLIENT_SECRET=" + sandbox.GoogleSandboxClientSecret,
		"GOOGLE_CALLBACK_URL=" + callback,
		"GOOGLE_AUTH_URL=" + g.Auth, "GOOGLE_TOKEN_URL=" + g.Token, "GOOGLE_REVOKE_URL=" + g.Revoke,
		"GOOGLE_CALENDAR_BASE_URL=" + g.Calendar,
	}, nil
}

// Stop stops HAProxy and every instance (SIGTERM, each by its PID) and the
// stand-ins. It is safe to call more than once.
func (c *Cluster) Stop() {
	if c.haproxy != nil {
		c.haproxy.stop(5 * time.Second)
	}
	var wg sync.WaitGroup
	for _, a := range c.Apps {
		wg.Add(1)
		go func() { defer wg.Done(); a.Stop() }()
	}
	wg.Wait()
	if c.stands != nil {
		_ = c.stands.Close()
	}
}

// Start runs the instance and waits until its /readyz answers 200.
func (a *Instance) Start(ctx context.Context) error {
	a.mu.Lock()
	if a.proc != nil && !a.proc.exited() {
		a.mu.Unlock()
		return fmt.Errorf("%s is running", a.Name)
	}
	p, err := startProcess(a.bin, []string{"serve"}, a.env, a.dir, a.log)
	if err != nil {
		a.mu.Unlock()
		return fmt.Errorf("%s: %w", a.Name, err)
	}
	a.proc = p
	a.mu.Unlock()
	if err := waitReady(ctx, a.URL, p, 1, time.Minute); err != nil {
		return fmt.Errorf("%s: %w (log: %s)", a.Name, err, a.log)
	}
	return nil
}

// Stop sends SIGTERM to the instance and waits until it has drained and
// exited (killing it after 30 s).
func (a *Instance) Stop() {
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	if p != nil {
		p.stop(30 * time.Second)
	}
}

// Exited reports whether the instance's last process ended, and its error.
func (a *Instance) Exited() (bool, error) {
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	if p == nil || !p.exited() {
		return false, nil
	}
	return true, p.err
}

// startProcess runs bin in dir with env added to this process's own, its
// output appended to logPath. It gets a process group of its own (so a
// Ctrl-C at the terminal reaches only this program, which stops it in
// order) and SIGTERM when this program dies.
func startProcess(bin string, args, env []string, dir, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process's PID and waits up to grace for it to
// exit, then kills it.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitReady polls base's /readyz until it answers 200 times times in a row,
// p exits or timeout passes.
func waitReady(ctx context.Context, base string, p *process, times int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	good := 0
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+paths.Readyz, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if good++; good >= times {
					return nil
				}
				continue
			}
		}
		good = 0
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not ready on %s: %w", base, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// HAProxyPath finds the haproxy binary: on PATH, or where Debian puts it
// (/usr/sbin is not on a normal user's PATH).
func HAProxyPath() (string, error) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy", nil
	}
	return "", errors.New("haproxy not found (Debian: apt-get install haproxy; `make cluster` installs it as root)")
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
