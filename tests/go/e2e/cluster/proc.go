package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Proc is one process of the control plane, started in its own process group and stopped by its PID.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
	err  error
}

var (
	procsMu sync.Mutex
	procs   = map[int]*Proc{}
)

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func mustPorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for len(out) < n {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// start runs bin with args, stdout and stderr appended to dir/logs/<name>.log.
func start(dir, cwd, name, bin string, env []string, args ...string) (*Proc, error) {
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "logs", name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = cwd
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// Own process group: Stop reaches the children (the controller's plugin processes) too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	procsMu.Lock()
	procs[cmd.Process.Pid] = p
	procsMu.Unlock()
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group of p's PID, then SIGKILL after grace.
func (p *Proc) Stop(grace time.Duration) {
	if p == nil {
		return
	}
	pid := p.Cmd.Process.Pid
	if !p.Exited() {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.done
		}
	}
	// Children that outlived their parent (same group) are killed too.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	procsMu.Lock()
	delete(procs, pid)
	procsMu.Unlock()
}

// StopAll stops every process still running, newest first is not needed: each is stopped by its own PID.
func StopAll() {
	procsMu.Lock()
	var all []*Proc
	for _, p := range procs {
		all = append(all, p)
	}
	procsMu.Unlock()
	for _, p := range all {
		p.Stop(5 * time.Second)
	}
}

// PIDs lists the PIDs of the processes still tracked (for the leftover check).
func PIDs() []int {
	procsMu.Lock()
	defer procsMu.Unlock()
	var out []int
	for pid := range procs {
		out = append(out, pid)
	}
	return out
}

// waitHTTP polls url until it answers 200 or the process dies or ctx ends.
func waitHTTP(ctx context.Context, p *Proc, url string, client *http.Client) error {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited before %s answered (log: %s): %v", p.Name, url, p.Log, p.err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s did not answer 200 in time (log: %s): last error %v", p.Name, url, p.Log, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func tlsClient(caPEM, certPEM, keyPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: pool}
	if certPEM != nil {
		kp, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

func itoa(i int) string { return strconv.Itoa(i) }
