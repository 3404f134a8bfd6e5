package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/argoproj/argo-rollouts/metricproviders/prometheus"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/rollouts-guardrails/conformance/harness"
	log "github.com/sirupsen/logrus"
)

// Query is the PromQL every contender evaluates; SuccessCondition judges its one-element vector alike.
const (
	Query            = `sum(kube_pod_container_status_restarts_total{namespace="shop"})`
	SuccessCondition = "result[0] >= 0"
	samplePluginName = "argoproj/sample-prometheus"
	// Variants is how many distinct forms of Query a contender prepares: caller i of a "distinct" load level
	// asks variant i, so no two callers send the same PromQL and nothing can be coalesced.
	Variants = 32
)

// variant is Query made distinct for caller v (v = 0 is Query itself); every variant has the same answer.
func variant(v int) string {
	if v == 0 {
		return Query
	}
	return fmt.Sprintf("%s + 0 * %d", Query, v)
}

// instance is one started contender: Run performs one measurement and fails unless it is Successful.
type instance interface {
	Run(v int) error
	// Pid is the plugin process, 0 for in-process contenders.
	Pid() int
	Stop()
}

// contender starts an instance against the Prometheus at address.
type contender struct {
	Name  string
	Label string
	Start func(address string) (instance, error)
}

func contenders(guardrailsBin, sampleBin string) []contender {
	return []contender{
		{"ours", "rollouts-guardrails (plugin, net/rpc)", func(a string) (instance, error) { return startOurs(guardrailsBin, a) }},
		{"sample", "argo sample plugin (net/rpc)", func(a string) (instance, error) { return startSample(sampleBin, a) }},
		{"builtin", "built-in provider (in-process)", startBuiltin},
		{"floor", "direct HTTP query (floor)", func(a string) (instance, error) { return startFloor(a, theFloor) }},
	}
}

// pluginInstance is a plugin process driven through the real argo-rollouts client.
type pluginInstance struct {
	p       *harness.Plugin
	ar      *v1alpha1.AnalysisRun
	metrics []v1alpha1.Metric
}

func (p *pluginInstance) Run(v int) error {
	m := p.p.Provider.Run(p.ar, p.metrics[v%len(p.metrics)])
	if m.Phase != v1alpha1.AnalysisPhaseSuccessful {
		return fmt.Errorf("phase %s: %s", m.Phase, m.Message)
	}
	return nil
}

func (p *pluginInstance) Pid() int {
	if rc := p.p.Client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

func (p *pluginInstance) Stop() { p.p.Kill() }

func startPlugin(bin string, metrics []v1alpha1.Metric) (instance, error) {
	p, err := harness.Start(bin, harness.Options{})
	if err != nil {
		return nil, err
	}
	return &pluginInstance{p: p, ar: harness.NewAnalysisRun(harness.ShopWeb, "bench"), metrics: metrics}, nil
}

func startOurs(bin, address string) (instance, error) {
	var metrics []v1alpha1.Metric
	for v := 0; v < Variants; v++ {
		metric := harness.NewMetric("bench", map[string]any{"address": address, "guardrail": "query", "query": variant(v)})
		metric.SuccessCondition = SuccessCondition
		metrics = append(metrics, metric)
	}
	return startPlugin(bin, metrics)
}

func startSample(bin, address string) (instance, error) {
	var metrics []v1alpha1.Metric
	for v := 0; v < Variants; v++ {
		raw, err := json.Marshal(map[string]string{"address": address, "query": variant(v)})
		if err != nil {
			return nil, err
		}
		metrics = append(metrics, v1alpha1.Metric{
			Name:             "bench",
			SuccessCondition: SuccessCondition,
			Provider:         v1alpha1.MetricProvider{Plugin: map[string]json.RawMessage{samplePluginName: raw}},
		})
	}
	return startPlugin(bin, metrics)
}

// builtinInstance is the controller's own provider: like the controller's ProviderFactory, every measurement
// builds the API client and the provider from the metric (the transport, and so the connections, are shared).
type builtinInstance struct {
	ar      *v1alpha1.AnalysisRun
	metrics []v1alpha1.Metric
	logCtx  log.Entry
}

func startBuiltin(address string) (instance, error) {
	logger := log.New()
	logger.SetOutput(io.Discard)
	b := &builtinInstance{ar: harness.NewAnalysisRun(harness.ShopWeb, "bench"), logCtx: *log.NewEntry(logger)}
	for v := 0; v < Variants; v++ {
		b.metrics = append(b.metrics, v1alpha1.Metric{
			Name:             "bench",
			SuccessCondition: SuccessCondition,
			Provider:         v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusMetric{Address: address, Query: variant(v)}},
		})
	}
	return b, nil
}

func (b *builtinInstance) Run(v int) error {
	metric := b.metrics[v%len(b.metrics)]
	api, err := prometheus.NewPrometheusAPI(metric)
	if err != nil {
		return err
	}
	provider, err := prometheus.NewPrometheusProvider(api, b.logCtx, metric)
	if err != nil {
		return err
	}
	m := provider.Run(b.ar, metric)
	if m.Phase != v1alpha1.AnalysisPhaseSuccessful {
		return fmt.Errorf("phase %s: %s", m.Phase, m.Message)
	}
	return nil
}

func (b *builtinInstance) Pid() int { return 0 }
func (b *builtinInstance) Stop()    {}

// rss reads VmRSS and VmHWM (peak) of pid from /proc, in KiB.
func rss(pid int) (current, peak int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			current = n
		case "VmHWM:":
			peak = n
		}
	}
	return current, peak
}
