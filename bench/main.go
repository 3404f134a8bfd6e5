// Command bench measures every contender on one Prometheus in one run and writes the figures (JSON), the
// report (BENCHMARKS.md) and the chart (SVG). See BENCHMARKS.md for what is measured and how.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goPlugin "github.com/hashicorp/go-plugin"
	"github.com/rollouts-guardrails/conformance/harness"
)

type config struct {
	guardrails, sample string
	out, report, svg   string
	analysis           string
	runs               int
	phase              time.Duration
	coalesceN          int
	coalesceDelay      time.Duration
	levels             []level
}

// level is one load level: callers measuring back to back, all asking the same query (identical: what
// coalescing can share) or each its own variant (distinct: the realistic case, nothing to share).
type level struct {
	callers  int
	distinct bool
}

// Load is one load level's figures.
type Load struct {
	Callers    int     `json:"callers"`
	Distinct   bool    `json:"distinct"`
	Count      int     `json:"count"`
	Errors     int     `json:"errors"`
	PerSecond  float64 `json:"per_second"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	FirstError string  `json:"first_error,omitempty"`
	// Requests is how many queries reached Prometheus during the level (after coalescing), -1 if unknown.
	Requests int64 `json:"prometheus_requests"`
	// CPU is what the driver, the plugin process and Prometheus spent during the level (BENCHMARKS.md: the
	// driver shares 2 cores with them, which is why an in-driver floor is not a floor).
	CPU *CPU `json:"cpu,omitempty"`
}

// Rep is one repetition of one contender against one backend.
type Rep struct {
	StartupMs float64 `json:"startup_ms"`
	IdleKiB   int64   `json:"idle_rss_kib"`
	PeakKiB   int64   `json:"peak_rss_kib"`
	Loads     []Load  `json:"loads"`
}

// Result is every repetition of one contender against one backend.
type Result struct {
	Contender string `json:"contender"`
	Label     string `json:"label"`
	Backend   string `json:"backend"`
	Reps      []Rep  `json:"reps"`
}

// Coalesce is how many Prometheus requests N identical concurrent measurements caused.
type Coalesce struct {
	Contender string `json:"contender"`
	N         int    `json:"n"`
	Requests  []int  `json:"requests"`
}

// Results is the whole run.
type Results struct {
	Started  time.Time  `json:"started"`
	Machine  Machine    `json:"machine"`
	Config   string     `json:"config"`
	Results  []Result   `json:"results"`
	Coalesce []Coalesce `json:"coalesce"`
	// Floor is the evidence on what the old floor measured (nil when not run).
	Floor *FloorDiagnosis `json:"floor,omitempty"`
	// Scale is the controller-scale case (nil when not run).
	Scale *Scale `json:"scale,omitempty"`
}

func main() {
	var c config
	flag.StringVar(&c.guardrails, "guardrails", "", "rollouts-guardrails binary (release)")
	flag.StringVar(&c.sample, "sample", "", "argo-rollouts metrics-plugin-sample binary")
	flag.StringVar(&c.out, "out", "results.json", "where to write the raw figures")
	flag.StringVar(&c.report, "report", "", "where to write BENCHMARKS.md (empty: not written)")
	flag.StringVar(&c.svg, "svg", "", "where to write the SVG chart (empty: not written)")
	flag.StringVar(&c.analysis, "analysis", "analysis.md", "hand-written profile analysis included in the report")
	flag.IntVar(&c.runs, "runs", 3, "repetitions per contender (figures are medians)")
	flag.DurationVar(&c.phase, "phase", 2*time.Second, "duration of each load level")
	flag.IntVar(&c.coalesceN, "coalesce-n", 30, "identical concurrent measurements for the coalescing figure")
	flag.DurationVar(&c.coalesceDelay, "coalesce-delay", 100*time.Millisecond, "answer delay of the fake Prometheus for the coalescing figure")
	fromJSON := flag.String("from", "", "regenerate the report from this results.json instead of measuring")
	only := flag.String("only", "", "measure only this contender (ours, sample, builtin, floor); for profiling, no report")
	backendOnly := flag.String("backend", "", "measure only against this backend (prometheus, fake); for profiling, no report")
	workDir := flag.String("work", "", "directory for the scale case's cached fixture and Prometheus (target/bench)")
	var scale ScaleConfig
	flag.IntVar(&scale.Fixture.Rollouts, "scale-rollouts", 2000, "scale case: AnalysisRuns (one canary each)")
	flag.IntVar(&scale.Fixture.Namespaces, "scale-namespaces", 200, "scale case: namespaces the canaries are spread over")
	flag.IntVar(&scale.Fixture.BigNamespace, "scale-big-namespace", 200, "scale case: canaries in one big namespace (team-000)")
	flag.IntVar(&scale.Fixture.PodsPerRollout, "scale-pods", 3, "scale case: pods per canary")
	flag.DurationVar(&scale.Fixture.Step, "scale-step", 30*time.Second, "scale case: sampling interval of the fixture (kube-state-metrics scrape interval)")
	flag.DurationVar(&scale.Minute, "scale-minute", 10*time.Second, "scale case: how long the metrics' 1m interval lasts (the compression)")
	flag.DurationVar(&scale.Duration, "scale-duration", 35*time.Second, "scale case: how long each bound is driven")
	flag.IntVar(&scale.Workers, "scale-workers", argoAnalysisThreads, "scale case: analysis workers (argo-rollouts --analysis-threads)")
	bounds := flag.String("scale-bounds", "0,4,64", "scale case: --max-concurrent-queries values, 0 = the plugin's default")
	scaleMode := flag.String("scale", "yes", "scale case: yes, no, or only (skip the contenders)")
	flag.Parse()
	scale.Fixture.Before, scale.Fixture.After, scale.Fixture.Version = 15*time.Minute, 45*time.Minute, fixtureVersion
	for _, b := range strings.Split(*bounds, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(b))
		check(err)
		scale.Bounds = append(scale.Bounds, n)
	}
	c.levels = []level{{1, false}, {8, true}, {30, true}, {30, false}}

	if *fromJSON != "" {
		b, err := os.ReadFile(*fromJSON)
		check(err)
		var r Results
		check(json.Unmarshal(b, &r))
		check(writeReport(&c, &r))
		return
	}
	if c.guardrails == "" || c.sample == "" {
		fmt.Fprintln(os.Stderr, "bench: -guardrails and -sample are required")
		os.Exit(2)
	}
	r := &Results{Started: time.Now().UTC(), Machine: describeMachine(c.guardrails)}
	r.Config = fmt.Sprintf("%d repetitions per contender; each load level runs %s after a warm-up; levels {callers distinct-queries?} %v; coalescing: %d identical measurements, fake Prometheus answering after %s",
		c.runs, c.phase, c.levels, c.coalesceN, c.coalesceDelay)

	if *scaleMode == "only" {
		c.report, c.svg = "", "" // a report needs the contenders' figures
	} else {
		runContenders(&c, r, *only, *backendOnly)
	}
	if *scaleMode != "no" && *only == "" && *backendOnly == "" {
		if *workDir == "" {
			check(fmt.Errorf("-work is required for the scale case"))
		}
		sc, err := runScaleCase(c.guardrails, *workDir, scale)
		check(err)
		r.Scale = sc
	}

	r.Machine.LoadAfter = loadavg()
	b, err := json.MarshalIndent(r, "", "  ")
	check(err)
	check(os.WriteFile(c.out, b, 0o644))
	check(writeReport(&c, r))
}

// runContenders measures every contender against the canonical fixture's Prometheus and the fake one, then
// the coalescing figure.
func runContenders(c *config, r *Results, only, backendOnly string) {
	fixture, err := harness.FixturePath()
	check(err)
	// The data ends 30 minutes from now, so every sample the queries see stays fresh for the whole run.
	prom, err := harness.StartPrometheus(fixture, time.Now().Add(30*time.Minute))
	check(err)
	atExit = append(atExit, prom.Stop)
	defer prom.Stop()
	fake := startFake(0)
	defer fake.Close()

	all := contenders(c.guardrails, c.sample)
	if only != "" || backendOnly != "" {
		c.report, c.svg = "", ""
		var kept []contender
		for _, ct := range all {
			if only == "" || ct.Name == only {
				kept = append(kept, ct)
			}
		}
		all = kept
	}
	for _, backend := range []struct {
		name, url, promURL string
		requests           func() int64
	}{{"prometheus", prom.URL, prom.URL, func() int64 { return promQueries(prom.URL) }}, {"fake", fake.URL, "", fake.requests.Load}} {
		if backendOnly != "" && backend.name != backendOnly {
			continue
		}
		for _, ct := range all {
			res := Result{Contender: ct.Name, Label: ct.Label, Backend: backend.name}
			for i := 0; i < c.runs; i++ {
				rep, err := measure(c, ct, backend.url, backend.promURL, backend.requests)
				check(err)
				fmt.Fprintf(os.Stderr, "bench: %-8s %-10s rep %d: start-up %.1f ms, p50 %.3f ms, p99 %.3f ms, %v/s at 30 distinct\n",
					ct.Name, backend.name, i+1, rep.StartupMs, rep.Loads[0].P50Ms, rep.Loads[0].P99Ms, int(rep.Loads[2].PerSecond))
				res.Reps = append(res.Reps, rep)
			}
			r.Results = append(r.Results, res)
		}
	}

	slow := startFake(c.coalesceDelay)
	defer slow.Close()
	for _, ct := range all {
		co := Coalesce{Contender: ct.Name, N: c.coalesceN}
		for i := 0; i < c.runs; i++ {
			n, err := coalesceCount(ct, slow, c.coalesceN)
			check(err)
			co.Requests = append(co.Requests, n)
		}
		fmt.Fprintf(os.Stderr, "bench: coalescing %-8s %d identical measurements -> %v requests\n", ct.Name, c.coalesceN, co.Requests)
		r.Coalesce = append(r.Coalesce, co)
	}

	if only == "" && backendOnly == "" {
		d, err := diagnoseFloor(c, all, prom.URL)
		check(err)
		r.Floor = d
	}
}

// atExit are the stops of the servers started (each safe to call twice): check runs them, as os.Exit skips
// deferred calls.
var atExit []func()

func check(err error) {
	if err != nil {
		// os.Exit skips deferred calls: stop every plugin process still running and every Prometheus (which
		// would die with us anyway, Pdeathsig) so that their directories are removed.
		goPlugin.CleanupClients()
		for _, stop := range atExit {
			stop()
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// measure starts a fresh instance, times start-up to the first Successful measurement, reads the idle RSS,
// runs every load level, and reads the peak RSS.
func measure(c *config, ct contender, address, promURL string, requests func() int64) (Rep, error) {
	var rep Rep
	t0 := time.Now()
	inst, err := ct.Start(address)
	if err != nil {
		return rep, fmt.Errorf("%s: start: %w", ct.Name, err)
	}
	defer inst.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := inst.Run(0)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return rep, fmt.Errorf("%s: no Successful measurement within 20s: %w", ct.Name, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	rep.StartupMs = ms(time.Since(t0))
	if pid := inst.Pid(); pid != 0 {
		time.Sleep(200 * time.Millisecond)
		rep.IdleKiB, _ = rss(pid)
	}
	for _, lv := range c.levels {
		load(inst, lv, c.phase/5) // warm-up: connections, pools, caches
		before := requests()
		cpu := readCPU(inst.Pid(), promURL)
		l := load(inst, lv, c.phase)
		spent := cpu.since(readCPU(inst.Pid(), promURL))
		l.CPU = &spent
		if after := requests(); before >= 0 && after >= 0 {
			l.Requests = after - before
		} else {
			l.Requests = -1
		}
		rep.Loads = append(rep.Loads, l)
	}
	if pid := inst.Pid(); pid != 0 {
		_, rep.PeakKiB = rss(pid)
	}
	return rep, nil
}

// load runs callers goroutines, each measuring back to back, for d.
func load(inst instance, lv level, d time.Duration) Load {
	callers := lv.callers
	var mu sync.Mutex
	var lat []time.Duration
	errors, firstError := 0, ""
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		v := 0
		if lv.distinct {
			v = i
		}
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 4096)
			for time.Now().Before(end) {
				t := time.Now()
				err := inst.Run(v)
				el := time.Since(t)
				if err != nil {
					mu.Lock()
					if errors == 0 {
						firstError = err.Error()
					}
					errors++
					mu.Unlock()
					continue
				}
				mine = append(mine, el)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return Load{
		Callers:    callers,
		Distinct:   lv.distinct,
		Count:      len(lat),
		Errors:     errors,
		FirstError: firstError,
		PerSecond:  float64(len(lat)) / elapsed.Seconds(),
		P50Ms:      ms(pct(lat, 50)),
		P99Ms:      ms(pct(lat, 99)),
	}
}

// promQueries is Prometheus' own count of /api/v1/query requests (its /metrics), -1 if unreadable.
func promQueries(base string) int64 {
	return int64(promMetricWhere(base, "prometheus_http_requests_total", `handler="/api/v1/query"`))
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := len(sorted) * p / 100
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// fakeProm answers every instant query with one fresh sample, after delay, counting requests.
type fakeProm struct {
	URL      string
	requests atomic.Int64
	srv      *http.Server
}

func startFake(delay time.Duration) *fakeProm {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	f := &fakeProm{URL: "http://" + l.Addr().String()}
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		at := r.Form.Get("time")
		if at == "" {
			at = fmt.Sprintf("%.3f", float64(time.Now().UnixMilli())/1000)
		}
		if delay > 0 {
			time.Sleep(delay)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%s,"3"]}]}}`, at)
	})}
	go f.srv.Serve(l)
	return f
}

func (f *fakeProm) Close() { f.srv.Close() }

// coalesceCount fires n identical measurements at once at a fresh instance and returns how many requests
// reached the (slow) fake Prometheus.
func coalesceCount(ct contender, fake *fakeProm, n int) (int, error) {
	inst, err := ct.Start(fake.URL)
	if err != nil {
		return 0, err
	}
	defer inst.Stop()
	if err := inst.Run(0); err != nil { // connect and warm up first
		return 0, err
	}
	before := fake.requests.Load()
	var wg sync.WaitGroup
	var failed atomic.Int64
	gate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			if inst.Run(0) != nil {
				failed.Add(1)
			}
		}()
	}
	close(gate)
	wg.Wait()
	if failed.Load() > 0 {
		return 0, fmt.Errorf("%s: %d of %d coalescing measurements failed", ct.Name, failed.Load(), n)
	}
	return int(fake.requests.Load() - before), nil
}
