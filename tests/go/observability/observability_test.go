// The operator's view of the plugin: /metrics served in plugin mode (GUARDRAILS_METRICS_LISTEN, as the Helm values
// and the kustomize Component set it) after real measurements through argo-rollouts' own plugin client, and every
// PromQL expression of manifests/observability/ (dashboard panels, alert rules) parsed with the Prometheus parser
// and checked against the metric names and labels that scrape shows. promtool checks and unit-tests the rules.
//
//	GUARDRAILS_BIN=target/release/rollouts-guardrails go test ./...   (from tests/go/observability)
package observability

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/rollouts-guardrails/conformance/harness"
	"sigs.k8s.io/yaml"
)

// targetLabels are attached by the scrape (a PodMonitor), not by the binary; expressions may use them.
var targetLabels = map[string]bool{"namespace": true, "pod": true, "job": true, "instance": true, "container": true, "cluster": true}

// Grafana's variables, as Grafana substitutes them before the query reaches Prometheus.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$namespace", ".*")

func repoPath(t *testing.T, parts ...string) string {
	root, err := harness.FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// exported is what one scrape shows: every sample name and the label names each carries.
type exported map[string]map[string]bool

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? `)
var labelName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)

// parseScrape reads sample lines (text format 0.0.4 or OpenMetrics alike: comments skipped, names as sampled).
func parseScrape(text string) exported {
	out := exported{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if out[m[1]] == nil {
			out[m[1]] = map[string]bool{}
		}
		for _, l := range labelName.FindAllStringSubmatch(m[3], -1) {
			out[m[1]][l[1]] = true
		}
	}
	return out
}

// measureAndScrape starts the binary as the controller does, with /metrics on a free loopback port, takes
// measurements that succeed, fail a threshold, cannot reach Prometheus and are misconfigured, and scrapes.
func measureAndScrape(t *testing.T) string {
	bin := os.Getenv("GUARDRAILS_BIN")
	if bin == "" {
		t.Fatal("GUARDRAILS_BIN is not set (make test-observability sets it to the release binary)")
	}
	fixture, err := harness.FixturePath()
	if err != nil {
		t.Fatal(err)
	}
	prom, err := harness.StartPrometheus(fixture, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prom.Stop)
	port, err := harness.FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	p, err := harness.Start(bin, harness.Options{Env: []string{fmt.Sprintf("GUARDRAILS_METRICS_LISTEN=127.0.0.1:%d", port)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	closed, err := harness.FreeLoopbackPort() // nothing listens there: connection refused, query-error
	if err != nil {
		t.Fatal(err)
	}
	runs := []struct {
		metric v1alpha1.Metric
		target harness.Target
		want   v1alpha1.AnalysisPhase
	}{
		{harness.NewMetric("restarts", harness.GuardrailConfig(prom.URL, "restarts")), harness.ShopWeb, v1alpha1.AnalysisPhaseSuccessful},
		{harness.NewMetric("restarts", harness.GuardrailConfig(prom.URL, "restarts")), harness.PayAPI, v1alpha1.AnalysisPhaseFailed},
		{harness.NewMetric("not-ready", harness.GuardrailConfig(fmt.Sprintf("http://127.0.0.1:%d", closed), "not-ready")), harness.ShopWeb, v1alpha1.AnalysisPhaseFailed},
		{harness.NewMetric("typo", map[string]any{"address": prom.URL, "guardrail": "restarts", "thresold": 1}), harness.ShopWeb, v1alpha1.AnalysisPhaseFailed},
	}
	for _, r := range runs {
		m := p.Provider.Run(harness.NewAnalysisRun(r.target, "observability"), r.metric)
		if m.Phase != r.want {
			t.Fatalf("%s on %s: phase %s, want %s: %s", r.metric.Name, r.target, m.Phase, r.want, m.Message)
		}
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	var last error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			last = err
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			return string(body)
		}
		last = fmt.Errorf("HTTP %d: %v", resp.StatusCode, err)
	}
	t.Fatalf("plugin mode served no /metrics at %s: %v\n%s", url, last, p.Logs())
	return ""
}

// expressions of the dashboard's panels and the PrometheusRule, each named for messages.
func expressions(t *testing.T) map[string]string {
	out := map[string]string{}
	var dashboard struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	raw, err := os.ReadFile(repoPath(t, "manifests", "observability", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	for _, panel := range dashboard.Panels {
		if len(panel.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", panel.Title)
		}
		for _, target := range panel.Targets {
			out["dashboard "+panel.Title+" "+target.RefID] = grafanaVariables.Replace(target.Expr)
		}
	}
	for _, group := range rules(t).Groups {
		for _, rule := range group.Rules {
			out["rule "+rule.Alert+rule.Record] = rule.Expr
		}
	}
	return out
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert  string `json:"alert,omitempty"`
			Record string `json:"record,omitempty"`
			Expr   string `json:"expr"`
		} `json:"rules"`
	} `json:"groups"`
}

func rulesSpec(t *testing.T) []byte {
	raw, err := os.ReadFile(repoPath(t, "manifests", "observability", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Spec       json.RawMessage `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &rule); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	if rule.APIVersion != "monitoring.coreos.com/v1" || rule.Kind != "PrometheusRule" {
		t.Fatalf("alerts.yaml is a %s %s, want a monitoring.coreos.com/v1 PrometheusRule", rule.APIVersion, rule.Kind)
	}
	spec, err := yaml.JSONToYAML(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func rules(t *testing.T) ruleFile {
	var f ruleFile
	if err := yaml.Unmarshal(rulesSpec(t), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Groups) == 0 {
		t.Fatal("alerts.yaml has no rule groups")
	}
	return f
}

// checkExpression parses expr and reports every selector naming a metric the scrape does not show, and every
// matcher or grouping label that neither the metric carries nor the scrape adds.
func checkExpression(expr string, have exported) []string {
	tree, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return []string{fmt.Sprintf("does not parse: %v", err)}
	}
	var problems []string
	var names []string
	parser.Inspect(tree, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			labels, found := have[vs.Name]
			if vs.Name == "" || !found {
				problems = append(problems, fmt.Sprintf("metric %q is not exported by the binary", vs.Name))
				return nil
			}
			names = append(names, vs.Name)
			for _, m := range vs.LabelMatchers {
				if m.Name != "__name__" && !labels[m.Name] && !targetLabels[m.Name] {
					problems = append(problems, fmt.Sprintf("%s has no label %q", vs.Name, m.Name))
				}
			}
		}
		return nil
	})
	parser.Inspect(tree, func(node parser.Node, _ []parser.Node) error {
		if agg, ok := node.(*parser.AggregateExpr); ok {
			for _, l := range agg.Grouping {
				known := targetLabels[l]
				for _, n := range names {
					known = known || have[n][l]
				}
				if !known {
					problems = append(problems, fmt.Sprintf("groups by %q, a label no selected metric has", l))
				}
			}
		}
		return nil
	})
	return problems
}

