package main

import (
	"fmt"
	"strings"
	"time"
)

// writer appends formatted text to the report.
type writer func(format string, args ...any)

// writeFloorDiagnosis is the "why the old floor was not a floor" section: what each contender sends, and
// the floor with and without each difference, with Prometheus' own CPU per query.
func writeFloorDiagnosis(w writer, r *Results) {
	d := r.Floor
	if d == nil {
		return
	}
	w("## Why the old floor was not a floor\n\n")
	w("The previous report had the direct query (the floor) at 2,312 measurements/s at 30 callers against our plugin's 6,186 on the same Prometheus. The floor sent its query through Go's default HTTP transport, which asks for a gzip-compressed answer; Prometheus honours `Accept-Encoding: gzip` on every API answer, and compressing even a one-sample answer costs it more CPU than evaluating this query. Our client asks for no compression. On 2 shared cores, Prometheus' CPU is the bottleneck, so the floor paid for Prometheus' gzip and we did not. What each contender sends (recorded by a fake Prometheus, one measurement each):\n\n")
	w("| contender | method | Accept-Encoding | query |\n|---|---|---|---|\n")
	for _, s := range d.Requests {
		enc := s.AcceptEncoding
		if enc == "" {
			enc = "(none)"
		}
		w("| %s | %s | %s | `%s` |\n", s.Contender, s.Method, enc, cell(s.Query))
	}
	w("\nThe same query text reaches Prometheus from every contender (variant 1 of the distinct levels shown). The floor's variants on the real Prometheus (median of the repetitions; Prometheus CPU is its own `process_cpu_seconds_total` over the level divided by its own `/api/v1/query` request count; driver cores is the driver process' CPU per wall second, the floor's client included):\n\n")
	w("| floor variant | callers | meas/s | p50 | p99 | Prometheus CPU per query | driver cores |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, v := range d.Variants {
		w("| %s | %d | %.0f | %.2f ms | %.2f ms | %.3f ms | %.2f |\n", v.Name, v.Callers, v.PerSecond, v.P50Ms, v.P99Ms, v.PromMsPerQuery, v.DriverCores)
	}
	w("\nAnd per contender on the real Prometheus, the same two figures at every load level (first repetition):\n\n")
	w("| contender | level | meas/s | Prometheus CPU per query | Prometheus cores | plugin cores | driver cores |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, res := range r.Results {
		if res.Backend != "prometheus" || len(res.Reps) == 0 {
			continue
		}
		for _, l := range res.Reps[0].Loads {
			if l.CPU == nil || l.CPU.Wall <= 0 {
				continue
			}
			per := "n/a"
			if l.Requests > 0 && l.CPU.Prometheus >= 0 {
				per = fmt.Sprintf("%.3f ms", 1000*l.CPU.Prometheus/float64(l.Requests))
			}
			plugin := "in-process"
			if l.CPU.Plugin >= 0 {
				plugin = fmt.Sprintf("%.2f", l.CPU.Plugin/l.CPU.Wall)
			}
			w("| %s | %s | %.0f | %s | %.2f | %s | %.2f |\n", res.Contender, levelName(l), l.PerSecond, per, l.CPU.Prometheus/l.CPU.Wall, plugin, l.CPU.Driver/l.CPU.Wall)
		}
	}
	w("\n")
}

func levelName(l Load) string {
	switch {
	case l.Callers == 1:
		return "1 caller"
	case l.Distinct:
		return fmt.Sprintf("%d distinct", l.Callers)
	default:
		return fmt.Sprintf("%d identical", l.Callers)
	}
}

