package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rollouts-guardrails/e2e/cluster"
)

// helmVersion is the Helm CLI build-control-plane.sh makes (tests/go/tools/helm), the release tests/go/helm
// renders with.
const helmVersion = "v3.19.5"

// Where argo-helm's chart puts things in the controller pod (chart 2.41.0): the controller's working directory,
// under which it runs plugins from plugin-bin/, the chart's emptyDir of that name.
const (
	chartPluginVolume = "plugin-bin"
	chartController   = "argo-rollouts"
)

// chartDir is argo-helm's argo-rollouts chart: ARGO_HELM_CHART (the Makefile passes its own), else the copy
// beside the repository, as tests/go/helm finds it.
func chartDir(t *testing.T) string {
	dir := os.Getenv("ARGO_HELM_CHART")
	if dir == "" {
		dir = filepath.Join(c.Root, "..", "shared", "thirdparty", "argo-helm", "charts", "argo-rollouts")
	}
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		t.Fatalf("argo-helm's argo-rollouts chart not found at %s (set ARGO_HELM_CHART): %v", dir, err)
	}
	return dir
}

// renderedObject is one object of `helm template`, as text and as kubectl decoded it.
type renderedObject struct {
	yaml string
	obj  obj
}

// helmTemplate renders the chart as `helm install argo-rollouts … -n argo-rollouts -f manifests/helm/values.yaml`
// would, with the Helm CLI, and decodes every object with kubectl (client side: nothing is sent).
func helmTemplate(t *testing.T, ctx context.Context) []renderedObject {
	t.Helper()
	helm := filepath.Join(c.Bin, "helm-"+helmVersion)
	cmd := exec.CommandContext(ctx, helm, "template", "argo-rollouts", chartDir(t), "--namespace", "argo-rollouts",
		"-f", filepath.Join(c.Root, "manifests", "helm", "values.yaml"))
	// Helm's own state (repositories, cache) in the temp dir, never the user's.
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(c.Dir, "helm"), "HELM_CONFIG_HOME="+filepath.Join(c.Dir, "helm"),
		"HELM_DATA_HOME="+filepath.Join(c.Dir, "helm"))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if e, ok := err.(*exec.ExitError); ok {
			stderr = e.Stderr
		}
		t.Fatalf("helm template: %v: %s", err, stderr)
	}
	var objects []renderedObject
	for _, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(out), -1) {
		if !regexp.MustCompile(`(?m)^kind:`).MatchString(doc) {
			continue
		}
		var o obj
		if err := json.Unmarshal([]byte(mustKubectl(t, ctx, doc, "create", "--dry-run=client", "-o", "json", "-f", "-")), &o); err != nil {
			t.Fatal(err)
		}
		objects = append(objects, renderedObject{yaml: doc, obj: o})
	}
	return objects
}

func findRendered(t *testing.T, objects []renderedObject, kind, name string) renderedObject {
	t.Helper()
	for _, o := range objects {
		if str(o.obj, "kind") == kind && str(o.obj, "metadata", "name") == name {
			return o
		}
	}
	t.Fatalf("the chart rendered no %s %s", kind, name)
	return renderedObject{}
}

// container is the part of a rendered container the pod emulation needs.
type container struct {
	Name         string
	Command      []string
	Env          []struct{ Name, Value string }
	VolumeMounts []struct {
		Name      string
		MountPath string `json:"mountPath"`
	} `json:"volumeMounts"`
}

