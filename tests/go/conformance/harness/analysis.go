package harness

import (
	"encoding/json"
	"fmt"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// PluginName is the key under metric.provider.plugin and in the argo-rollouts-config ConfigMap.
const PluginName = "rollouts-guardrails/prometheus"

// Target names a canary: the Rollout, its namespace and the canary ReplicaSet's pod-template hash.
type Target struct {
	Namespace string
	Rollout   string
	Hash      string
}

// Scenario targets from the canonical fixture (tests/fixtures/prometheus/kube-state-metrics.om).
var (
	ShopWeb       = Target{"shop", "web", "6c8d7f9a1"}
	PayAPI        = Target{"pay", "api", "7f6e5d4c3"}
	PayLedger     = Target{"pay", "ledger", "8a7b6c5d4"}
	PayWorker     = Target{"pay", "worker", "9b8c7d6e5"}
	MediaEncoder  = Target{"media", "encoder", "1a2b3c4d5"}
	MediaThumbs   = Target{"media", "thumbs", "2b3c4d5e6"}
	MediaResizer  = Target{"media", "resizer", "3c4d5e6f7"}
	MediaUploader = Target{"media", "uploader", "4d5e6f7a8"}
	OpsStale      = Target{"ops", "stale", "5e6f7a8b9"}
	OpsGone       = Target{"ops", "gone", "6f7a8b9c0"}
	OpsGhost      = Target{"ops", "ghost", "7a8b9c0d1"}
	PayYoung      = Target{"pay", "young", "8b9c0d1e2"}
)

func (t Target) String() string { return t.Namespace + "/" + t.Rollout }

// ReplicaSet is `<rollout>-<hash>`, the prefix of every canary pod name.
func (t Target) ReplicaSet() string { return t.Rollout + "-" + t.Hash }

// Guardrails are the named guardrails every target is checked with.
var Guardrails = []string{"restarts", "not-ready", "latest-image"}

// NewAnalysisRun builds an AnalysisRun as the controller creates it for a canary step: in the Rollout's
// namespace, owned by the Rollout, labelled with the canary's pod-template hash. The plugin defaults its
// target from these three.
func NewAnalysisRun(t Target, name string) *v1alpha1.AnalysisRun {
	yes := true
	return &v1alpha1.AnalysisRun{
		TypeMeta: metav1.TypeMeta{APIVersion: "argoproj.io/v1alpha1", Kind: "AnalysisRun"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: t.Namespace,
			UID:       types.UID("ar-uid-" + name),
			Labels: map[string]string{
				"rollouts-pod-template-hash": t.Hash,
				"rollout-type":               "Step",
				"step-index":                 "1",
			},
			Annotations: map[string]string{"rollout.argoproj.io/revision": "2"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         "argoproj.io/v1alpha1",
				Kind:               "Rollout",
				Name:               t.Rollout,
				UID:                types.UID("rollout-uid-" + t.Rollout),
				Controller:         &yes,
				BlockOwnerDeletion: &yes,
			}},
		},
		Spec: v1alpha1.AnalysisRunSpec{
			Args: []v1alpha1.Argument{{Name: "service", Value: strPtr(t.Rollout)}},
		},
		Status: v1alpha1.AnalysisRunStatus{Phase: v1alpha1.AnalysisPhaseRunning},
	}
}

// BareAnalysisRun has no owner, no labels and lives in an unrelated namespace: the target must come from the
// plugin config.
func BareAnalysisRun(name string) *v1alpha1.AnalysisRun {
	return &v1alpha1.AnalysisRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "argo-rollouts", UID: types.UID("ar-uid-" + name)},
		Status:     v1alpha1.AnalysisRunStatus{Phase: v1alpha1.AnalysisPhaseRunning},
	}
}

// NewMetric builds a metric whose provider is this plugin with config as its JSON.
func NewMetric(name string, config map[string]any) v1alpha1.Metric {
	raw, err := json.Marshal(config)
	if err != nil {
		panic(fmt.Sprintf("harness: marshal plugin config: %v", err)) // harness bug, not plugin input
	}
	return RawMetric(name, raw)
}

// RawMetric builds a metric whose plugin config is exactly raw (which may be invalid JSON).
func RawMetric(name string, raw []byte) v1alpha1.Metric {
	return v1alpha1.Metric{
		Name:         name,
		Interval:     "1m",
		Count:        intstrPtr(3),
		FailureLimit: intstrPtr(0),
		Provider:     v1alpha1.MetricProvider{Plugin: map[string]json.RawMessage{PluginName: raw}},
	}
}

// GuardrailConfig is the plugin config for guardrail on Prometheus at address, target taken from the
// AnalysisRun, with the harness's short `settle` (HarnessSettle) so that absence reaches its verdict in
// seconds through Run and Resume.
func GuardrailConfig(address, guardrail string) map[string]any {
	return map[string]any{"address": address, "guardrail": guardrail, "settle": HarnessSettle}
}

// ExplicitTargetConfig names the target in the config instead of relying on AnalysisRun defaults.
func ExplicitTargetConfig(address, guardrail string, t Target) map[string]any {
	c := GuardrailConfig(address, guardrail)
	c["namespace"], c["rollout"], c["podTemplateHash"] = t.Namespace, t.Rollout, t.Hash
	return c
}

func strPtr(s string) *string { return &s }

func intstrPtr(i int) *intstr.IntOrString {
	v := intstr.FromInt32(int32(i))
	return &v
}
