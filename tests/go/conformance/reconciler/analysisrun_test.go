package reconciler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	analysisutil "github.com/argoproj/argo-rollouts/utils/analysis"
	"github.com/rollouts-guardrails/conformance/harness"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// shortInterval replaces every metric's interval in the test (the shipped 1m and 2m would make a run take 4
// and 18 minutes, longer than the fixture's 5 m windows stay true after its shifted END). It is set on the
// decoded template's own `interval` field; count, failureLimit and consecutiveErrorLimit stay as shipped.
const shortInterval v1alpha1.DurationString = "1s"

// revisionAnnotation is the Rollout revision the rollout controller copies onto its AnalysisRuns.
const revisionAnnotation = "rollout.argoproj.io/revision"

// analysisCase is one way the project ships a template to a Rollout: which ClusterAnalysisTemplate, and which
// example Rollout passes it its args.
type analysisCase struct {
	name     string
	template string // ClusterAnalysisTemplate, relative to the repository
	rollout  string // the example Rollout whose analysis references it, relative to the repository
	// revision is the Rollout revision the run is for: distinct per case, so that runs of different cases for
	// one target get distinct names (argo names a run <rollout>-<hash>-<revision>[-<step>]).
	revision string
	// args, when set, are the args a Rollout passes to a template no example Rollout references yet (they are
	// what the template's own comment tells a user to pass).
	args []v1alpha1.AnalysisRunArgument
}

var analysisCases = []analysisCase{
	{name: "standard", template: "manifests/analysis/cluster-analysis-template.yaml", rollout: "examples/canary/rollout.yaml", revision: "2"},
	{name: "prod", template: "manifests/analysis/cluster-analysis-template-prod.yaml", rollout: "examples/canary/rollout-prod.yaml", revision: "3"},
	// No namespace arg: the plugin takes the AnalysisRun's.
	{name: "bluegreen", template: "manifests/analysis/cluster-analysis-template.yaml", rollout: "examples/bluegreen/rollout.yaml", revision: "5"},
	{name: "pod-health", template: "examples/guardrails/pod-health.yaml", rollout: "examples/canary/rollout.yaml", revision: "4",
		args: []v1alpha1.AnalysisRunArgument{
			{Name: "namespace", ValueFrom: &v1alpha1.ArgumentValueFrom{FieldRef: &v1alpha1.FieldRef{FieldPath: "metadata.namespace"}}},
			{Name: "rollout", ValueFrom: &v1alpha1.ArgumentValueFrom{FieldRef: &v1alpha1.FieldRef{FieldPath: "metadata.name"}}},
			{Name: "pod-template-hash", ValueFrom: &v1alpha1.ArgumentValueFrom{PodTemplateHashValue: ptr(v1alpha1.Latest)}},
		}},
}

func ptr[T any](v T) *T { return &v }

// loadTemplate decodes a shipped ClusterAnalysisTemplate with argo's types (strictly: an unknown field is an
// error) and sets its metrics' intervals to shortInterval. When settle is not empty it becomes the template's
// own `settle` arg default if it has one, else every plugin config's `settle` key.
func loadTemplate(path, settle string) (*v1alpha1.ClusterAnalysisTemplate, error) {
	raw, err := os.ReadFile(filepath.Join(world.repo, path))
	if err != nil {
		return nil, err
	}
	var tpl v1alpha1.ClusterAnalysisTemplate
	if err := yaml.UnmarshalStrict(raw, &tpl); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if tpl.Kind != "ClusterAnalysisTemplate" {
		return nil, fmt.Errorf("%s is a %q, want a ClusterAnalysisTemplate", path, tpl.Kind)
	}
	settleArg := false
	for i := range tpl.Spec.Args {
		if a := &tpl.Spec.Args[i]; a.Name == "settle" && settle != "" {
			a.Value, settleArg = &settle, true
		}
	}
	for i := range tpl.Spec.Metrics {
		m := &tpl.Spec.Metrics[i]
		if m.Interval != "" {
			m.Interval = shortInterval
		}
		raw, ok := m.Provider.Plugin[harness.PluginName]
		if !ok {
			return nil, fmt.Errorf("%s: metric %s does not use the plugin %s", path, m.Name, harness.PluginName)
		}
		if settle != "" && !settleArg {
			var cfg map[string]any
			if err := json.Unmarshal(raw, &cfg); err != nil {
				return nil, fmt.Errorf("%s: metric %s: %w", path, m.Name, err)
			}
			cfg["settle"] = settle
			if m.Provider.Plugin[harness.PluginName], err = json.Marshal(cfg); err != nil {
				return nil, err
			}
		}
	}
	return &tpl, nil
}

