// Renders argo-helm's argo-rollouts chart (a copy of chart 2.41.0 beside the repository, or ARGO_HELM_CHART) with
// and without manifests/helm/values.yaml through Helm's own Go library, decodes every rendered object strictly
// (unknown fields rejected) with the Kubernetes and argo-rollouts v1.9.1 types, and checks what an install
// relies on: the ConfigMap registers rollouts-guardrails/prometheus, the init container's copy is where the
// registration's file:// points and is not the path the controller writes, the volumes line up, the /metrics
// port is declared, and the controller's security context is exactly the chart's own.
//
//	cd tests/go/helm && go test ./...
package helm

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	argoconfig "github.com/argoproj/argo-rollouts/utils/config"
	plugintypes "github.com/argoproj/argo-rollouts/utils/plugin/types"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	pluginName     = "rollouts-guardrails/prometheus"
	controllerName = "argo-rollouts" // the controller container's name in the chart
	pluginVolume   = "plugin-bin"    // the chart's emptyDir for plugins
	// argo-rollouts runs plugins from plugin-bin relative to its working directory, the image's home.
	controllerWorkDir = "/home/argo-rollouts"
	metricsEnv        = "GUARDRAILS_METRICS_LISTEN"
	metricsPortName   = "guardrails-metrics"
)

// chartDir: the chart copy beside the repository (CI lays shared/ next to the clone), or ARGO_HELM_CHART.
func chartDir(t *testing.T) string {
	dir := os.Getenv("ARGO_HELM_CHART")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "..", "shared", "thirdparty", "argo-helm", "charts", "argo-rollouts")
	}
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		t.Fatalf("argo-helm's argo-rollouts chart not found at %s (set ARGO_HELM_CHART): %v", dir, err)
	}
	return dir
}

// rendered is one render of the chart, every object decoded into its Go type.
type rendered struct {
	objects    []object
	deployment *appsv1.Deployment
	configMap  *corev1.ConfigMap
}

type object struct {
	source string // template path, for messages
	kind   string
	name   string
	value  any
}

// renders caches one render per values file: each takes seconds, and no test changes what it gets (mutations
// work on deep copies).
var renders = map[string]rendered{}

// render renders the chart as `helm install argo-rollouts … -n argo-rollouts [-f valuesFile]` would.
func render(t *testing.T, valuesFile string) rendered {
	t.Helper()
	if r, ok := renders[valuesFile]; ok {
		return r
	}
	r := renderUncached(t, valuesFile)
	renders[valuesFile] = r
	return r
}

