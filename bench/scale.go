package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/rollouts-guardrails/conformance/harness"
)

// ScaleGuardrails are the guardrails every AnalysisRun of the controller-scale case measures.
var ScaleGuardrails = []string{"restarts", "not-ready", "waiting-reasons", "latest-image"}

// argoAnalysisThreads is argo-rollouts' --analysis-threads default (controller.DefaultAnalysisThreads,
// v1.9.1): the analysis workers that reconcile AnalysisRuns, each running an AnalysisRun's due metrics
// concurrently (analysis.Controller.runMeasurements).
const argoAnalysisThreads = 30

// ScaleConfig is the controller-scale case: every AnalysisRun measures every guardrail once per Minute (a
// compressed minute: the metrics' `interval: 1m` played Minute long) for Duration, per in-flight bound.
type ScaleConfig struct {
	Fixture  FixtureParams `json:"fixture"`
	Minute   time.Duration `json:"minute"`
	Duration time.Duration `json:"duration"`
	Workers  int           `json:"workers"`
	// Bounds are the --max-concurrent-queries values measured; 0 is the plugin's default (not passed).
	Bounds []int `json:"bounds"`
}

// ScaleRun is one bound's figures.
type ScaleRun struct {
	Bound         int     `json:"bound"`
	BoundArg      string  `json:"bound_arg"`
	Measurements  int     `json:"measurements"`
	Successful    int     `json:"successful"`
	Failed        int     `json:"failed"`
	Other         int     `json:"other"`
	Timeouts      int     `json:"timeouts"`
	Seconds       float64 `json:"seconds"`
	AskedPerSec   float64 `json:"asked_per_second"`
	PerSecond     float64 `json:"per_second"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	LagP50Ms      float64 `json:"lag_p50_ms"`
	LagP99Ms      float64 `json:"lag_p99_ms"`
	Queries       int64   `json:"queries"`
	QueriesPerSec float64 `json:"queries_per_second"`
	QueriesPerM   float64 `json:"queries_per_measurement"`
	PeakRSSKiB    int64   `json:"plugin_peak_rss_kib"`
	// PromQueueMs and PromEvalMs are the mean time a query waited for one of Prometheus' --query.max-concurrency
	// slots and spent evaluating (its prometheus_engine_query_duration_seconds, slices queue_time and
	// inner_eval, over the run); -1 if unreadable.
	PromQueueMs float64 `json:"prometheus_queue_ms"`
	PromEvalMs  float64 `json:"prometheus_eval_ms"`
	CPU         CPU     `json:"cpu"`
	// Groups are the latency percentiles by guardrail and namespace size.
	Groups []GroupLatency `json:"groups"`
	// Messages are the first messages of non-Successful measurements, by message, with their count.
	Messages []MessageCount `json:"messages,omitempty"`
}

// GroupLatency is the latency of one group of measurements.
type GroupLatency struct {
	Group string  `json:"group"`
	Count int     `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// MessageCount is one distinct message and how often it came.
type MessageCount struct {
	Message string `json:"message"`
	Count   int    `json:"count"`
}

// Scale is the whole controller-scale case.
type Scale struct {
	Config  ScaleConfig `json:"config"`
	Fixture Fixture     `json:"fixture"`
	// PrometheusFlags are the flags Prometheus ran with beyond storage, config and listen address.
	PrometheusFlags []string `json:"prometheus_flags"`
	// Seconds is how long the whole case took, the fixture and the cost table included.
	Seconds float64    `json:"seconds"`
	Runs    []ScaleRun `json:"runs"`
	Cost    []CostRow  `json:"cost"`
}

// analysisRun is one AnalysisRun of the case: its canary and when each of its metrics is next due.
type analysisRun struct {
	ar      *v1alpha1.AnalysisRun
	metrics []v1alpha1.Metric
	next    []time.Time
	// described says GetMetadata was called (the controller calls it once, with the first measurement).
	described bool
	// big says the canary is in the big namespace.
	big bool
}

// group names metric m's latency group: its guardrail and the size of its canary's namespace.
func (a *analysisRun) group(m int) string {
	where := "typical namespace"
	if a.big {
		where = "big namespace"
	}
	return ScaleGuardrails[m] + ", " + where
}

// scaleRecord is what one measurement left.
type scaleRecord struct {
	latency time.Duration
	phase   v1alpha1.AnalysisPhase
	message string
	// failure is the measurement's `failure` metadata (its failure class: `timeout`, `no-data`, …), if any.
	failure string
	// group is the guardrail and whether the canary is in the big namespace ("restarts, big namespace").
	group string
}

// scalePrometheusFlags keep Prometheus from compacting the fixture's blocks during the case (its CPU is part of
// the figures); the query limits stay at their defaults (--query.max-concurrency=20).
var scalePrometheusFlags = []string{"--storage.tsdb.max-block-duration=2h", "--storage.tsdb.min-block-duration=2h"}

// scaleMargin is how far past the case's planned end a fixture's samples must reach: the tail of the last
// bound, the cost table, and Prometheus' start.
const scaleMargin = 15 * time.Minute

// runScaleCase loads (or reuses) the fixture under workDir, starts Prometheus on it, measures every bound and
// the cost table.
func runScaleCase(bin, workDir string, cfg ScaleConfig) (*Scale, error) {
	t0 := time.Now()
	needUntil := time.Now().Add(time.Duration(len(cfg.Bounds))*cfg.Duration + scaleMargin)
	fx, err := loadFixture(workDir, cfg.Fixture, needUntil)
	if err != nil {
		return nil, fmt.Errorf("scale fixture: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: scale fixture %s: %d series, %d samples, %s to %s (cached: %v, generated in %.0f s)\n",
		fx.Blocks, fx.Series, fx.Samples, fx.Start.Format(time.TimeOnly), fx.End.Format(time.TimeOnly), fx.Cached, fx.GenerateSeconds)
	prom, err := startPrometheusOn(workDir, fx.Blocks, scalePrometheusFlags...)
	if err != nil {
		return nil, err
	}
	defer prom.Stop()
	canaries := cfg.Fixture.Canaries()
	s := &Scale{Config: cfg, Fixture: *fx, PrometheusFlags: scalePrometheusFlags}
	// One canary of a typical namespace (the last one) and one of the big namespace (the first).
	for _, c := range []Canary{canaries[len(canaries)-1], canaries[0]} {
		rows, err := measureCost(bin, prom.URL, c, cfg.Fixture.RolloutsIn(c.Namespace))
		if err != nil {
			return nil, err
		}
		s.Cost = append(s.Cost, rows...)
	}
	if s.Runs, err = runScale(bin, cfg, prom, canaries); err != nil {
		return nil, err
	}
	s.Seconds = time.Since(t0).Seconds()
	return s, nil
}

// runScale measures the controller-scale case at every bound against prom.
func runScale(bin string, cfg ScaleConfig, prom *promServer, canaries []Canary) ([]ScaleRun, error) {
	var runs []ScaleRun
	for _, bound := range cfg.Bounds {
		r, err := runScaleBound(bin, cfg, prom, canaries, bound)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "bench: scale bound %s: %d measurements (%.0f/s of %.0f/s asked), %d not Successful (%d timeout), p50 %.1f ms, p99 %.1f ms, %.0f queries/s\n",
			r.BoundArg, r.Measurements, r.PerSecond, r.AskedPerSec, r.Measurements-r.Successful, r.Timeouts, r.P50Ms, r.P99Ms, r.QueriesPerSec)
		runs = append(runs, r)
	}
	return runs, nil
}

func runScaleBound(bin string, cfg ScaleConfig, prom *promServer, canaries []Canary, bound int) (ScaleRun, error) {
	run := ScaleRun{Bound: bound, BoundArg: "default (16)"}
	var args []string
	if bound > 0 {
		args = []string{"--max-concurrent-queries", strconv.Itoa(bound)}
		run.BoundArg = strconv.Itoa(bound)
	}
	p, err := harness.Start(bin, harness.Options{Args: args})
	if err != nil {
		return run, fmt.Errorf("scale: start the plugin: %w", err)
	}
	defer p.Kill()
	pid := 0
	if rc := p.Client.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	ars := scaleAnalysisRuns(canaries, prom.URL)
	queriesBefore := promQueries(prom.URL)
	queue, eval := readEngineSlice(prom.URL, "queue_time"), readEngineSlice(prom.URL, "inner_eval")
	cpu := readCPU(pid, prom.URL)
	records, lags, elapsed := drive(p, ars, cfg)
	run.CPU = cpu.since(readCPU(pid, prom.URL))
	run.PromQueueMs = queue.meanMsSince(readEngineSlice(prom.URL, "queue_time"))
	run.PromEvalMs = eval.meanMsSince(readEngineSlice(prom.URL, "inner_eval"))
	run.Queries = promQueries(prom.URL) - queriesBefore
	_, run.PeakRSSKiB = rss(pid)
	summarize(&run, records, lags, elapsed, len(ars)*len(ScaleGuardrails), cfg.Minute)
	return run, nil
}

// engineSlice is one slice of Prometheus' prometheus_engine_query_duration_seconds summary.
type engineSlice struct{ sum, count float64 }

func readEngineSlice(promURL, slice string) engineSlice {
	label := fmt.Sprintf(`slice="%s"`, slice)
	return engineSlice{
		sum:   promMetricWhere(promURL, "prometheus_engine_query_duration_seconds_sum", label),
		count: promMetricWhere(promURL, "prometheus_engine_query_duration_seconds_count", label),
	}
}

// meanMsSince is the mean duration of the queries between s and now, in ms; -1 if unknown.
func (s engineSlice) meanMsSince(now engineSlice) float64 {
	n := now.count - s.count
	if s.sum < 0 || now.sum < 0 || n <= 0 {
		return -1
	}
	return 1000 * (now.sum - s.sum) / n
}

// scaleAnalysisRuns builds one AnalysisRun per canary, owned by its Rollout and labelled with its hash as the
// controller creates them, with one metric per guardrail (the target defaults from the AnalysisRun).
func scaleAnalysisRuns(canaries []Canary, address string) []*analysisRun {
	ars := make([]*analysisRun, len(canaries))
	for i, c := range canaries {
		a := &analysisRun{ar: harness.NewAnalysisRun(harness.Target{Namespace: c.Namespace, Rollout: c.Rollout, Hash: c.Hash}, fmt.Sprintf("%s-%s-1", c.Rollout, c.Hash))}
		for _, g := range ScaleGuardrails {
			a.metrics = append(a.metrics, harness.NewMetric(g, map[string]any{"address": address, "guardrail": g}))
		}
		a.next = make([]time.Time, len(a.metrics))
		a.big = c.Namespace == canaries[0].Namespace
		ars[i] = a
	}
	return ars
}

// drive plays the schedule for cfg.Duration: AnalysisRun i first reconciles at i/len × Minute (runs started
// at different moments), then again when its earliest metric is due: Minute after that metric's last
// measurement finished, as the controller computes it (analysis.calculateNextReconcileTime). cfg.Workers
// workers take due AnalysisRuns from one queue in due order and run each one's due metrics concurrently
// (Ping, then Run, as the controller's plugin client and runMeasurements do). It returns every measurement,
// how late each reconcile started, and the time until the last reconcile finished.
func drive(p *harness.Plugin, ars []*analysisRun, cfg ScaleConfig) ([]scaleRecord, []time.Duration, time.Duration) {
	start := time.Now()
	q := newDueQueue()
	for i, a := range ars {
		due := start.Add(time.Duration(int64(cfg.Minute) * int64(i) / int64(len(ars))))
		for m := range a.next {
			a.next[m] = due
		}
		q.push(i, due)
	}
	end := start.Add(cfg.Duration)
	var mu sync.Mutex
	var records []scaleRecord
	var lags []time.Duration
	var wg sync.WaitGroup
	for w := 0; w < cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, due, ok := q.pop(end)
				if !ok {
					return
				}
				lag := time.Since(due)
				recs := reconcile(p, ars[i], cfg.Minute)
				mu.Lock()
				records = append(records, recs...)
				lags = append(lags, lag)
				mu.Unlock()
				q.push(i, earliest(ars[i].next))
			}
		}()
	}
	wg.Wait()
	return records, lags, time.Since(start)
}