func TestEveryExpressionUsesExportedMetrics(t *testing.T) {
	scrape := measureAndScrape(t)
	have := parseScrape(scrape)
	for _, want := range []string{
		`rollouts_guardrails_measurements_total{guardrail="restarts",phase="Successful"}`,
		`rollouts_guardrails_measurements_total{guardrail="restarts",phase="Failed"}`,
		`rollouts_guardrails_measurement_failures_total{class="query-error"}`,
		`rollouts_guardrails_measurement_failures_total{class="config"}`,
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("the scrape after the measurements lacks %s:\n%s", want, scrape)
		}
	}
	exprs := expressions(t)
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, problem := range checkExpression(exprs[k], have) {
			t.Errorf("%s: %s\n  %s", k, problem, exprs[k])
		}
	}
	t.Logf("%d expressions checked against %d exported sample names", len(exprs), len(have))
}

// The checker catches what it must: a misspelt metric, a label the metric lacks, an unparsable expression.
func TestCheckerCatchesBrokenExpressions(t *testing.T) {
	have := parseScrape("# TYPE rollouts_guardrails_measurements_total counter\n" +
		`rollouts_guardrails_measurements_total{guardrail="restarts",phase="Failed"} 3` + "\n")
	for expr, want := range map[string]string{
		`rate(rollouts_guardrails_measurement_total[5m])`:                                 "not exported",
		`rollouts_guardrails_measurements_total{klass="x"}`:                               `no label "klass"`,
		`sum by (class) (rollouts_guardrails_measurements_total)`:                         `groups by "class"`,
		`sum(rate(rollouts_guardrails_measurements_total[5m])`:                            "does not parse",
		`sum by (guardrail, namespace) (rollouts_guardrails_measurements_total{pod="a"})`: "",
	} {
		problems := strings.Join(checkExpression(expr, have), "; ")
		if (want == "") != (problems == "") || !strings.Contains(problems, want) {
			t.Errorf("%s: got %q, want a problem containing %q", expr, problems, want)
		}
	}
}

// promtool check rules and promtool test rules (alerts_test.yaml) on the PrometheusRule's spec.
func TestAlertRulesWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not on PATH (Debian: apt-get install prometheus): %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "alerts.rules.yaml"), rulesSpec(t), 0o644); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "alerts.rules.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
