package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/rollouts-guardrails/conformance/harness"
)

// CostRow is the Prometheus-side cost of one guardrail's measurement against the seed PromQL a user would
// write for the built-in provider instead, on the same canary at the same instant.
type CostRow struct {
	Guardrail string `json:"guardrail"`
	// Canary is namespace/replicaset; Neighbours is how many canaries its namespace holds.
	Canary     string `json:"canary"`
	Neighbours int    `json:"rollouts_in_namespace"`
	// Queries are ours, by metadata name, exactly as the measurement's metadata lists them.
	Queries []QueryCost `json:"queries"`
	Seed    QueryCost   `json:"seed"`
	// Phase of our measurement (it must be Successful on the healthy fixture).
	Phase string `json:"phase"`
}

// QueryCost is one query's `stats=all` figures.
type QueryCost struct {
	Name    string  `json:"name"`
	PromQL  string  `json:"promql"`
	Samples int64   `json:"samples"`
	ExecMs  float64 `json:"exec_ms"`
	Series  int     `json:"result_series"`
	Error   string  `json:"error,omitempty"`
}

// Total is the samples and execution time of every query of the row (ours).
func (r CostRow) Total() (samples int64, execMs float64) {
	for _, q := range r.Queries {
		samples += q.Samples
		execMs += q.ExecMs
	}
	return samples, execMs
}

// seedQuery is what a user of the built-in Prometheus provider would write for guardrail on canary c: the
// pods matched by name prefix, the sum judged by a successCondition.
func seedQuery(guardrail string, c Canary) string {
	pods := fmt.Sprintf(`namespace="%s",pod=~"%s-.*"`, c.Namespace, c.ReplicaSet())
	switch guardrail {
	case "restarts":
		return fmt.Sprintf("sum(increase(kube_pod_container_status_restarts_total{%s}[5m]))", pods)
	case "not-ready":
		return fmt.Sprintf(`sum(kube_pod_status_ready{%s,condition="true"})`, pods)
	case "waiting-reasons":
		return fmt.Sprintf(`sum(kube_pod_container_status_waiting_reason{%s,reason=~"CrashLoopBackOff|ImagePullBackOff|ErrImagePull|CreateContainerConfigError|InvalidImageName"})`, pods)
	case "latest-image":
		return fmt.Sprintf(`count(kube_pod_container_info{%s,image_spec=~".*:latest|[^:]*"})`, pods)
	}
	return ""
}

// measureCost runs one measurement per guardrail on canary c, reads the queries from its metadata
// (`query.<name>`) and asks Prometheus for each of them, and for the seed, with stats=all at one instant.
func measureCost(bin, promURL string, c Canary, neighbours int) ([]CostRow, error) {
	p, err := harness.Start(bin, harness.Options{})
	if err != nil {
		return nil, err
	}
	defer p.Kill()
	ar := harness.NewAnalysisRun(harness.Target{Namespace: c.Namespace, Rollout: c.Rollout, Hash: c.Hash}, "cost")
	var rows []CostRow
	for _, g := range ScaleGuardrails {
		m := p.Provider.Run(ar, harness.NewMetric(g, map[string]any{"address": promURL, "guardrail": g}))
		row := CostRow{Guardrail: g, Canary: c.Namespace + "/" + c.ReplicaSet(), Neighbours: neighbours, Phase: string(m.Phase)}
		at := time.Now()
		if m.Phase != v1alpha1.AnalysisPhaseSuccessful {
			return nil, fmt.Errorf("cost: %s on %s/%s is %s: %s", g, c.Namespace, c.ReplicaSet(), m.Phase, m.Message)
		}
		for _, name := range sortedQueryKeys(m.Metadata) {
			q := queryCost(promURL, m.Metadata[name], at)
			q.Name = strings.TrimPrefix(name, "query.")
			row.Queries = append(row.Queries, q)
		}
		if len(row.Queries) == 0 {
			return nil, fmt.Errorf("cost: the %s measurement's metadata lists no query.* key: %v", g, m.Metadata)
		}
		row.Seed = queryCost(promURL, seedQuery(g, c), at)
		row.Seed.Name = "seed"
		rows = append(rows, row)
	}
	return rows, nil
}

func sortedQueryKeys(md map[string]string) []string {
	var keys []string
	for k := range md {
		if strings.HasPrefix(k, "query.") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// statsAnswer is the part of a stats=all answer the cost table reads.
type statsAnswer struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		Result []json.RawMessage `json:"result"`
		Stats  struct {
			Timings struct {
				ExecTotalTime float64 `json:"execTotalTime"`
			} `json:"timings"`
			Samples struct {
				TotalQueryableSamples int64 `json:"totalQueryableSamples"`
			} `json:"samples"`
		} `json:"stats"`
	} `json:"data"`
}

// queryCost asks promql at `at` with stats=all.
func queryCost(promURL, promql string, at time.Time) QueryCost {
	q := QueryCost{PromQL: promql}
	form := url.Values{
		"query": {promql},
		"time":  {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', -1, 64)},
		"stats": {"all"},
	}
	resp, err := http.PostForm(promURL+"/api/v1/query", form)
	if err != nil {
		q.Error = err.Error()
		return q
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		q.Error = err.Error()
		return q
	}
	var a statsAnswer
	if err := json.Unmarshal(body, &a); err != nil || a.Status != "success" {
		q.Error = fmt.Sprintf("http %d: %.200s", resp.StatusCode, body)
		return q
	}
	q.Samples = a.Data.Stats.Samples.TotalQueryableSamples
	q.ExecMs = a.Data.Stats.Timings.ExecTotalTime * 1000
	q.Series = len(a.Data.Result)
	return q
}
