// Command byoc-cluster runs BYOC as a load-balanced cluster on one machine
// (`make cluster`): three instances of the real binary (`byoc serve`) on one
// PostgreSQL behind HAProxy, configured by deploy/haproxy/haproxy.cfg with
// health checks on /readyz. Every provider is a stand-in of one sandbox
// served by this process, shared by the instances, so every flow works
// offline. It prints HAProxy's address and runs until Ctrl-C (or SIGTERM),
// then stops every process it started, by PID.
//
// The instances share the secrets kept in DATA/secrets.env (made on the
// first run, mode 0600), as production instances share theirs, and each has
// a data folder of its own (DATA/app1, ...), where its log also goes.
//
// The cluster test tier (cluster_test.go, build tag cluster) starts the same
// set-up through Start.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "byoc-cluster:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("bin", "bin/byoc", "the BYOC binary")
	data := flag.String("data", ".data/cluster", "data folder: secrets, each instance's folder, the logs")
	cfg := flag.String("haproxy-config", "deploy/haproxy/haproxy.cfg", "HAProxy configuration")
	flag.Parse()
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		return fmt.Errorf("DATABASE_URL is not set: use 'make cluster'")
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	secrets, err := loadSecrets(filepath.Join(*data, "secrets.env"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Println("Starting three BYOC instances and HAProxy...")
	c, err := Start(ctx, Options{Bin: *bin, HAProxyConfig: *cfg, DataDir: *data, DatabaseURL: dbURL, Secrets: secrets})
	if err != nil {
		return err
	}
	defer c.Stop()
	fmt.Printf("\nBYOC cluster: %s (HAProxy, round robin)\n", c.URL)
	for _, a := range c.Apps {
		fmt.Printf("  %s  %s  log %s\n", a.Name, a.URL, filepath.Join(*data, a.Name+".log"))
	}
	fmt.Printf("  providers: local stand-ins; operator token in %s\n", filepath.Join(*data, "secrets.env"))
	fmt.Println("Ctrl-C stops HAProxy and the instances.")

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Println("\nStopping the cluster...")
			return nil
		case <-tick.C:
			for _, a := range c.Apps {
				if done, err := a.Exited(); done {
					return fmt.Errorf("%s exited (%v); see %s", a.Name, err, filepath.Join(*data, a.Name+".log"))
				}
			}
		}
	}
}

// loadSecrets reads KEY=value lines from path, adds the secrets a cluster
// needs that it lacks and writes the file back (mode 0600), so that a
// restarted cluster still decrypts what it stored.
func loadSecrets(path string) (map[string]string, error) {
	s := map[string]string{}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && !strings.HasPrefix(k, "#") {
				s[k] = v
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	changed := false
	for k, v := range NewSecrets() {
		if s[k] == "" {
			s[k], changed = v, true
		}
	}
	if !changed {
		return s, nil
	}
	var b strings.Builder
	b.WriteString("# Secrets shared by the instances of `make cluster` (development only).\n")
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, s[k])
	}
	return s, os.WriteFile(path, []byte(b.String()), 0o600)
}
