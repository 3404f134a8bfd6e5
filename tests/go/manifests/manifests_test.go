// Package manifests checks every YAML under manifests/ and examples/ as strictly as the Argo Rollouts controller
// reads it: each document is decoded into argo-rollouts v1.9.1's own v1alpha1 types (or k8s.io/api's) with
// unknown fields rejected, then passed through argo-rollouts' own validation (ValidateRollout, the references a
// Rollout makes to its analysis templates, ValidateMetrics). Every kustomization is built with kustomize and its
// output checked the same way. The broken fixtures (tests/fixtures/manifests/broken, which tests/cli and
// tests/engine read too) prove each failure mode is caught.
package manifests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/validation"
	analysisutil "github.com/argoproj/argo-rollouts/utils/analysis"
	plugintypes "github.com/argoproj/argo-rollouts/utils/plugin/types"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// PluginName is the metric-provider plugin every guardrail metric uses.
const PluginName = "rollouts-guardrails/prometheus"

// repoRoot is the repository, three levels above this module (tests/go/manifests).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// document is one YAML document with where it came from.
type document struct {
	source string // file (and document index) or "kustomize build DIR"
	raw    []byte
	kind   string
}

// objects is everything decoded from one set of documents, for cross-checks between them.
type objects struct {
	rollouts         []*v1alpha1.Rollout
	templates        map[string]*v1alpha1.AnalysisTemplate
	clusterTemplates map[string]*v1alpha1.ClusterAnalysisTemplate
	services         map[string]*corev1.Service
	deployments      []*appsv1.Deployment
	plugins          map[string]plugintypes.PluginItem
	origin           map[any]string
}

func newObjects() *objects {
	return &objects{
		templates:        map[string]*v1alpha1.AnalysisTemplate{},
		clusterTemplates: map[string]*v1alpha1.ClusterAnalysisTemplate{},
		services:         map[string]*corev1.Service{},
		plugins:          map[string]plugintypes.PluginItem{},
		origin:           map[any]string{},
	}
}

// splitDocuments splits multi-document YAML, skipping empty documents (comments only).
func splitDocuments(source string, data []byte) ([]document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []document
	for i := 0; ; i++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", source, i, err)
		}
		var any map[string]any
		if err := yaml.Unmarshal(raw, &any); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", source, i, err)
		}
		if len(any) == 0 {
			continue
		}
		docs = append(docs, document{source: fmt.Sprintf("%s[%d]", source, i), raw: raw, kind: head.Kind})
	}
}