func renderUncached(t *testing.T, valuesFile string) rendered {
	t.Helper()
	chart, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	values := chartutil.Values{}
	if valuesFile != "" {
		if values, err = chartutil.ReadValuesFile(valuesFile); err != nil {
			t.Fatalf("read %s: %v", valuesFile, err)
		}
	}
	options := chartutil.ReleaseOptions{Name: "argo-rollouts", Namespace: "argo-rollouts", Revision: 1, IsInstall: true}
	top, err := chartutil.ToRenderValues(chart, values, options, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	files, err := engine.Render(chart, top)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var out rendered
	for source, text := range files {
		if !strings.HasSuffix(source, ".yaml") || strings.TrimSpace(text) == "" {
			continue
		}
		for _, doc := range releaseutil.SplitManifests(text) {
			if onlyComments(doc) {
				continue
			}
			obj := decodeStrict(t, source, doc)
			out.objects = append(out.objects, obj)
			switch v := obj.value.(type) {
			case *appsv1.Deployment:
				if out.deployment != nil {
					t.Fatalf("two Deployments rendered")
				}
				out.deployment = v
			case *corev1.ConfigMap:
				if v.Name == "argo-rollouts-config" {
					out.configMap = v
				}
			}
		}
	}
	if out.deployment == nil || out.configMap == nil {
		t.Fatalf("the chart rendered no controller Deployment or no argo-rollouts-config ConfigMap")
	}
	return out
}

// onlyComments: a document that renders to nothing but YAML comments is no object (Helm skips it too).
func onlyComments(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// decodeStrict decodes one YAML document into the Go type of its apiVersion/kind, rejecting unknown fields and
// unknown kinds: a values key that lands somewhere Kubernetes would drop it fails here.
func decodeStrict(t *testing.T, source, doc string) object {
	t.Helper()
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
		t.Fatalf("%s: %v", source, err)
	}
	var value any
	switch meta.APIVersion + "/" + meta.Kind {
	case "v1/ConfigMap":
		value = &corev1.ConfigMap{}
	case "v1/Secret":
		value = &corev1.Secret{}
	case "v1/Service":
		value = &corev1.Service{}
	case "v1/ServiceAccount":
		value = &corev1.ServiceAccount{}
	case "apps/v1/Deployment":
		value = &appsv1.Deployment{}
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		value = &rbacv1.ClusterRole{}
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		value = &rbacv1.ClusterRoleBinding{}
	case "rbac.authorization.k8s.io/v1/Role":
		value = &rbacv1.Role{}
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		value = &rbacv1.RoleBinding{}
	case "policy/v1/PodDisruptionBudget":
		value = &policyv1.PodDisruptionBudget{}
	case "apiextensions.k8s.io/v1/CustomResourceDefinition":
		value = &apiextensionsv1.CustomResourceDefinition{}
	default:
		t.Fatalf("%s: no Go type for %s %s: add one before accepting it", source, meta.APIVersion, meta.Kind)
	}
	if err := yaml.UnmarshalStrict([]byte(doc), value); err != nil {
		t.Fatalf("%s: %s: %v", source, meta.Kind, err)
	}
	name := reflect.ValueOf(value).Elem().FieldByName("ObjectMeta").Interface().(metav1.ObjectMeta).Name
	return object{source: source, kind: meta.Kind, name: name, value: value}
}

func valuesFile() string { return filepath.Join("..", "..", "..", "manifests", "helm", "values.yaml") }

// plugins decodes the ConfigMap's metricProviderPlugins strictly with argo-rollouts' own PluginItem.
func plugins(cm *corev1.ConfigMap) ([]plugintypes.PluginItem, error) {
	var items []plugintypes.PluginItem
	text, ok := cm.Data["metricProviderPlugins"]
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s has no metricProviderPlugins", cm.Name)
	}
	if err := yaml.UnmarshalStrict([]byte(text), &items); err != nil {
		return nil, fmt.Errorf("metricProviderPlugins: %w", err)
	}
	return items, nil
}

func container(containers []corev1.Container, name string) *corev1.Container {
	for i := range containers {
		if containers[i].Name == name {
			return &containers[i]
		}
	}
	return nil
}

