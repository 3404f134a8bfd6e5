package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FixtureEnd is END of the canonical fixture (2026-01-01T12:00:00Z): the last sample of every live series.
const FixtureEnd int64 = 1767268800

// FixtureRelPath is the canonical fixture, relative to the repository root.
const FixtureRelPath = "tests/fixtures/prometheus/kube-state-metrics.om"

// prometheusReadyTimeout bounds how long we wait for /-/ready after starting Prometheus.
const prometheusReadyTimeout = 60 * time.Second

// Prometheus is a private Prometheus serving the fixture shifted so that its END is DataEnd.
type Prometheus struct {
	// URL is the base address handed to the plugin (http://127.0.0.1:PORT).
	URL string
	// DataEnd is the wall-clock instant the fixture's END was moved to.
	DataEnd time.Time
	// Shift is DataEnd − END, in seconds, added to every sample timestamp.
	Shift int64

	cmd  *exec.Cmd
	dir  string
	done chan struct{}
	log  *os.File
}

// FindRepoRoot walks up from the working directory to the directory holding Cargo.toml.
func FindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "Cargo.toml")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no Cargo.toml above the working directory: run from inside the repository")
		}
		dir = parent
	}
}

// FixturePath is GUARDRAILS_FIXTURE if set, else the canonical fixture in the repository.
func FixturePath() (string, error) {
	if p := os.Getenv("GUARDRAILS_FIXTURE"); p != "" {
		return p, nil
	}
	root, err := FindRepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, FixtureRelPath)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("fixture %s: %w (set GUARDRAILS_FIXTURE to use another file)", p, err)
	}
	return p, nil
}

// TimestampValuedMetrics are the fixture's metrics whose sample value is itself a unix time (in seconds):
// ShiftOpenMetrics moves their values with the timestamps, so that a pod created at END−3m is still created
// 3 minutes before the shifted END.
var TimestampValuedMetrics = map[string]bool{
	"kube_pod_created": true,
	"prometheus_rule_group_last_evaluation_timestamp_seconds": true,
}

// ShiftOpenMetrics copies an OpenMetrics text exposition, adding shift seconds to every sample timestamp and
// to the value of every TimestampValuedMetrics sample. Comment lines (# TYPE, # HELP, # EOF) pass through
// unchanged. Label values may contain spaces.
func ShiftOpenMetrics(r io.Reader, w io.Writer, shift int64) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	bw := bufio.NewWriter(w)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			bw.WriteString(text)
			bw.WriteByte('\n')
			continue
		}
		head, rest, err := splitSeries(text)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		fields := strings.Fields(rest)
		name, _, _ := strings.Cut(head, "{")
		if TimestampValuedMetrics[name] && len(fields) >= 1 {
			if fields[0], err = shiftTimestamp(fields[0], shift); err != nil {
				return fmt.Errorf("line %d: value of %s: %w", line, name, err)
			}
			text = head + " " + strings.Join(fields, " ")
		}
		switch len(fields) {
		case 1: // no timestamp
			bw.WriteString(text)
		case 2:
			ts, err := shiftTimestamp(fields[1], shift)
			if err != nil {
				return fmt.Errorf("line %d: %w", line, err)
			}
			fmt.Fprintf(bw, "%s %s %s", head, fields[0], ts)
		default:
			return fmt.Errorf("line %d: unsupported sample (exemplars?): %q", line, text)
		}
		bw.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return bw.Flush()
}

// splitSeries splits `name{labels} rest` after the series identifier, honouring quoted label values.
func splitSeries(text string) (string, string, error) {
	i := strings.IndexAny(text, "{ ")
	if i < 0 {
		return "", "", fmt.Errorf("no value in %q", text)
	}
	if text[i] == ' ' {
		return text[:i], text[i:], nil
	}
	inQuote := false
	for j := i + 1; j < len(text); j++ {
		switch {
		case inQuote && text[j] == '\\':
			j++
		case text[j] == '"':
			inQuote = !inQuote
		case !inQuote && text[j] == '}':
			return text[:j+1], text[j+1:], nil
		}
	}
	return "", "", fmt.Errorf("unterminated label set in %q", text)
}

// shiftTimestamp adds shift seconds to an OpenMetrics timestamp (seconds, optionally with a fraction),
// keeping the fraction digits exactly.
func shiftTimestamp(ts string, shift int64) (string, error) {
	whole, frac, hasFrac := strings.Cut(ts, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return "", fmt.Errorf("timestamp %q: %w", ts, err)
	}
	out := strconv.FormatInt(n+shift, 10)
	if hasFrac {
		out += "." + frac
	}
	return out, nil
}

// FreeLoopbackPort asks the kernel for an unused TCP port on 127.0.0.1.
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartPrometheus backfills the fixture shifted so that END becomes dataEnd (promtool tsdb
// create-blocks-from openmetrics) and starts Prometheus on it, waiting for /-/ready.
func StartPrometheus(fixture string, dataEnd time.Time) (*Prometheus, error) {
	for _, tool := range []string{"prometheus", "promtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not on PATH (Debian: apt-get install prometheus): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "guardrails-prometheus-")
	if err != nil {
		return nil, err
	}
	p := &Prometheus{dir: dir, DataEnd: dataEnd.Truncate(time.Second), done: make(chan struct{})}
	p.Shift = p.DataEnd.Unix() - FixtureEnd
	fail := func(err error) (*Prometheus, error) {
		p.Stop()
		return nil, err
	}

	src, err := os.Open(fixture)
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	shifted := filepath.Join(dir, "shifted.om")
	dst, err := os.Create(shifted)
	if err != nil {
		return fail(err)
	}
	if err := ShiftOpenMetrics(src, dst, p.Shift); err != nil {
		dst.Close()
		return fail(fmt.Errorf("shift %s: %w", fixture, err))
	}
	if err := dst.Close(); err != nil {
		return fail(err)
	}
	data := filepath.Join(dir, "data")
	if out, err := exec.Command("promtool", "tsdb", "create-blocks-from", "openmetrics", shifted, data).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("promtool tsdb create-blocks-from openmetrics: %w\n%s", err, out))
	}
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte("global:\n  scrape_interval: 1h\nscrape_configs: []\n"), 0o600); err != nil {
		return fail(err)
	}
	port, err := FreeLoopbackPort()
	if err != nil {
		return fail(err)
	}
	p.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	p.log, err = os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		return fail(err)
	}
	p.cmd = exec.Command("prometheus",
		"--storage.tsdb.path="+data,
		"--config.file="+config,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--storage.tsdb.retention.time=100y",
	)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// Die with the test binary even if it is killed without running cleanups.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return fail(fmt.Errorf("start prometheus: %w", err))
	}
	go func() { p.cmd.Wait(); close(p.done) }()

	ctx, cancel := context.WithTimeout(context.Background(), prometheusReadyTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/-/ready", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return fail(fmt.Errorf("prometheus exited during start-up; log:\n%s", p.Log()))
		case <-ctx.Done():
			return fail(fmt.Errorf("prometheus not ready within %s; log:\n%s", prometheusReadyTimeout, p.Log()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Log returns what Prometheus has written so far.
func (p *Prometheus) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "prometheus.log"))
	return string(b)
}

// Stop terminates Prometheus and removes its data. Safe to call more than once.
func (p *Prometheus) Stop() {
	if p == nil {
		return
	}
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
	if p.log != nil {
		p.log.Close()
		p.log = nil
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
		p.dir = ""
	}
}