// reconcile runs a's due metrics concurrently and schedules each one Minute after it finished.
func reconcile(p *harness.Plugin, a *analysisRun, minute time.Duration) []scaleRecord {
	now := time.Now()
	recs := make([]scaleRecord, len(a.metrics))
	due := make([]bool, len(a.metrics))
	var wg sync.WaitGroup
	for m := range a.metrics {
		if a.next[m].After(now) {
			continue
		}
		due[m] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Ping(); err != nil {
				recs[m] = scaleRecord{phase: v1alpha1.AnalysisPhaseError, message: "ping: " + err.Error(), group: a.group(m)}
				a.next[m] = time.Now().Add(minute)
				return
			}
			t := time.Now()
			ms := p.Provider.Run(a.ar, a.metrics[m])
			recs[m] = scaleRecord{latency: time.Since(t), phase: ms.Phase, message: ms.Message, failure: ms.Metadata["failure"], group: a.group(m)}
			a.next[m] = time.Now().Add(minute)
		}()
	}
	wg.Wait()
	if !a.described {
		for _, metric := range a.metrics {
			p.Provider.GetMetadata(metric)
		}
		a.described = true
	}
	var out []scaleRecord
	for m, d := range due {
		if d {
			out = append(out, recs[m])
		}
	}
	return out
}