func mountOf(c *corev1.Container, volume string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

// checkPluginCopy proves the plugin reaches the controller: some init container copies a file into a volume the
// controller mounts, at the path the registration's file:// names, and that path is not the one argo-rollouts
// copies the registration to (copyFile truncates its destination: a file copied onto itself is left empty).
func checkPluginCopy(deploy *appsv1.Deployment, item plugintypes.PluginItem) error {
	spec := deploy.Spec.Template.Spec
	location, err := url.Parse(item.Location)
	if err != nil || location.Scheme != "file" {
		return fmt.Errorf("location %q is not a file:// URL", item.Location)
	}
	registered := path.Clean(location.Host + location.Path)
	controller := container(spec.Containers, controllerName)
	if controller == nil {
		return fmt.Errorf("no %s container", controllerName)
	}
	dir, file, err := argoconfig.GetPluginDirectoryAndFilename(item.Name)
	if err != nil {
		return err
	}
	controllerWrites := path.Join(controllerWorkDir, "plugin-bin", dir, file)
	if registered == controllerWrites {
		return fmt.Errorf("file://%s is the path the controller copies the plugin to: copyFile would truncate it", registered)
	}
	for _, init := range spec.InitContainers {
		if len(init.Command) == 0 {
			continue
		}
		argv := append(append([]string{}, init.Command...), init.Args...)
		if path.Base(argv[0]) != "cp" || len(argv) != 3 {
			continue
		}
		destination := path.Clean(argv[2])
		for _, m := range init.VolumeMounts {
			rel, ok := strings.CutPrefix(destination, path.Clean(m.MountPath)+"/")
			if !ok {
				continue
			}
			theirs, ok := mountOf(controller, m.Name)
			if !ok {
				return fmt.Errorf("init container %s copies into volume %s, which the controller does not mount", init.Name, m.Name)
			}
			seen := path.Join(theirs.MountPath, rel)
			if seen == controllerWrites {
				return fmt.Errorf("init container %s copies onto %s, the path the controller writes", init.Name, seen)
			}
			if seen == registered {
				return nil
			}
		}
	}
	return fmt.Errorf("no init container copies the plugin to %s (the registration's file://)", registered)
}

func TestRenderedChartRegistersThePlugin(t *testing.T) {
	ours := render(t, valuesFile())
	items, err := plugins(ours.configMap)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Name != pluginName {
		t.Fatalf("metricProviderPlugins: want exactly %s, got %+v", pluginName, items)
	}
	item := items[0]
	if item.Sha256 != "" {
		t.Errorf("file:// registration with a sha256: the controller ignores it for files")
	}
	var address string
	for _, arg := range item.Args {
		if value, ok := strings.CutPrefix(arg, "--address="); ok {
			address = value
		}
	}
	if u, err := url.Parse(address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Errorf("registration args %q: want --address=<http(s) URL of Prometheus>", item.Args)
	}
	if err := checkPluginCopy(ours.deployment, item); err != nil {
		t.Fatal(err)
	}
	t.Logf("rendered ConfigMap argo-rollouts-config:\nmetricProviderPlugins: |-\n  %s",
		strings.ReplaceAll(ours.configMap.Data["metricProviderPlugins"], "\n", "\n  "))
}

func TestInitContainerAndVolumesLineUp(t *testing.T) {
	spec := render(t, valuesFile()).deployment.Spec.Template.Spec
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	if len(spec.InitContainers) == 0 {
		t.Fatal("no init container rendered")
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				t.Errorf("container %s mounts volume %s, which the pod does not have", c.Name, m.Name)
			}
		}
	}
	if v, ok := volumes[pluginVolume]; !ok || v.EmptyDir == nil {
		t.Errorf("the chart's %s volume is not an emptyDir: %+v", pluginVolume, v)
	}
	init := container(spec.InitContainers, "rollouts-guardrails")
	if init == nil {
		t.Fatal("no rollouts-guardrails init container")
	}
	sc := init.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("init container security context: want read-only root, non-root, no privilege escalation: %+v", sc)
	}
	if _, ok := mountOf(init, pluginVolume); !ok {
		t.Errorf("init container does not mount %s", pluginVolume)
	}
}

// The plugin listens where GUARDRAILS_METRICS_LISTEN says, in the controller container (its parent's network
// namespace is the pod's); the same port is declared by name on a container of the pod, for a PodMonitor.
func TestMetricsPortIsDeclared(t *testing.T) {
	spec := render(t, valuesFile()).deployment.Spec.Template.Spec
	controller := container(spec.Containers, controllerName)
	var listen string
	for _, e := range controller.Env {
		if e.Name == metricsEnv {
			listen = e.Value
		}
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("%s=%q on the controller: %v", metricsEnv, listen, err)
	}
	var declared []corev1.ContainerPort
	taken := map[string]string{}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for _, p := range c.Ports {
			if other, ok := taken[fmt.Sprint(p.ContainerPort)]; ok {
				t.Errorf("port %d declared by %s and %s", p.ContainerPort, other, c.Name)
			}
			taken[fmt.Sprint(p.ContainerPort)] = c.Name
			if p.Name == metricsPortName {
				declared = append(declared, p)
			}
		}
	}
	if len(declared) != 1 || fmt.Sprint(declared[0].ContainerPort) != port {
		t.Errorf("want one port %s = %s (from %s), got %+v", metricsPortName, port, metricsEnv, declared)
	}
}