// loadRollout decodes the Rollout in an example file (which may hold other objects, e.g. Services).
func loadRollout(path string) (*v1alpha1.Rollout, error) {
	raw, err := os.ReadFile(filepath.Join(world.repo, path))
	if err != nil {
		return nil, err
	}
	for _, doc := range bytes.Split(raw, []byte("\n---")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if meta.Kind != "Rollout" {
			continue
		}
		var ro v1alpha1.Rollout
		if err := yaml.UnmarshalStrict(doc, &ro); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &ro, nil
	}
	return nil, fmt.Errorf("%s holds no Rollout", path)
}

// rolloutAnalysis finds where the Rollout references the template — its canary background analysis, else its
// first canary analysis step, else its blue-green pre-promotion analysis — and returns the name infix and labels
// the rollout controller gives that kind of run (rollout/analysis.go).
func rolloutAnalysis(ro *v1alpha1.Rollout, template, hash string) (*v1alpha1.RolloutAnalysis, string, map[string]string) {
	references := func(a *v1alpha1.RolloutAnalysis) bool {
		for _, ref := range a.Templates {
			if ref.TemplateName == template && ref.IsClusterScope() {
				return true
			}
		}
		return false
	}
	if c := ro.Spec.Strategy.Canary; c != nil {
		if c.Analysis != nil && references(&c.Analysis.RolloutAnalysis) {
			return &c.Analysis.RolloutAnalysis, "", analysisutil.BackgroundLabels(hash, "")
		}
		for i, step := range c.Steps {
			if step.Analysis != nil && references(step.Analysis) {
				return step.Analysis, strconv.Itoa(i), analysisutil.StepLabels(int32(i), hash, "")
			}
		}
	}
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil && bg.PrePromotionAnalysis != nil && references(bg.PrePromotionAnalysis) {
		return bg.PrePromotionAnalysis, "pre", analysisutil.PrePromotionLabels(hash, "")
	}
	return nil, "", nil
}

// newAnalysisRun builds the AnalysisRun the rollout controller creates for target when the example Rollout,
// renamed to the target and at c's revision (or revision, when set), reaches the analysis that references c's template:
// args through analysisutil.BuildArgumentsForRolloutAnalysisRun (fieldRefs read from the Rollout, the
// pod-template hash from the new ReplicaSet's label), the run through analysisutil.NewAnalysisRunFromTemplates,
// with the name, labels, annotations and owner reference of rollout/analysis.go's newAnalysisRunFromRollout.
func newAnalysisRun(c analysisCase, target harness.Target, revision, settle string) (*v1alpha1.AnalysisRun, error) {
	if revision == "" {
		revision = c.revision
	}
	tpl, err := loadTemplate(c.template, settle)
	if err != nil {
		return nil, err
	}
	ro, err := loadRollout(c.rollout)
	if err != nil {
		return nil, err
	}
	ro.Name, ro.Namespace = target.Rollout, target.Namespace
	ro.UID = types.UID("rollout-uid-" + target.Namespace + "-" + target.Rollout)
	ro.Annotations = map[string]string{revisionAnnotation: revision}

	ra, infix, labels := rolloutAnalysis(ro, tpl.Name, target.Hash)
	if c.args != nil {
		if ra != nil {
			return nil, fmt.Errorf("%s now references %s: use its args instead of the test's", c.rollout, tpl.Name)
		}
		ra, labels = &v1alpha1.RolloutAnalysis{Args: c.args}, analysisutil.BackgroundLabels(target.Hash, "")
	} else if ra == nil {
		return nil, fmt.Errorf("%s does not reference the ClusterAnalysisTemplate %s", c.rollout, tpl.Name)
	}
	stableRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: target.Rollout + "-stable",
		Labels: map[string]string{v1alpha1.DefaultRolloutUniqueLabelKey: "stable0000"}}}
	newRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: target.ReplicaSet(),
		Labels: map[string]string{v1alpha1.DefaultRolloutUniqueLabelKey: target.Hash}}}
	args, err := analysisutil.BuildArgumentsForRolloutAnalysisRun(ra.Args, stableRS, newRS, ro)
	if err != nil {
		return nil, fmt.Errorf("%s: args: %w", c.rollout, err)
	}

	nameParts := []string{ro.Name, target.Hash, revision}
	if infix != "" {
		nameParts = append(nameParts, infix)
	}
	for k, v := range ro.Spec.Selector.MatchLabels {
		labels[k] = v
	}
	run, err := analysisutil.NewAnalysisRunFromTemplates(nil, []*v1alpha1.ClusterAnalysisTemplate{tpl}, args,
		ra.DryRun, ra.MeasurementRetention, labels, map[string]string{revisionAnnotation: revision},
		strings.Join(nameParts, "-"), "", ro.Namespace)
	if err != nil {
		return nil, err
	}
	run.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(ro, v1alpha1.SchemeGroupVersion.WithKind("Rollout"))}
	return run, nil
}