// argoCDApplication mirrors the fields of Argo CD's v1alpha1 Application that our manifests use, so that a typo
// there is rejected too. (Argo CD's own module is not imported: it would pull the whole Argo CD server in.)
type argoCDApplication struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name       string   `json:"name"`
		Namespace  string   `json:"namespace"`
		Finalizers []string `json:"finalizers"`
	} `json:"metadata"`
	Spec struct {
		Project string `json:"project"`
		Source  struct {
			RepoURL        string `json:"repoURL"`
			TargetRevision string `json:"targetRevision"`
			Path           string `json:"path"`
		} `json:"source"`
		Destination struct {
			Server    string `json:"server"`
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"destination"`
		SyncPolicy struct {
			Automated *struct {
				Prune      bool `json:"prune"`
				SelfHeal   bool `json:"selfHeal"`
				AllowEmpty bool `json:"allowEmpty"`
			} `json:"automated"`
			SyncOptions []string `json:"syncOptions"`
			Retry       *struct {
				Limit   int64 `json:"limit"`
				Backoff *struct {
					Duration    string `json:"duration"`
					Factor      int64  `json:"factor"`
					MaxDuration string `json:"maxDuration"`
				} `json:"backoff"`
			} `json:"retry"`
		} `json:"syncPolicy"`
	} `json:"spec"`
}

// decode decodes one document strictly into its type and records it in objs. `patch` documents (the targets of
// a kustomize patch) are decoded strictly but not validated: they are partial on purpose.
func decode(doc document, objs *objects, patch bool) error {
	strict := func(into any) error {
		if err := yaml.UnmarshalStrict(doc.raw, into); err != nil {
			return fmt.Errorf("%s: %s: %w", doc.source, doc.kind, err)
		}
		objs.origin[into] = doc.source
		return nil
	}
	switch doc.kind {
	case "Rollout":
		var ro v1alpha1.Rollout
		if err := strict(&ro); err != nil {
			return err
		}
		if !patch {
			objs.rollouts = append(objs.rollouts, &ro)
			objs.origin[&ro] = doc.source
		}
	case "AnalysisTemplate":
		var at v1alpha1.AnalysisTemplate
		if err := strict(&at); err != nil {
			return err
		}
		objs.templates[at.Name] = &at
		objs.origin[&at] = doc.source
	case "ClusterAnalysisTemplate":
		var cat v1alpha1.ClusterAnalysisTemplate
		if err := strict(&cat); err != nil {
			return err
		}
		objs.clusterTemplates[cat.Name] = &cat
		objs.origin[&cat] = doc.source
	case "Application":
		var app argoCDApplication
		return strict(&app)
	case "Service":
		var svc corev1.Service
		if err := strict(&svc); err != nil {
			return err
		}
		objs.services[svc.Name] = &svc
	case "ConfigMap":
		var cm corev1.ConfigMap
		if err := strict(&cm); err != nil {
			return err
		}
		if text, ok := cm.Data["metricProviderPlugins"]; ok {
			var items []plugintypes.PluginItem
			if err := yaml.UnmarshalStrict([]byte(text), &items); err != nil {
				return fmt.Errorf("%s: metricProviderPlugins: %w", doc.source, err)
			}
			for _, item := range items {
				if err := checkPluginItem(item); err != nil {
					return fmt.Errorf("%s: metricProviderPlugins: %w", doc.source, err)
				}
				objs.plugins[item.Name] = item
			}
		}
	case "Deployment":
		var d appsv1.Deployment
		if err := strict(&d); err != nil {
			return err
		}
		if !patch {
			objs.deployments = append(objs.deployments, &d)
			objs.origin[&d] = doc.source
		}
	case "ServiceAccount":
		var sa corev1.ServiceAccount
		return strict(&sa)
	case "ValidatingAdmissionPolicy":
		var vap admissionregistrationv1.ValidatingAdmissionPolicy
		return strict(&vap)
	case "ValidatingAdmissionPolicyBinding":
		var binding admissionregistrationv1.ValidatingAdmissionPolicyBinding
		return strict(&binding)
	case "Kustomization", "Component":
		// Checked by building it (kustomize itself rejects unknown fields in a kustomization).
	default:
		return fmt.Errorf("%s: no type for kind %q in this harness: add one before adding such a manifest", doc.source, doc.kind)
	}
	return nil
}

// checkPluginItem checks a plugin registration as the controller's downloader would read it.
func checkPluginItem(item plugintypes.PluginItem) error {
	location, err := url.ParseRequestURI(item.Location)
	if err != nil {
		return fmt.Errorf("plugin %q: location: %w", item.Name, err)
	}
	switch location.Scheme {
	case "file":
		if location.Host+location.Path == "" {
			return fmt.Errorf("plugin %q: file location without a path", item.Name)
		}
	case "https":
		if item.Sha256 == "" {
			return fmt.Errorf("plugin %q: an https location needs a sha256", item.Name)
		}
	default:
		return fmt.Errorf("plugin %q: location must be file:// or https://, not %q", item.Name, location.Scheme)
	}
	return nil
}

// podImages reports every container (init containers too) of a pod template that has no image.
func podImages(source, what string, spec corev1.PodSpec) []error {
	var errs []error
	for _, list := range []struct {
		field      string
		containers []corev1.Container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}} {
		for i, c := range list.containers {
			if strings.TrimSpace(c.Image) == "" {
				errs = append(errs, fmt.Errorf("%s: %s: spec.template.spec.%s[%d] (%s): no image", source, what, list.field, i, c.Name))
			}
		}
	}
	return errs
}

// analysisRef is one place a Rollout references analysis templates.
type analysisRef struct {
	kind      validation.AnalysisTemplateType
	stepIndex int
	templates []v1alpha1.AnalysisTemplateRef
	args      []v1alpha1.AnalysisRunArgument
}

func analysisRefs(ro *v1alpha1.Rollout) []analysisRef {
	var refs []analysisRef
	if c := ro.Spec.Strategy.Canary; c != nil {
		if c.Analysis != nil {
			refs = append(refs, analysisRef{validation.BackgroundAnalysis, 0, c.Analysis.Templates, c.Analysis.Args})
		}
		for i, step := range c.Steps {
			if step.Analysis != nil {
				refs = append(refs, analysisRef{validation.InlineAnalysis, i, step.Analysis.Templates, step.Analysis.Args})
			}
		}
	}
	if b := ro.Spec.Strategy.BlueGreen; b != nil {
		if b.PrePromotionAnalysis != nil {
			refs = append(refs, analysisRef{validation.PrePromotionAnalysis, 0, b.PrePromotionAnalysis.Templates, b.PrePromotionAnalysis.Args})
		}
		if b.PostPromotionAnalysis != nil {
			refs = append(refs, analysisRef{validation.PostPromotionAnalysis, 0, b.PostPromotionAnalysis.Templates, b.PostPromotionAnalysis.Args})
		}
	}
	return refs
}

// validate runs argo-rollouts' validation over everything in objs, resolving template references in objs and,
// failing that, in known (the templates every Rollout may reference: manifests/analysis).
func validate(objs, known *objects) []error {
	var errs []error
	registered := func(name string) bool {
		_, here := objs.plugins[name]
		_, there := known.plugins[name]
		return here || there
	}
	checkMetrics := func(source string, metrics []v1alpha1.Metric) {
		if err := analysisutil.ValidateMetrics(metrics); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", source, err))
		}
		for _, m := range metrics {
			if m.Provider.Plugin == nil {
				continue
			}
			names := make([]string, 0, len(m.Provider.Plugin))
			for name := range m.Provider.Plugin {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				if !registered(name) {
					errs = append(errs, fmt.Errorf("%s: metric %q: plugin %q is not registered in argo-rollouts-config (metricProviderPlugins)", source, m.Name, name))
				}
			}
		}
	}
	for _, at := range objs.templates {
		checkMetrics(objs.origin[at], at.Spec.Metrics)
	}
	for _, cat := range objs.clusterTemplates {
		checkMetrics(objs.origin[cat], cat.Spec.Metrics)
	}
	for _, d := range objs.deployments {
		errs = append(errs, podImages(objs.origin[d], "Deployment "+d.Name, d.Spec.Template.Spec)...)
	}
	for _, ro := range objs.rollouts {
		source := objs.origin[ro]
		for _, e := range validation.ValidateRollout(ro) {
			errs = append(errs, fmt.Errorf("%s: Rollout %s: %s", source, ro.Name, e.Error()))
		}
		if ro.Spec.WorkloadRef == nil {
			errs = append(errs, podImages(source, "Rollout "+ro.Name, ro.Spec.Template.Spec)...)
		}
		var refs validation.ReferencedResources
		for _, ref := range analysisRefs(ro) {
			group := validation.AnalysisTemplatesWithType{TemplateType: ref.kind, CanaryStepIndex: ref.stepIndex, Args: ref.args}
			for _, t := range ref.templates {
				if t.IsClusterScope() {
					cat := objs.clusterTemplates[t.TemplateName]
					if cat == nil {
						cat = known.clusterTemplates[t.TemplateName]
					}
					if cat == nil {
						errs = append(errs, fmt.Errorf("%s: Rollout %s: no ClusterAnalysisTemplate %q", source, ro.Name, t.TemplateName))
						continue
					}
					group.ClusterAnalysisTemplates = append(group.ClusterAnalysisTemplates, cat.DeepCopy())
				} else {
					at := objs.templates[t.TemplateName]
					if at == nil {
						errs = append(errs, fmt.Errorf("%s: Rollout %s: no AnalysisTemplate %q", source, ro.Name, t.TemplateName))
						continue
					}
					group.AnalysisTemplates = append(group.AnalysisTemplates, at.DeepCopy())
				}
			}
			refs.AnalysisTemplatesWithType = append(refs.AnalysisTemplatesWithType, group)
		}
		if b := ro.Spec.Strategy.BlueGreen; b != nil {
			for _, s := range []struct {
				name string
				kind validation.ServiceType
			}{{b.ActiveService, validation.ActiveService}, {b.PreviewService, validation.PreviewService}} {
				if s.name == "" {
					continue
				}
				svc := objs.services[s.name]
				if svc == nil {
					errs = append(errs, fmt.Errorf("%s: Rollout %s: no Service %q", source, ro.Name, s.name))
					continue
				}
				refs.ServiceWithType = append(refs.ServiceWithType, validation.ServiceWithType{Service: svc, Type: s.kind})
			}
		}
		for _, e := range validation.ValidateRolloutReferencedResources(ro.DeepCopy(), refs) {
			errs = append(errs, fmt.Errorf("%s: Rollout %s: %s", source, ro.Name, e.Error()))
		}
	}
	return errs
}

// kustomizeCommand finds kustomize: $KUSTOMIZE, then target/tools/kustomize (where .ci/install-deps puts it when
// neither kustomize nor kubectl is installed), then `kustomize build` on PATH, then `kubectl kustomize`.
func kustomizeCommand(t *testing.T) []string {
	t.Helper()
	if k := os.Getenv("KUSTOMIZE"); k != "" {
		return []string{k, "build"}
	}
	if tool := filepath.Join(repoRoot(t), "target", "tools", "kustomize"); isExecutable(tool) {
		return []string{tool, "build"}
	}
	if path, err := exec.LookPath("kustomize"); err == nil {
		return []string{path, "build"}
	}
	if path, err := exec.LookPath("kubectl"); err == nil {
		return []string{path, "kustomize"}
	}
	t.Fatal("neither kustomize nor kubectl is on PATH: run .ci/install-deps (it installs kustomize from the Go module proxy)")
	return nil
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}

func build(t *testing.T, dir string) ([]byte, error) {
	t.Helper()
	command := append(kustomizeCommand(t), dir)
	out, err := exec.Command(command[0], command[1:]...).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return nil, fmt.Errorf("%s: %s", strings.Join(command, " "), strings.TrimSpace(string(exit.Stderr)))
		}
		return nil, fmt.Errorf("%s: %w", strings.Join(command, " "), err)
	}
	return out, nil
}

// upstreamInstall is argo-rollouts v1.9.1's install.yaml from the module cache, which a Component is built on.
func upstreamInstall(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/argoproj/argo-rollouts").Output()
	if err != nil {
		t.Fatalf("locating argo-rollouts in the module cache: %v", err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "manifests", "install.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// kustomization is what the harness reads of a kustomization.yaml: its kind and the files it patches with.
type kustomization struct {
	Kind    string `json:"kind"`
	Patches []struct {
		Path string `json:"path"`
	} `json:"patches"`
	PatchesStrategicMerge []string `json:"patchesStrategicMerge"`
}

func readKustomization(dir string) (*kustomization, error) {
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return &k, nil
}

// checkedElsewhere are folders whose YAML is not Kubernetes objects of this harness's types, each with a harness of
// its own: Helm values rendered through argo-helm's chart (tests/go/helm) and the prometheus-operator objects and
// promtool rule tests of the observability manifests (tests/go/observability).
var checkedElsewhere = map[string]bool{"manifests/helm": true, "manifests/observability": true}

// checkTree decodes every YAML file under dirs (relative to root) and builds every kustomization there.
func checkTree(t *testing.T, root string, dirs []string, known *objects) []error {
	t.Helper()
	var files, kustomizations []string
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, entry os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := entry.Name()
			if entry.IsDir() {
				if rel, _ := filepath.Rel(root, path); checkedElsewhere[filepath.ToSlash(rel)] {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
				files = append(files, path)
			}
			if name == "kustomization.yaml" || name == "kustomization.yml" {
				kustomizations = append(kustomizations, filepath.Dir(path))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	patches := map[string]bool{}
	for _, dir := range kustomizations {
		k, err := readKustomization(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range k.Patches {
			if p.Path != "" {
				patches[filepath.Join(dir, p.Path)] = true
			}
		}
		for _, p := range k.PatchesStrategicMerge {
			patches[filepath.Join(dir, p)] = true
		}
	}
	var errs []error
	objs := newObjects()
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		docs, err := splitDocuments(rel, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, doc := range docs {
			if err := decode(doc, objs, patches[file]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if known == nil {
		known = objs
	}
	errs = append(errs, validate(objs, known)...)
	for _, dir := range kustomizations {
		errs = append(errs, checkBuild(t, root, dir, known)...)
	}
	return errs
}

// checkBuild builds one kustomization (a Component on top of the upstream install) and checks its output.
func checkBuild(t *testing.T, root, dir string, known *objects) []error {
	t.Helper()
	rel, _ := filepath.Rel(root, dir)
	k, err := readKustomization(dir)
	if err != nil {
		return []error{err}
	}
	target := dir
	if k.Kind == "Component" {
		overlay := t.TempDir()
		install, err := os.ReadFile(upstreamInstall(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(overlay, "install.yaml"), install, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(filepath.Join(overlay, "component"), os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		text := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: argo-rollouts\nresources: [install.yaml]\ncomponents: [component]\n"
		if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		target = overlay
	}
	out, err := build(t, target)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", rel, err)}
	}
	docs, err := splitDocuments("kustomize build "+rel, out)
	if err != nil {
		return []error{err}
	}
	objs := newObjects()
	var errs []error
	for _, doc := range docs {
		switch doc.kind {
		case "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Secret", "NetworkPolicy":
			// The upstream install's own objects, which we do not change.
			if k.Kind == "Component" {
				continue
			}
		}
		if err := decode(doc, objs, false); err != nil {
			errs = append(errs, err)
		}
	}
	return append(errs, validate(objs, known)...)
}

// TestManifestsAndExamples: every YAML under manifests/ and examples/ decodes strictly and validates.
func TestManifestsAndExamples(t *testing.T) {
	root := repoRoot(t)
	known := newObjects()
	// The cluster-wide policy every Rollout may reference, and the controller's plugin registration.
	if errs := loadKnown(t, root, known); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	for _, err := range checkTree(t, root, []string{"manifests", "examples"}, known) {
		t.Error(err)
	}
}

// loadKnown reads manifests/ into known: the ClusterAnalysisTemplates and the plugin registration.
func loadKnown(t *testing.T, root string, known *objects) []error {
	t.Helper()
	var errs []error
	err := filepath.WalkDir(filepath.Join(root, "manifests"), func(path string, entry os.DirEntry, err error) error {
		if err != nil || entry.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		docs, err := splitDocuments(path, data)
		if err != nil {
			return err
		}
		for _, doc := range docs {
			if doc.kind == "ClusterAnalysisTemplate" || doc.kind == "ConfigMap" {
				if err := decode(doc, known, false); err != nil {
					errs = append(errs, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if _, ok := known.plugins[PluginName]; !ok {
		errs = append(errs, fmt.Errorf("manifests/ registers no plugin %q", PluginName))
	}
	return errs
}

// TestPolicyIsFailClosed: every metric of the shipped policy fails on the first Failed measurement.
func TestPolicyIsFailClosed(t *testing.T) {
	known := newObjects()
	if errs := loadKnown(t, repoRoot(t), known); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	for _, name := range []string{"rollouts-guardrails", "rollouts-guardrails-prod"} {
		cat := known.clusterTemplates[name]
		if cat == nil {
			t.Fatalf("manifests/analysis has no ClusterAnalysisTemplate %q", name)
		}
		for _, m := range cat.Spec.Metrics {
			if m.FailureLimit == nil || m.FailureLimit.IntVal != 0 {
				t.Errorf("%s/%s: failureLimit must be 0", name, m.Name)
			}
			if m.ConsecutiveErrorLimit == nil || m.ConsecutiveErrorLimit.IntVal != 1 {
				t.Errorf("%s/%s: consecutiveErrorLimit must be 1", name, m.Name)
			}
			if m.Count == nil || m.Count.IntVal < 1 {
				t.Errorf("%s/%s: count must be set (an inline analysis step must end)", name, m.Name)
			}
			if m.Provider.Plugin == nil || len(m.Provider.Plugin[PluginName]) == 0 {
				t.Errorf("%s/%s: does not use %s", name, m.Name, PluginName)
			}
		}
	}
}

// TestBrokenFixturesAreCaught: each directory under tests/fixtures/manifests/broken with an expect.txt is
// refused, with that message.
func TestBrokenFixturesAreCaught(t *testing.T) {
	root := repoRoot(t)
	known := newObjects()
	if errs := loadKnown(t, root, known); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	broken := filepath.Join(root, "tests", "fixtures", "manifests", "broken")
	entries, err := os.ReadDir(broken)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, entry := range entries {
		expect, err := os.ReadFile(filepath.Join(broken, entry.Name(), "expect.txt"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		checked++
		t.Run(entry.Name(), func(t *testing.T) {
			dir := filepath.Join(broken, entry.Name())
			errs := checkTree(t, dir, []string{"."}, known)
			want := strings.TrimSpace(string(expect))
			for _, e := range errs {
				if strings.Contains(e.Error(), want) {
					t.Logf("caught: %v", e)
					return
				}
			}
			t.Errorf("not caught: want an error containing %q, got %v", want, errs)
		})
	}
	if checked < 3 {
		t.Fatalf("only %d broken fixtures with expect.txt: expected one per failure mode", checked)
	}
}