// writeScale is the controller-scale section: the schedule, the figures per bound, and the cost table.
func writeScale(w writer, s *Scale, prometheus string) {
	if s == nil {
		return
	}
	cfg, fx := s.Config, s.Fixture
	compression := 60 / cfg.Minute.Seconds()
	w("## Controller scale: %d AnalysisRuns × %d guardrails\n\n", fx.Params.Rollouts, len(ScaleGuardrails))
	w("%d concurrent AnalysisRuns, one per canary, each measuring %s once per minute (`interval: 1m`), the minute **compressed to %s (%.0f× faster than real time)**, for %s per bound. ",
		fx.Params.Rollouts, strings.Join(quoted(ScaleGuardrails), ", "), cfg.Minute, compression, cfg.Duration)
	w("Modelled on the controller (argo-rollouts v1.9.1): one plugin process; %d analysis workers (`--analysis-threads` default, `controller.DefaultAnalysisThreads`) take due AnalysisRuns from one queue in due order; a worker runs an AnalysisRun's due metrics concurrently (`runMeasurements`: one goroutine per metric, each `Ping` then `Run` through argo's own plugin client), calls `GetMetadata` with the first measurement, and the metric is due again one (compressed) minute after its measurement finished (`calculateNextReconcileTime`). The AnalysisRuns start spread evenly over the first minute. ", cfg.Workers)
	w("The schedule asks %.0f measurements/s (%.0f/s in real time). The whole case took %.0f s, fixture and cost table included.\n\n", float64(fx.Params.Rollouts*len(ScaleGuardrails))/cfg.Minute.Seconds(), float64(fx.Params.Rollouts*len(ScaleGuardrails))/60, s.Seconds)
	w("**Data**: a generated kube-state-metrics fixture (`bench/fixture.go`): %d canaries, each a Rollout with its pod-template hash and %d ready pods of one container; %d of them in one namespace (`team-000`), the others spread over %d more namespaces (%d each); the series the four guardrails read (`kube_pod_info`, `kube_pod_created`, `kube_pod_status_ready` with all three conditions, `kube_pod_container_info`, `kube_pod_container_status_restarts_total`; healthy pods have no waiting-reason series), labelled as kube-state-metrics v2 does, sampled every %s: %d series, %d samples, from %s before it was generated to %s after (so every sample is fresh for the whole run). Loaded with `promtool tsdb create-blocks-from openmetrics` and cached under `target/bench/` keyed by these parameters, reused by a later run while its samples still cover that run (up to %s after generation), else generated anew (this run: %s). Prometheus: %s, default query limits (`--query.max-concurrency=20`), flags %s.\n\n",
		fx.Params.Rollouts, fx.Params.PodsPerRollout, fx.Params.BigNamespace, fx.Params.Namespaces-1, (fx.Params.Rollouts-fx.Params.BigNamespace)/max(1, fx.Params.Namespaces-1),
		fx.Params.Step, fx.Series, fx.Samples, fx.Params.Before, fx.Params.After, reuseWindow(s), cachedText(fx), prometheus, "`"+strings.Join(s.PrometheusFlags, " ")+"` (no compaction during the run)")
	w("| `--max-concurrent-queries` | measurements | asked/s | achieved/s | queries/s | queries/meas | p50 | p99 | max | schedule lag p50 / p99 | not Successful | `timeout` | plugin RSS peak | CPU s: Prometheus / plugin / driver | Prometheus queue / eval per query |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range s.Runs {
		w("| %s | %d | %.0f | %.0f | %.0f | %.2f | %.1f ms | %.1f ms | %.0f ms | %.0f / %.0f ms | %d | %d | %.1f MiB | %.1f / %.1f / %.1f of %.0f s | %.2f / %.2f ms |\n",
			r.BoundArg, r.Measurements, r.AskedPerSec, r.PerSecond, r.QueriesPerSec, r.QueriesPerM, r.P50Ms, r.P99Ms, r.MaxMs,
			r.LagP50Ms, r.LagP99Ms, r.Measurements-r.Successful, r.Timeouts, float64(r.PeakRSSKiB)/1024,
			r.CPU.Prometheus, r.CPU.Plugin, r.CPU.Driver, r.CPU.Wall, r.PromQueueMs, r.PromEvalMs)
	}
	w("\nLatency is one `Run` as the controller's worker waits for it; schedule lag is how late a worker picked up a due AnalysisRun (all %d workers busy). Queries are Prometheus' own `prometheus_http_requests_total{handler=\"/api/v1/query\"}` over the run; CPU is Prometheus' `process_cpu_seconds_total`, the plugin's and the driver's `/proc` counters over the run; Prometheus queue / eval is the mean of its own `prometheus_engine_query_duration_seconds` slices `queue_time` (waiting for one of its 20 query slots) and `inner_eval`. ", cfg.Workers)
	if len(s.Runs) > 0 && len(s.Runs[0].Groups) > 0 {
		w("\n\nLatency by guardrail and namespace size (bound %s):\n\n| guardrail, canary's namespace | measurements | p50 | p99 |\n|---|---:|---:|---:|\n", s.Runs[0].BoundArg)
		for _, g := range s.Runs[0].Groups {
			w("| %s | %d | %.1f ms | %.1f ms |\n", g.Group, g.Count, g.P50Ms, g.P99Ms)
		}
		w("\n")
	}
	var bad []string
	for _, r := range s.Runs {
		for _, m := range r.Messages {
			bad = append(bad, fmt.Sprintf("bound %s: %d × %s", r.BoundArg, m.Count, m.Message))
		}
	}
	if len(bad) == 0 {
		w("Every measurement was `Successful`.\n\n")
	} else {
		w("Measurements that were not `Successful`, by first message (`timeout` counts those whose failure class is `timeout`, whatever phase `unprovenPhase` gave them):\n\n")
		for _, b := range bad {
			w("- %s\n", b)
		}
		w("\n")
	}
	writeCost(w, s)
}

