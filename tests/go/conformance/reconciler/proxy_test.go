package reconciler

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rollouts-guardrails/conformance/harness"
)

// prometheusProxy is the one Prometheus address the plugin knows (the controller-wide
// GUARDRAILS_PROMETHEUS_ADDRESS): it forwards to the fixture Prometheus, which the tests restart on a freshly
// shifted copy without the plugin noticing, and it can hold back a canary's data — answer every query that
// names a pod-template hash with an empty result until a given instant — as a real Prometheus answers before
// it has scraped a new canary's pods.
type prometheusProxy struct {
	URL string

	mu        sync.Mutex
	backend   *harness.Prometheus
	holdHash  string
	holdUntil time.Time
	held      []time.Time // when each held-back query was answered empty
	passed    []time.Time // when each query naming holdHash was forwarded

	server *http.Server
	done   chan struct{}
}

func startPrometheusProxy(backend *harness.Prometheus) (*prometheusProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &prometheusProxy{URL: "http://" + l.Addr().String(), backend: backend, done: make(chan struct{})}
	p.server = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		p.server.Serve(l)
	}()
	return p, nil
}

// Fresh returns the fixture Prometheus, restarted on a freshly shifted copy when its END is older than
// maxAge (plugin mode evaluates "now"; see tests/go/conformance/README.md).
func (p *prometheusProxy) Fresh(maxAge time.Duration) (*harness.Prometheus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.backend.DataEnd) <= maxAge {
		return p.backend, nil
	}
	p.backend.Stop()
	fresh, err := harness.StartPrometheus(world.fixture, time.Now())
	if err != nil {
		return nil, fmt.Errorf("restart prometheus on a freshly shifted fixture: %w", err)
	}
	p.backend = fresh
	return fresh, nil
}

// Hold answers every query naming hash with an empty result until until; Release ends it and returns when
// each held and each forwarded query naming hash was answered.
func (p *prometheusProxy) Hold(hash string, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holdHash, p.holdUntil, p.held, p.passed = hash, until, nil, nil
}

func (p *prometheusProxy) Release() (held, passed []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	held, passed = p.held, p.passed
	p.holdHash, p.holdUntil, p.held, p.passed = "", time.Time{}, nil, nil
	return held, passed
}

// emptyResults are Prometheus' answers without any series, per query endpoint.
var emptyResults = map[string]string{
	"/api/v1/query":       `{"status":"success","data":{"resultType":"vector","result":[]}}`,
	"/api/v1/query_range": `{"status":"success","data":{"resultType":"matrix","result":[]}}`,
}

func (p *prometheusProxy) serve(w http.ResponseWriter, r *http.Request) {
	query := ""
	if _, isQuery := emptyResults[r.URL.Path]; isQuery {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		query = r.URL.Query().Get("query") + "\n" + form.Get("query")
	}
	p.mu.Lock()
	backend := p.backend
	names := p.holdHash != "" && strings.Contains(query, p.holdHash)
	hold := names && time.Now().Before(p.holdUntil)
	switch {
	case hold:
		p.held = append(p.held, time.Now())
	case names:
		p.passed = append(p.passed, time.Now())
	}
	p.mu.Unlock()
	if hold {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, emptyResults[r.URL.Path])
		return
	}
	target, err := url.Parse(backend.URL)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
}

// Stop stops the proxy and the fixture Prometheus behind it.
func (p *prometheusProxy) Stop() {
	p.server.Close()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backend.Stop()
}