func (k container) mount(volume string) string {
	for _, m := range k.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

var registrationAddress = regexp.MustCompile(`(?m)^(\s*-\s*)--address=\S+`)

// helmChart: argo-helm's chart rendered with manifests/helm/values.yaml by the Helm CLI; its RBAC and its
// argo-rollouts-config applied to the API server; the chart's init container emulated (its own command, with
// the chart's plugin-bin emptyDir a directory of the temp dir, mounted where the chart mounts it in each
// container); the controller restarted reading THAT ConfigMap and the chart's extraEnv, so the registration the
// chart produced is what loads the plugin. Then the first two scenarios again, in namespaces of their own, and the
// plugin's /metrics, which the chart's GUARDRAILS_METRICS_LISTEN turns on.
func helmChart(t *testing.T) {
	ctx := ctxT(t)
	objects := helmTemplate(t, ctx)

	// RBAC and the ServiceAccount as rendered (the controller itself runs with the suite's admin credentials).
	for _, o := range objects {
		switch str(o.obj, "kind") {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			mustKubectl(t, ctx, o.yaml, "apply", "-n", "argo-rollouts", "-f", "-")
		}
	}

	// The pod: the init container copies the image's binary into the plugin-bin emptyDir.
	var pod struct {
		Spec struct {
			Template struct {
				Spec struct {
					InitContainers []container `json:"initContainers"`
					Containers     []container
					Volumes        []struct {
						Name     string
						EmptyDir *struct{} `json:"emptyDir"`
					}
				}
			}
		}
	}
	deployment := findRendered(t, objects, "Deployment", "argo-rollouts")
	raw, _ := json.Marshal(deployment.obj)
	if err := json.Unmarshal(raw, &pod); err != nil {
		t.Fatal(err)
	}
	spec := pod.Spec.Template.Spec
	emptyDir := false
	for _, v := range spec.Volumes {
		emptyDir = emptyDir || (v.Name == chartPluginVolume && v.EmptyDir != nil)
	}
	if !emptyDir {
		t.Fatalf("the rendered pod has no emptyDir %s", chartPluginVolume)
	}
	var initC, controller *container
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == "rollouts-guardrails" {
			initC = &spec.InitContainers[i]
		}
	}
	for i := range spec.Containers {
		if spec.Containers[i].Name == chartController {
			controller = &spec.Containers[i]
		}
	}
	if initC == nil || controller == nil {
		t.Fatalf("the rendered pod has no init container rollouts-guardrails or no container %s", chartController)
	}
	volume := filepath.Join(c.Dir, "helm-pod", chartPluginVolume) // the emptyDir, on this machine
	if err := os.MkdirAll(volume, 0o755); err != nil {
		t.Fatal(err)
	}
	// A path inside a container, on this machine: under a mount of the volume it is in the volume's directory;
	// the image's own files are this checkout's release binary (the Dockerfile copies it to /rollouts-guardrails).
	hostPath := func(k *container, p string) string {
		if m := k.mount(chartPluginVolume); m != "" && strings.HasPrefix(p, m+"/") {
			return filepath.Join(volume, strings.TrimPrefix(p, m+"/"))
		}
		if p == "/rollouts-guardrails" {
			return c.PluginBinary()
		}
		t.Fatalf("%s: %s is neither under the %s mount nor the image's binary", k.Name, p, chartPluginVolume)
		return ""
	}
	if len(initC.Command) != 3 || initC.Command[0] != "cp" {
		t.Fatalf("the init container's command is not `cp SRC DST`: %q", initC.Command)
	}
	if out, err := exec.Command("cp", hostPath(initC, initC.Command[1]), hostPath(initC, initC.Command[2])).CombinedOutput(); err != nil {
		t.Fatalf("the init container's copy: %v: %s", err, out)
	}

	// The chart's ConfigMap, with the registration's file:// path as the controller container sees the volume,
	// and its --address at the suite's Prometheus (the one value a user sets).
	cm := findRendered(t, objects, "ConfigMap", "argo-rollouts-config")
	plugins := str(cm.obj, "data", "metricProviderPlugins")
	location := regexp.MustCompile(`location:\s*"?file://(\S+?)"?\s*$`)
	var loc string
	for _, line := range strings.Split(plugins, "\n") {
		if m := location.FindStringSubmatch(line); m != nil {
			loc = m[1]
		}
	}
	if loc == "" || !strings.Contains(plugins, "rollouts-guardrails/prometheus") {
		t.Fatalf("the rendered argo-rollouts-config registers no rollouts-guardrails/prometheus at a file:// location:\n%s", plugins)
	}
	local := hostPath(controller, loc)
	if _, err := os.Stat(local); err != nil {
		t.Fatalf("the registration's %s is not where the init container copied the binary: %v", loc, err)
	}
	config := strings.Replace(cm.yaml, "file://"+loc, "file://"+local, 1)
	if !registrationAddress.MatchString(config) {
		t.Fatalf("the rendered registration has no --address arg:\n%s", plugins)
	}
	config = registrationAddress.ReplaceAllString(config, "${1}--address="+c.PromURL)

	// The chart's env for the controller container; the metrics listener on a free loopback port.
	metricsPort, err := cluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, e := range controller.Env {
		if e.Name == "GUARDRAILS_METRICS_LISTEN" {
			e.Value = fmt.Sprintf("127.0.0.1:%d", metricsPort)
		}
		if e.Value != "" {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	if !strings.Contains(strings.Join(env, " "), "GUARDRAILS_METRICS_LISTEN=") {
		t.Fatalf("the rendered controller has no GUARDRAILS_METRICS_LISTEN: %q", env)
	}

	c.Controller.Stop(10 * time.Second)
	defer func() {
		// The next scenarios run with the suite's own registration.
		c.Controller.Stop(10 * time.Second)
		cfg, err := c.DefaultPluginConfig()
		if err == nil {
			err = c.SetPluginConfig(ctx, cfg)
		}
		if err == nil {
			err = c.StartController(ctx, nil)
		}
		if err != nil {
			t.Errorf("restore the suite's controller: %v", err)
		}
	}()
	if err := c.SetPluginConfig(ctx, config); err != nil {
		t.Fatal(err)
	}
	if err := c.StartController(ctx, env); err != nil {
		t.Fatal(err)
	}
	t.Logf("the chart's registration:\n%s", plugins)

	t.Run("group", func(t *testing.T) {
		t.Run("helm-healthy-promoted", func(t *testing.T) { t.Parallel(); healthyPromoted(t, "helm-healthy") })
		t.Run("helm-crashloop-aborted", func(t *testing.T) { t.Parallel(); crashloopAborted(t, "helm-crashloop") })
	})

	installed := filepath.Join(c.ControllerDir(), "plugin-bin", "rollouts-guardrails", "prometheus")
	if out, err := exec.Command("pgrep", "-f", installed).Output(); err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Errorf("no plugin process running from %s (the controller's copy of the chart's registration)", installed)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		t.Fatalf("the plugin's /metrics (the chart's GUARDRAILS_METRICS_LISTEN): %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"rollouts_guardrails_measurements_total", "rollouts_guardrails_measurement_failures_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the plugin's /metrics has no %s after the scenarios", want)
		}
	}
}
