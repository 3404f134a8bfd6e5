package harness

import (
	"github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestShiftOpenMetricsMovesOnlyTimestamps(t *testing.T) {
	in := strings.Join([]string{
		"# TYPE kube_pod_info gauge",
		`kube_pod_info{namespace="shop",pod="web-6c8d7f9a1-abcde",priority_class="a } b \" c"} 1 1767268800`,
		`kube_pod_created{namespace="shop"} 1767175200 1767265200.5`,
		`up 1`,
		"# EOF",
		"",
	}, "\n")
	var out strings.Builder
	if err := ShiftOpenMetrics(strings.NewReader(in), &out, 100); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"# TYPE kube_pod_info gauge",
		`kube_pod_info{namespace="shop",pod="web-6c8d7f9a1-abcde",priority_class="a } b \" c"} 1 1767268900`,
		`kube_pod_created{namespace="shop"} 1767175300 1767265300.5`,
		`up 1`,
		"# EOF",
		"",
	}, "\n")
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestShiftOpenMetricsRejectsGarbage(t *testing.T) {
	for _, in := range []string{`m{a="b" 1 2`, `m 1 notatime`, `m 1 2 # {a="b"} 1 2`} {
		var out strings.Builder
		if err := ShiftOpenMetrics(strings.NewReader(in+"\n"), &out, 1); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
}

func TestCheckMeasurementCatchesEachField(t *testing.T) {
	now := time.Now()
	at := metav1.NewTime(now)
	good := v1alpha1.Measurement{
		Phase: v1alpha1.AnalysisPhaseFailed, Value: "3", Message: "pod api-7f6e5d4c3-aaaaa: CrashLoopBackOff",
		StartedAt: &at, FinishedAt: &at,
		Metadata: map[string]string{"prometheus": "http://p:9090", "query.restarts": `x{namespace="pay",pod=~"api-7f6e5d4c3-.*"}`},
	}
	want := Want{Phase: v1alpha1.AnalysisPhaseFailed, Value: "3", MessageContains: []string{"CrashLoopBackOff"},
		MessageMatches: []*regexp.Regexp{payAPIPod}, Target: PayAPI, Prometheus: "http://p:9090"}
	if p := CheckMeasurement(good, want, now, now); len(p) > 0 {
		t.Fatalf("good measurement rejected: %v", p)
	}
	old := metav1.NewTime(now.Add(-time.Hour))
	mutations := map[string]func(m *v1alpha1.Measurement){
		"phase":      func(m *v1alpha1.Measurement) { m.Phase = v1alpha1.AnalysisPhaseSuccessful },
		"value":      func(m *v1alpha1.Measurement) { m.Value = "1" },
		"message":    func(m *v1alpha1.Measurement) { m.Message = "bad" },
		"startedAt":  func(m *v1alpha1.Measurement) { m.StartedAt = nil },
		"finishedAt": func(m *v1alpha1.Measurement) { m.FinishedAt = &old },
		"resumeAt":   func(m *v1alpha1.Measurement) { m.ResumeAt = &at },
		"prometheus": func(m *v1alpha1.Measurement) { m.Metadata = map[string]string{"query": m.Metadata["query.restarts"]} },
		"query":      func(m *v1alpha1.Measurement) { m.Metadata = map[string]string{"prometheus": "http://p:9090"} },
		"query target": func(m *v1alpha1.Measurement) {
			m.Metadata = map[string]string{"prometheus": "http://p:9090", "query": `x{namespace="shop"}`}
		},
	}
	for name, mutate := range mutations {
		m := good
		mutate(&m)
		if p := CheckMeasurement(m, want, now, now); len(p) == 0 {
			t.Errorf("%s: mutated measurement accepted", name)
		}
	}
}

func TestLargeAnalysisRunExceedsOneMiB(t *testing.T) {
	ar := largeAnalysisRun(ShopWeb, "http://127.0.0.1:9090", largeMeasurements)
	size, err := gobSize(rpcRunArgs(ar))
	if err != nil {
		t.Fatal(err)
	}
	if size <= minLargeGobBytes {
		t.Fatalf("%d bytes", size)
	}
	t.Logf("%d bytes", size)
}

func rpcRunArgs(ar *v1alpha1.AnalysisRun) any {
	return rpc.RunArgs{AnalysisRun: ar, Metric: NewMetric("restarts", GuardrailConfig("http://127.0.0.1:9090", "restarts"))}
}