// reuseWindow is how long after its generation a fixture still serves a whole case (runScaleCase's needUntil).
func reuseWindow(s *Scale) time.Duration {
	return s.Fixture.Params.After - scaleMargin - time.Duration(len(s.Config.Bounds))*s.Config.Duration
}

func cachedText(fx Fixture) string {
	if fx.Cached {
		return fmt.Sprintf("reused; it took %.0f s to generate", fx.GenerateSeconds)
	}
	return fmt.Sprintf("generated in %.0f s", fx.GenerateSeconds)
}

func quoted(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = "`" + x + "`"
	}
	return out
}

// writeCost is the Prometheus-side cost table: samples touched per measurement, ours vs the seed PromQL.
func writeCost(w writer, s *Scale) {
	if len(s.Cost) == 0 {
		return
	}
	w("### Prometheus-side cost per measurement\n\n")
	w("Each guardrail measured once on a canary of a typical namespace and on one of the big namespace; every query the measurement's metadata lists (`query.<name>`) asked again at one instant with `stats=all`, against the seed PromQL a user would write for the built-in provider (pods by name prefix, one sum). Samples are `data.stats.samples.totalQueryableSamples`, time is `data.stats.timings.execTotalTime`, summed over the measurement's queries.\n\n")
	w("| canary (rollouts in its namespace) | guardrail | our queries | our samples | our exec time | seed samples | seed exec time | samples ours / seed |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range s.Cost {
		samples, exec := row.Total()
		ratio := "—"
		if row.Seed.Samples > 0 {
			ratio = fmt.Sprintf("%.0f×", float64(samples)/float64(row.Seed.Samples))
		}
		w("| %s (%d) | %s | %d | %d | %.2f ms | %d | %.2f ms | %s |\n", row.Canary, row.Neighbours, row.Guardrail, len(row.Queries), samples, exec, row.Seed.Samples, row.Seed.ExecMs, ratio)
	}
	w("\nPer query (the canary of the big namespace):\n\n| guardrail | query | samples | exec time |\n|---|---|---:|---:|\n")
	big := s.Cost[len(s.Cost)-1].Canary
	for _, row := range s.Cost {
		if row.Canary != big {
			continue
		}
		for _, q := range row.Queries {
			w("| %s | %s | %d | %.2f ms |\n", row.Guardrail, q.Name, q.Samples, q.ExecMs)
		}
		w("| %s | seed: `%s` | %d | %.2f ms |\n", row.Guardrail, cell(row.Seed.PromQL), row.Seed.Samples, row.Seed.ExecMs)
	}
	w("\n")
}

// cell escapes the table-cell separator in text (also inside code spans, as GitHub's tables require).
func cell(text string) string { return strings.ReplaceAll(text, "|", `\|`) }