func earliest(ts []time.Time) time.Time {
	e := ts[0]
	for _, t := range ts[1:] {
		if t.Before(e) {
			e = t
		}
	}
	return e
}

// summarize turns the records into the run's figures.
func summarize(run *ScaleRun, records []scaleRecord, lags []time.Duration, elapsed time.Duration, metrics int, minute time.Duration) {
	var lat []time.Duration
	messages := map[string]int{}
	for _, r := range records {
		run.Measurements++
		switch r.phase {
		case v1alpha1.AnalysisPhaseSuccessful:
			run.Successful++
			lat = append(lat, r.latency)
			continue
		case v1alpha1.AnalysisPhaseFailed:
			run.Failed++
			lat = append(lat, r.latency)
		default:
			run.Other++
		}
		if isTimeout(r) {
			run.Timeouts++
		}
		messages[fmt.Sprintf("%s: %s", r.phase, firstLine(r.message))]++
	}
	for m, n := range messages {
		run.Messages = append(run.Messages, MessageCount{m, n})
	}
	sort.Slice(run.Messages, func(i, j int) bool { return run.Messages[i].Count > run.Messages[j].Count })
	if len(run.Messages) > 5 {
		run.Messages = run.Messages[:5]
	}
	byGroup := map[string][]time.Duration{}
	for _, r := range records {
		byGroup[r.group] = append(byGroup[r.group], r.latency)
	}
	for g, l := range byGroup {
		sortDurations(l)
		run.Groups = append(run.Groups, GroupLatency{g, len(l), ms(pct(l, 50)), ms(pct(l, 99))})
	}
	sort.Slice(run.Groups, func(i, j int) bool { return run.Groups[i].Group < run.Groups[j].Group })
	sortDurations(lat)
	sortDurations(lags)
	run.Seconds = elapsed.Seconds()
	run.AskedPerSec = float64(metrics) / minute.Seconds()
	run.PerSecond = float64(run.Measurements) / run.Seconds
	run.P50Ms, run.P99Ms = ms(pct(lat, 50)), ms(pct(lat, 99))
	if len(lat) > 0 {
		run.MaxMs = ms(lat[len(lat)-1])
	}
	run.LagP50Ms, run.LagP99Ms = ms(pct(lags, 50)), ms(pct(lags, 99))
	run.QueriesPerSec = float64(run.Queries) / run.Seconds
	if run.Measurements > 0 {
		run.QueriesPerM = float64(run.Queries) / float64(run.Measurements)
	}
}

// isTimeout says the measurement failed on the plugin's timeout (a query, or the wait for a query slot,
// outlasted the measurement's `timeout`): its failure class says so (metadata `failure`, src/failure.rs), or,
// without one, its message does (src/engine/measure.rs, src/prometheus/error.rs).
func isTimeout(r scaleRecord) bool {
	if r.failure != "" {
		return r.failure == "timeout"
	}
	m := strings.ToLower(r.message)
	return strings.Contains(m, "timed out") || strings.Contains(m, "did not answer in time")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 240 {
		line = line[:240] + "…"
	}
	return line
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }
