// Command refplugin is a small Go reference of the rollouts-guardrails plugin contract, served by go-plugin
// itself. It exists only to prove the conformance harness: every case the harness asserts must be satisfiable
// by a straightforward implementation, and the transport cases are checked against Go's own plugin server.
// It is not the product (that is the Rust binary) and knows only the default and prod profiles.
//
//	go build -o /tmp/refplugin ./cmd/refplugin && GUARDRAILS_BIN=/tmp/refplugin ../run.sh
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
	goPlugin "github.com/hashicorp/go-plugin"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const pluginName = "rollouts-guardrails/prometheus"

type config struct {
	Address         string `json:"address"`
	Guardrail       string `json:"guardrail"`
	Profile         string `json:"profile"`
	Namespace       string `json:"namespace"`
	Rollout         string `json:"rollout"`
	PodTemplateHash string `json:"podTemplateHash"`
	Window          string `json:"window"`
	Threshold       *int   `json:"threshold"`
	Staleness       string `json:"staleness"`
}

type plugin struct{ http *http.Client }

func main() {
	goPlugin.Serve(&goPlugin.ServeConfig{
		HandshakeConfig: goPlugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "ARGO_ROLLOUTS_RPC_PLUGIN", MagicCookieValue: "metricprovider"},
		Plugins: map[string]goPlugin.Plugin{
			"RpcMetricProviderPlugin": &rpc.RpcMetricProviderPlugin{Impl: &plugin{http: &http.Client{Timeout: 10 * time.Second}}},
		},
	})
}

func (p *plugin) InitPlugin() types.RpcError { return types.RpcError{} }
func (p *plugin) Type() string               { return "RpcPlugin/" + pluginName }
func (p *plugin) GarbageCollect(*v1alpha1.AnalysisRun, v1alpha1.Metric, int) types.RpcError {
	return types.RpcError{}
}
func (p *plugin) Resume(_ *v1alpha1.AnalysisRun, _ v1alpha1.Metric, m v1alpha1.Measurement) v1alpha1.Measurement {
	return m
}
func (p *plugin) Terminate(_ *v1alpha1.AnalysisRun, _ v1alpha1.Metric, m v1alpha1.Measurement) v1alpha1.Measurement {
	if m.FinishedAt == nil {
		now := metav1.Now()
		m.FinishedAt = &now
	}
	return m
}

func (p *plugin) GetMetadata(metric v1alpha1.Metric) map[string]string {
	c, err := parse(metric, nil)
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	return c.queries()
}

func parse(metric v1alpha1.Metric, ar *v1alpha1.AnalysisRun) (*config, error) {
	raw, ok := metric.Provider.Plugin[pluginName]
	if !ok {
		return nil, fmt.Errorf("metric has no %s config", pluginName)
	}
	c := &config{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("invalid plugin config: %w", err)
	}
	if ar != nil {
		if c.Namespace == "" {
			c.Namespace = ar.Namespace
		}
		if c.Rollout == "" {
			for _, o := range ar.OwnerReferences {
				if o.Kind == "Rollout" {
					c.Rollout = o.Name
				}
			}
		}
		if c.PodTemplateHash == "" {
			c.PodTemplateHash = ar.Labels["rollouts-pod-template-hash"]
		}
	}
	if c.Address == "" {
		c.Address = os.Getenv("GUARDRAILS_PROMETHEUS_ADDRESS")
	}
	prod := c.Profile == "prod"
	def := func(s *string, d, p string) {
		if *s == "" {
			*s = d
			if prod {
				*s = p
			}
		}
	}
	def(&c.Window, "5m", "10m")
	def(&c.Staleness, "5m", "2m")
	if c.Threshold == nil {
		t := 1
		if prod {
			t = 0
		}
		c.Threshold = &t
	}
	switch {
	case c.Guardrail != "restarts" && c.Guardrail != "not-ready" && c.Guardrail != "latest-image":
		return nil, fmt.Errorf("unknown guardrail %q", c.Guardrail)
	case c.Namespace == "" || c.Rollout == "" || c.PodTemplateHash == "":
		return nil, fmt.Errorf("incomplete target %s/%s hash %q", c.Namespace, c.Rollout, c.PodTemplateHash)
	case c.Address == "":
		return nil, fmt.Errorf("no prometheus address")
	}
	return c, nil
}

func (c *config) rs() string { return c.Rollout + "-" + c.PodTemplateHash }

func (c *config) queries() map[string]string {
	sel := fmt.Sprintf(`namespace=%q,pod=~"%s-[a-z0-9]{5}"`, c.Namespace, c.rs())
	q := map[string]string{
		"query.pods":    fmt.Sprintf(`timestamp(kube_pod_info{namespace=%q,created_by_kind="ReplicaSet",created_by_name=%q})`, c.Namespace, c.rs()),
		"query.waiting": fmt.Sprintf(`kube_pod_container_status_waiting_reason{%s}`, sel),
	}
	switch c.Guardrail {
	case "restarts":
		q["query.restarts.max"] = fmt.Sprintf(`max_over_time(kube_pod_container_status_restarts_total{%s}[%s])`, sel, c.Window)
		q["query.restarts.min"] = fmt.Sprintf(`min_over_time(kube_pod_container_status_restarts_total{%s}[%s])`, sel, c.Window)
		q["query.created"] = fmt.Sprintf(`kube_pod_created{%s}`, sel)
	case "not-ready":
		q["query.notready"] = fmt.Sprintf(`kube_pod_status_ready{%s,condition="true"} == 0`, sel)
	case "latest-image":
		q["query.images"] = fmt.Sprintf(`kube_pod_container_info{%s}`, sel)
	}
	return q
}

type sample struct {
	labels map[string]string
	value  float64
}

func (p *plugin) query(addr, q string, at time.Time) ([]sample, error) {
	u := strings.TrimSuffix(addr, "/") + "/api/v1/query?" + url.Values{"query": {q}, "time": {strconv.FormatInt(at.Unix(), 10)}}.Encode()
	resp, err := p.http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("prometheus %s: %s %s", resp.Status, r.Error, err)
	}
	var out []sample
	for _, s := range r.Data.Result {
		v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
		out = append(out, sample{s.Metric, v})
	}
	return out, nil
}

var pinned = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

func latest(image string) bool {
	if pinned.MatchString(image) {
		return false
	}
	last := image[strings.LastIndex(image, "/")+1:]
	tag := ""
	if i := strings.LastIndex(last, ":"); i >= 0 {
		tag = last[i+1:]
	}
	return tag == "" || tag == "latest"
}

func (p *plugin) Run(ar *v1alpha1.AnalysisRun, metric v1alpha1.Metric) v1alpha1.Measurement {
	start := metav1.Now()
	m := v1alpha1.Measurement{StartedAt: &start, Metadata: map[string]string{}}
	finish := func(phase v1alpha1.AnalysisPhase, value, msg string) v1alpha1.Measurement {
		end := metav1.Now()
		m.Phase, m.Value, m.Message, m.FinishedAt = phase, value, msg, &end
		return m
	}
	c, err := parse(metric, ar)
	if err != nil {
		return finish(v1alpha1.AnalysisPhaseFailed, "", err.Error())
	}
	m.Metadata["prometheus"] = c.Address
	if u, err := url.Parse(c.Address); err == nil && u.User != nil {
		u.User = nil
		m.Metadata["prometheus"] = u.String()
	}
	qs := c.queries()
	for k, v := range qs {
		m.Metadata[k] = v
	}
	now := time.Now()
	res := map[string][]sample{}
	for k, q := range qs {
		if res[k], err = p.query(c.Address, q, now); err != nil {
			return finish(v1alpha1.AnalysisPhaseFailed, "", fmt.Sprintf("%s: %v", k, err))
		}
	}
	staleness, _ := time.ParseDuration(c.Staleness)
	if len(res["query.pods"]) == 0 {
		return finish(v1alpha1.AnalysisPhaseFailed, "", fmt.Sprintf("no kube_pod_info series for ReplicaSet %s in %s", c.rs(), c.Namespace))
	}
	for _, s := range res["query.pods"] {
		if age := now.Sub(time.Unix(int64(s.value), 0)); age > staleness {
			return finish(v1alpha1.AnalysisPhaseFailed, "", fmt.Sprintf("pod %s: data %s old (staleness %s)", s.labels["pod"], age.Round(time.Second), staleness))
		}
	}
	waiting := map[string]string{}
	for _, s := range res["query.waiting"] {
		waiting[s.labels["pod"]+"/"+s.labels["container"]] = s.labels["reason"]
	}
	var bad []string
	count := 0
	switch c.Guardrail {
	case "restarts":
		window, _ := time.ParseDuration(c.Window)
		created := map[string]float64{}
		for _, s := range res["query.created"] {
			created[s.labels["pod"]] = s.value
		}
		minBy := map[string]float64{}
		for _, s := range res["query.restarts.min"] {
			minBy[s.labels["pod"]+"/"+s.labels["container"]] = s.value
		}
		for _, s := range res["query.restarts.max"] {
			key := s.labels["pod"] + "/" + s.labels["container"]
			n := s.value - minBy[key]
			if created[s.labels["pod"]] > float64(now.Add(-window).Unix()) {
				n = s.value
			}
			if n > 0 {
				count += int(n)
				bad = append(bad, fmt.Sprintf("%s restarted %d times in %s %s", key, int(n), c.Window, waiting[key]))
			}
		}
		if count > *c.Threshold {
			return finish(v1alpha1.AnalysisPhaseFailed, strconv.Itoa(count), strings.Join(sorted(bad), "; "))
		}
	case "not-ready":
		for _, s := range res["query.notready"] {
			count++
			bad = append(bad, "pod "+s.labels["pod"]+" not ready")
		}
		if count > 0 {
			return finish(v1alpha1.AnalysisPhaseFailed, strconv.Itoa(count), strings.Join(sorted(bad), "; "))
		}
	case "latest-image":
		for _, s := range res["query.images"] {
			if latest(s.labels["image_spec"]) {
				key := s.labels["pod"] + "/" + s.labels["container"]
				count++
				bad = append(bad, fmt.Sprintf("%s runs unpinned image %q %s", key, s.labels["image_spec"], waiting[key]))
			}
		}
		if count > 0 {
			return finish(v1alpha1.AnalysisPhaseFailed, strconv.Itoa(count), strings.Join(sorted(bad), "; "))
		}
	}
	return finish(v1alpha1.AnalysisPhaseSuccessful, strconv.Itoa(count), fmt.Sprintf("%s: %d pods of %s within %s", c.Guardrail, len(res["query.pods"]), c.rs(), c.Guardrail))
}

func sorted(s []string) []string { sort.Strings(s); return s }