// Our values add to the chart; they change neither the controller's security context nor its pod's, nor its
// arguments, nor the set of objects the chart renders.
func TestControllerSecurityContextUnchanged(t *testing.T) {
	ours, theirs := render(t, valuesFile()), render(t, "")
	c1 := container(ours.deployment.Spec.Template.Spec.Containers, controllerName)
	c2 := container(theirs.deployment.Spec.Template.Spec.Containers, controllerName)
	if !reflect.DeepEqual(c1.SecurityContext, c2.SecurityContext) {
		t.Errorf("controller container security context changed:\nours   %+v\ntheirs %+v", c1.SecurityContext, c2.SecurityContext)
	}
	if c1.SecurityContext == nil || c1.SecurityContext.ReadOnlyRootFilesystem == nil || !*c1.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("the controller's root filesystem is no longer read-only")
	}
	if !reflect.DeepEqual(ours.deployment.Spec.Template.Spec.SecurityContext, theirs.deployment.Spec.Template.Spec.SecurityContext) {
		t.Errorf("pod security context changed")
	}
	if !reflect.DeepEqual(c1.Args, c2.Args) || !reflect.DeepEqual(c1.Ports, c2.Ports) || c1.Image != c2.Image {
		t.Errorf("controller args, ports or image changed:\nours   %q %v %s\ntheirs %q %v %s", c1.Args, c1.Ports, c1.Image, c2.Args, c2.Ports, c2.Image)
	}
	names := func(r rendered) string {
		var b bytes.Buffer
		for _, o := range r.objects {
			fmt.Fprintf(&b, "%s/%s ", o.kind, o.name)
		}
		return b.String()
	}
	if len(ours.objects) != len(theirs.objects) {
		t.Errorf("rendered objects differ:\nours   %s\ntheirs %s", names(ours), names(theirs))
	}
}

// The check above can fail: an init container that copies onto the controller's own destination, or a
// registration that points nowhere an init container writes, is caught.
func TestBrokenCopiesAreCaught(t *testing.T) {
	good := render(t, valuesFile())
	items, err := plugins(good.configMap)
	if err != nil {
		t.Fatal(err)
	}
	onto := good.deployment.DeepCopy()
	init := container(onto.Spec.Template.Spec.InitContainers, "rollouts-guardrails")
	init.Command = []string{"cp", "/rollouts-guardrails", "/plugin-bin/rollouts-guardrails/prometheus"}
	if err := checkPluginCopy(onto, items[0]); err == nil || !strings.Contains(err.Error(), "the path the controller writes") {
		t.Errorf("a copy onto the controller's destination passed: %v", err)
	}
	self := items[0]
	self.Location = "file://" + controllerWorkDir + "/plugin-bin/rollouts-guardrails/prometheus"
	if err := checkPluginCopy(good.deployment, self); err == nil || !strings.Contains(err.Error(), "truncate") {
		t.Errorf("a registration pointing at the controller's destination passed: %v", err)
	}
	elsewhere := items[0]
	elsewhere.Location = "file:///nowhere/rollouts-guardrails"
	if err := checkPluginCopy(good.deployment, elsewhere); err == nil {
		t.Errorf("a registration no init container serves passed")
	}
	unmounted := good.deployment.DeepCopy()
	c := container(unmounted.Spec.Template.Spec.Containers, controllerName)
	var kept []corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if m.Name != pluginVolume {
			kept = append(kept, m)
		}
	}
	c.VolumeMounts = kept
	if err := checkPluginCopy(unmounted, items[0]); err == nil || !strings.Contains(err.Error(), "does not mount") {
		t.Errorf("a copy into a volume the controller does not mount passed: %v", err)
	}
	if _, err := plugins(&corev1.ConfigMap{Data: map[string]string{"metricProviderPlugins": "- name: x\n  locaton: file:///x\n"}}); err == nil {
		t.Errorf("a misspelt PluginItem field decoded")
	}
}
