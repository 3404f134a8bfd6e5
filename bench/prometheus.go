package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rollouts-guardrails/conformance/harness"
)

// promServer is a Prometheus serving a copy of a cached fixture's blocks.
type promServer struct {
	URL  string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startPrometheusOn starts Prometheus on a hard-linked copy of blocks in a new directory under parent (so the
// cache is never written to: compaction and the WAL go to the copy), on a free loopback port, extra flags
// appended, and waits for /-/ready.
func startPrometheusOn(parent, blocks string, extra ...string) (*promServer, error) {
	dir, err := os.MkdirTemp(parent, "scale-prometheus-")
	if err != nil {
		return nil, err
	}
	p := &promServer{dir: dir, done: make(chan struct{})}
	fail := func(err error) (*promServer, error) { p.Stop(); return nil, err }
	data := filepath.Join(dir, "data")
	if err := linkTree(blocks, data); err != nil {
		return fail(fmt.Errorf("copy %s: %w", blocks, err))
	}
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte("global:\n  scrape_interval: 1h\nscrape_configs: []\n"), 0o600); err != nil {
		return fail(err)
	}
	port, err := harness.FreeLoopbackPort()
	if err != nil {
		return fail(err)
	}
	p.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		return fail(err)
	}
	defer log.Close()
	args := append([]string{
		"--storage.tsdb.path=" + data,
		"--config.file=" + config,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--storage.tsdb.retention.time=100y",
	}, extra...)
	p.cmd = exec.Command("prometheus", args...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return fail(fmt.Errorf("start prometheus: %w", err))
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/-/ready", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				atExit = append(atExit, p.Stop)
				return p, nil
			}
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			return fail(fmt.Errorf("prometheus exited during start-up:\n%s", lastLines(b, 20)))
		case <-ctx.Done():
			return fail(fmt.Errorf("prometheus not ready within 2m"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Pid is Prometheus' process id.
func (p *promServer) Pid() int { return p.cmd.Process.Pid }

// Stop terminates Prometheus (SIGTERM, SIGKILL after 10 s) and removes its directory. Safe to call twice.
func (p *promServer) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		p.cmd = nil
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
		p.dir = ""
	}
}

// linkTree recreates src's directories under dst and hard-links its files.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return os.Link(path, target)
	})
}
