// Package cluster starts the end-to-end control plane: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kwok (one fake node, the Stages of stages.yaml), kube-state-metrics, Prometheus scraping it every
// 5 s, and the Argo Rollouts controller with the plugin registered through argo-rollouts-config. State lives in a
// temp dir, every process listens on a free loopback port and is stopped by its PID.
package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Versions of the binaries tests/go/tools/build-control-plane.sh makes (target/e2e/bin/<name>-<version>).
const (
	K8sVersion  = "v1.34.4"
	EtcdVersion = "v3.6.16"
	KwokVersion = "v0.8.0"
	KSMVersion  = "v2.18.0"
)

// ArgoVersions are the controller releases the suite runs.
var ArgoVersions = []string{"v1.9.1", "v1.10.1"}

// Cluster is a running control plane.
type Cluster struct {
	Root       string // the repository
	Dir        string // the temp dir holding every process's state
	Bin        string // target/e2e/bin
	Kubeconfig string
	APIServer  string
	PromURL    string
	KSMURL     string

	ca                              *CA
	api                             *http.Client // the admin client of the API server
	adminCert, adminKey             []byte
	Etcd, API, KCM, Sched, Kwok     *Proc
	KSM, Prom, Controller           *Proc
	ksmPort, ksmTelemetry, promPort int
	ArgoVersion                     string
	ControllerEnv                   []string
}

// Options choose what Start brings up.
type Options struct {
	ArgoVersion string // default ArgoVersions[0]
	// PluginConfig is the argo-rollouts-config ConfigMap to apply; empty: manifests/controller's, with the file://
	// location rewritten to target/release/rollouts-guardrails.
	PluginConfig string
	// ControllerEnv is added to the controller's environment (SSL_CERT_FILE for the https:// registration).
	ControllerEnv []string
	// NoController leaves the controller to the caller (StartController).
	NoController bool
}

// RepoRoot finds the repository from this package's directory (tests/go/e2e/cluster) or from the working directory.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "Cargo.toml")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "tests", "go", "e2e")); err == nil {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("no repository (Cargo.toml + tests/go/e2e) above %s", wd)
}

func (c *Cluster) bin(name, version string) (string, error) {
	p := filepath.Join(c.Bin, name+"-"+version)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s missing: run tests/go/tools/build-control-plane.sh", p)
	}
	return p, nil
}

// PluginBinary is the release binary the file:// registration points at.
func (c *Cluster) PluginBinary() string {
	return filepath.Join(c.Root, "target", "release", "rollouts-guardrails")
}

// Start brings the control plane up; on error everything started so far is stopped.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "guardrails-e2e-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{Root: root, Dir: dir, Bin: filepath.Join(root, "target", "e2e", "bin")}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if opts.ArgoVersion == "" {
		opts.ArgoVersion = ArgoVersions[0]
	}
	c.ArgoVersion = opts.ArgoVersion
	if _, err := os.Stat(c.PluginBinary()); err != nil {
		return c, fmt.Errorf("%s missing: cargo build --release --locked", c.PluginBinary())
	}
	if err := c.startKube(ctx); err != nil {
		return c, err
	}
	if err := c.startKwok(ctx); err != nil {
		return c, err
	}
	if err := c.StartObservability(ctx); err != nil {
		return c, err
	}
	if err := c.installArgo(ctx, opts); err != nil {
		return c, err
	}
	if opts.NoController {
		return c, nil
	}
	return c, c.StartController(ctx, opts.ControllerEnv)
}

// StartAPIServer brings up only etcd and kube-apiserver (and the admin kubeconfig): enough for what admission
// and validation decide, no controllers. On error everything started so far is stopped.
func StartAPIServer(ctx context.Context) (c *Cluster, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "guardrails-e2e-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{Root: root, Dir: dir, Bin: filepath.Join(root, "target", "e2e", "bin"), ArgoVersion: ArgoVersions[0]}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	return c, c.startAPI(ctx)
}

// ApplyCRDs applies the CRDs of the controller release's own module (manifests/crds) and waits until they are
// Established.
func (c *Cluster) ApplyCRDs(ctx context.Context) error { return c.applyCRDs(ctx) }

func (c *Cluster) startKube(ctx context.Context) error {
	if err := c.startAPI(ctx); err != nil {
		return err
	}
	// nodelifecycle off: the fake node has no kubelet heartbeat to lose, and nothing should taint or evict it.
	ports, err := mustPorts(2)
	if err != nil {
		return err
	}
	kcmPort, schedPort := ports[0], ports[1]
	if err := c.startControllerManager("*,-node-lifecycle-controller", kcmPort); err != nil {
		return err
	}
	sched, err := c.bin("kube-scheduler", K8sVersion)
	if err != nil {
		return err
	}
	c.Sched, err = start(c.Dir, c.Dir, "kube-scheduler", sched, nil,
		"--kubeconfig="+c.Kubeconfig, "--authentication-kubeconfig="+c.Kubeconfig,
		"--authorization-kubeconfig="+c.Kubeconfig, "--bind-address=127.0.0.1", "--secure-port="+itoa(schedPort),
		"--leader-elect=false", "--v=1")
	if err != nil {
		return err
	}
	// The default ServiceAccount (made by kube-controller-manager) must exist before pods can be created.
	return c.waitFor(ctx, 90*time.Second, "ServiceAccount default", func() bool {
		_, err := c.Kubectl(ctx, "get", "serviceaccount", "default", "-n", "default")
		return err == nil
	})
}

// StartControllerManager starts kube-controller-manager running the given controllers (its --controllers
// syntax) against the API server of startAPI.
func (c *Cluster) StartControllerManager(controllers string) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	return c.startControllerManager(controllers, port)
}

func (c *Cluster) startControllerManager(controllers string, port int) error {
	kcm, err := c.bin("kube-controller-manager", K8sVersion)
	if err != nil {
		return err
	}
	c.KCM, err = start(c.Dir, c.Dir, "kube-controller-manager", kcm, nil,
		"--kubeconfig="+c.Kubeconfig, "--authentication-kubeconfig="+c.Kubeconfig,
		"--authorization-kubeconfig="+c.Kubeconfig, "--bind-address=127.0.0.1", "--secure-port="+itoa(port),
		"--leader-elect=false", "--controllers="+controllers,
		"--service-account-private-key-file="+filepath.Join(c.Dir, "sa.key"),
		"--root-ca-file="+filepath.Join(c.Dir, "ca.crt"), "--use-service-account-credentials=false", "--v=1")
	return err
}

// startAPI starts etcd and kube-apiserver on free loopback ports and writes the admin kubeconfig.
func (c *Cluster) startAPI(ctx context.Context) error {
	ca, err := newCA("guardrails-e2e-ca")
	if err != nil {
		return err
	}
	c.ca = ca
	write := func(name string, b []byte) (string, error) {
		p := filepath.Join(c.Dir, name)
		return p, os.WriteFile(p, b, 0o600)
	}
	caFile, err := write("ca.crt", ca.CertPEM)
	if err != nil {
		return err
	}
	srvCert, srvKey, err := ca.issue("kube-apiserver", nil, true, []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc"})
	if err != nil {
		return err
	}
	srvCertFile, _ := write("apiserver.crt", srvCert)
	srvKeyFile, _ := write("apiserver.key", srvKey)
	c.adminCert, c.adminKey, err = ca.issue("e2e-admin", []string{"system:masters"}, false, nil)
	if err != nil {
		return err
	}
	saKey, saPub, err := writeServiceAccountKey(c.Dir)
	if err != nil {
		return err
	}
	ports, err := mustPorts(3)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]

	etcd, err := c.bin("etcd", EtcdVersion)
	if err != nil {
		return err
	}
	clientURL := "http://127.0.0.1:" + itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + itoa(etcdPeer)
	c.Etcd, err = start(c.Dir, c.Dir, "etcd", etcd, nil,
		"--name=e2e", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL, "--log-level=warn",
		"--unsafe-no-fsync")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := waitHTTP(wctx, c.Etcd, clientURL+"/health", nil); err != nil {
		return err
	}

	apiserver, err := c.bin("kube-apiserver", K8sVersion)
	if err != nil {
		return err
	}
	c.APIServer = "https://127.0.0.1:" + itoa(apiPort)
	c.API, err = start(c.Dir, c.Dir, "kube-apiserver", apiserver, nil,
		"--etcd-servers="+clientURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+itoa(apiPort),
		"--tls-cert-file="+srvCertFile, "--tls-private-key-file="+srvKeyFile, "--client-ca-file="+caFile,
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file="+saPub,
		"--service-account-signing-key-file="+saKey, "--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC", "--allow-privileged=true", "--enable-priority-and-fairness=false",
		"--profiling=false", "--v=1")
	if err != nil {
		return err
	}
	client, err := tlsClient(ca.CertPEM, c.adminCert, c.adminKey)
	if err != nil {
		return err
	}
	c.api = client
	actx, acancel := context.WithTimeout(ctx, 120*time.Second)
	defer acancel()
	if err := waitHTTP(actx, c.API, c.APIServer+"/readyz", client); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, []byte(kubeconfig(c.APIServer, caFile, c.adminCert, c.adminKey, c.Dir)), 0o600); err != nil {
		return err
	}
	return nil
}

func kubeconfig(server, caFile string, cert, key []byte, dir string) string {
	certFile := filepath.Join(dir, "admin.crt")
	keyFile := filepath.Join(dir, "admin.key")
	_ = os.WriteFile(certFile, cert, 0o600)
	_ = os.WriteFile(keyFile, key, 0o600)
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, server, caFile, certFile, keyFile)
}

func (c *Cluster) startKwok(ctx context.Context) error {
	kwok, err := c.bin("kwok", KwokVersion)
	if err != nil {
		return err
	}
	ports, err := mustPorts(1)
	if err != nil {
		return err
	}
	c.Kwok, err = start(c.Dir, c.Dir, "kwok", kwok, nil,
		"--kubeconfig="+c.Kubeconfig, "--config="+filepath.Join(c.Root, "tests", "go", "e2e", "stages.yaml"),
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--server-address=127.0.0.1:"+itoa(ports[0]), "--node-ip=127.0.0.1", "--cidr=10.244.0.0/16")
	if err != nil {
		return err
	}
	if _, err := c.KubectlIn(ctx, nodeYAML, "apply", "-f", "-"); err != nil {
		return err
	}
	if err := c.waitFor(ctx, 60*time.Second, "node kwok-node-0 Ready", func() bool {
		out, err := c.Kubectl(ctx, "get", "node", "kwok-node-0", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return err == nil && strings.TrimSpace(out) == "True"
	}); err != nil {
		return err
	}
	// The TaintNodesByCondition admission plugin gives a new node the not-ready taint; the node-lifecycle
	// controller, which would lift it, is off (see startKube).
	_, err = c.Kubectl(ctx, "taint", "node", "kwok-node-0", "node.kubernetes.io/not-ready:NoSchedule-")
	return err
}

const nodeYAML = `apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
`

// StartObservability starts kube-state-metrics and Prometheus (scrape and evaluation every 5 s) on fresh ports;
// called again after StopObservability it reuses Prometheus' TSDB dir.
func (c *Cluster) StartObservability(ctx context.Context) error {
	if err := c.StartKSM(ctx); err != nil {
		return err
	}
	return c.StartPrometheus(ctx)
}

// StartKSM starts kube-state-metrics with its default metric set.
func (c *Cluster) StartKSM(ctx context.Context) error {
	ksm, err := c.bin("kube-state-metrics", KSMVersion)
	if err != nil {
		return err
	}
	if c.ksmPort == 0 {
		ports, err := mustPorts(2)
		if err != nil {
			return err
		}
		c.ksmPort, c.ksmTelemetry = ports[0], ports[1]
	}
	c.KSMURL = "http://127.0.0.1:" + itoa(c.ksmPort)
	c.KSM, err = start(c.Dir, c.Dir, "kube-state-metrics", ksm, nil,
		"--kubeconfig="+c.Kubeconfig, "--host=127.0.0.1", "--port="+itoa(c.ksmPort),
		"--telemetry-host=127.0.0.1", "--telemetry-port="+itoa(c.ksmTelemetry))
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return waitHTTP(wctx, c.KSM, c.KSMURL+"/healthz", nil)
}

// StartPrometheus starts Debian's Prometheus scraping kube-state-metrics every 5 s.
func (c *Cluster) StartPrometheus(ctx context.Context) error {
	if c.promPort == 0 {
		ports, err := mustPorts(1)
		if err != nil {
			return err
		}
		c.promPort = ports[0]
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 5s
  scrape_timeout: 4s
  evaluation_interval: 5s
scrape_configs:
  - job_name: kube-state-metrics
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:%d"]
`, c.ksmPort)
	cfgFile := filepath.Join(c.Dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		return fmt.Errorf("prometheus not on PATH (.ci/install-deps installs Debian's): %w", err)
	}
	c.PromURL = "http://127.0.0.1:" + itoa(c.promPort)
	c.Prom, err = start(c.Dir, c.Dir, "prometheus", prom, nil,
		"--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(c.Dir, "prometheus"),
		"--web.listen-address=127.0.0.1:"+itoa(c.promPort), "--log.level=warn")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return waitHTTP(wctx, c.Prom, c.PromURL+"/-/ready", nil)
}

func (c *Cluster) argoModuleDir(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/argoproj/argo-rollouts")
	cmd.Dir = filepath.Join(c.Root, "tests", "go", "tools", "argo-"+c.ArgoVersion)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m argo-rollouts in %s: %w", cmd.Dir, err)
	}
	return strings.TrimSpace(string(out)), nil
}

var fileLocation = regexp.MustCompile(`(?m)^(\s*location:\s*)file://\S+`)

// addressArg is the registration's `--address=` arg, which a user sets to their Prometheus.
var addressArg = regexp.MustCompile(`(?m)^(\s*-\s*)--address=\S+`)

// DefaultPluginConfig is manifests/controller/argo-rollouts-config.yaml with its file:// location pointing at the
// release binary of this checkout and its registration's `--address` at the test Prometheus, as a user sets them.
func (c *Cluster) DefaultPluginConfig() (string, error) {
	b, err := os.ReadFile(filepath.Join(c.Root, "manifests", "controller", "argo-rollouts-config.yaml"))
	if err != nil {
		return "", err
	}
	if !fileLocation.Match(b) {
		return "", fmt.Errorf("manifests/controller/argo-rollouts-config.yaml has no file:// location")
	}
	config := fileLocation.ReplaceAllString(string(b), "${1}file://"+c.PluginBinary())
	return addressArg.ReplaceAllString(config, "${1}--address="+c.PromURL), nil
}

// UseArgo switches the controller release (applied at the next StartController) and applies its CRDs.
func (c *Cluster) UseArgo(ctx context.Context, version string) error {
	c.ArgoVersion = version
	return c.applyCRDs(ctx)
}

// applyCRDs applies the CRDs of the controller release's own module (manifests/crds).
func (c *Cluster) applyCRDs(ctx context.Context) error {
	mod, err := c.argoModuleDir(ctx)
	if err != nil {
		return err
	}
	if _, err := c.Kubectl(ctx, "apply", "--server-side", "--force-conflicts", "-k", filepath.Join(mod, "manifests", "crds")); err != nil {
		return err
	}
	// `kubectl wait` errors out while a new CRD has no conditions yet: retry until Established.
	var last error
	werr := c.waitFor(ctx, 90*time.Second, "argo-rollouts CRDs Established", func() bool {
		_, last = c.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=20s",
			"crd/rollouts.argoproj.io", "crd/analysisruns.argoproj.io", "crd/analysistemplates.argoproj.io",
			"crd/clusteranalysistemplates.argoproj.io", "crd/experiments.argoproj.io")
		return last == nil
	})
	if werr != nil {
		return fmt.Errorf("%w: %v", werr, last)
	}
	return nil
}

func (c *Cluster) installArgo(ctx context.Context, opts Options) error {
	if err := c.applyCRDs(ctx); err != nil {
		return err
	}
	if _, err := c.Kubectl(ctx, "create", "namespace", "argo-rollouts"); err != nil {
		return err
	}
	cfg := opts.PluginConfig
	if cfg == "" {
		var err error
		if cfg, err = c.DefaultPluginConfig(); err != nil {
			return err
		}
	}
	if _, err := c.KubectlIn(ctx, cfg, "apply", "-n", "argo-rollouts", "-f", "-"); err != nil {
		return err
	}
	return nil
}

// SetPluginConfig replaces argo-rollouts-config (takes effect at the controller's next start).
func (c *Cluster) SetPluginConfig(ctx context.Context, cfg string) error {
	_, err := c.KubectlIn(ctx, cfg, "apply", "-n", "argo-rollouts", "-f", "-")
	return err
}

// StartController starts the Argo Rollouts controller, its cwd a fresh dir under the temp dir (it installs plugins
// into plugin-bin/ there), with GUARDRAILS_PROMETHEUS_ADDRESS as docs/installation.md tells a user. It waits for
// /healthz, or returns the controller's exit (a refused plugin download ends the controller).
func (c *Cluster) StartController(ctx context.Context, env []string) error {
	ctrl, err := c.bin("rollouts-controller", c.ArgoVersion)
	if err != nil {
		return err
	}
	ports, err := mustPorts(2)
	if err != nil {
		return err
	}
	cwd, err := os.MkdirTemp(c.Dir, "controller-")
	if err != nil {
		return err
	}
	env = append([]string{"POD_NAMESPACE=argo-rollouts", "GUARDRAILS_PROMETHEUS_ADDRESS=" + c.PromURL}, env...)
	c.ControllerEnv = env
	c.Controller, err = start(c.Dir, cwd, "rollouts-controller", ctrl, env,
		"--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--metricsport="+itoa(ports[0]),
		"--healthzPort="+itoa(ports[1]), "--loglevel=info", "--logformat=json")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return waitHTTP(wctx, c.Controller, "http://127.0.0.1:"+itoa(ports[1])+"/healthz", nil)
}

// ControllerDir is the working directory of the running controller (plugin-bin/ is under it).
func (c *Cluster) ControllerDir() string {
	if c.Controller == nil {
		return ""
	}
	return c.Controller.Cmd.Dir
}

// Stop stops every process of the control plane by its PID; the temp dir is kept when E2E_KEEP is set.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	for _, p := range []*Proc{c.Controller, c.Prom, c.KSM, c.Kwok, c.Sched, c.KCM, c.API, c.Etcd} {
		p.Stop(10 * time.Second)
	}
	StopAll()
	if os.Getenv("E2E_KEEP") == "" && c.Dir != "" {
		_ = os.RemoveAll(c.Dir)
	}
}

// Kubectl runs the built kubectl against the cluster.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlIn(ctx, "", args...)
}

// KubectlIn runs kubectl with stdin.
func (c *Cluster) KubectlIn(ctx context.Context, stdin string, args ...string) (string, error) {
	kubectl, err := c.bin("kubectl", K8sVersion)
	if err != nil {
		return "", err
	}
	return c.run(ctx, stdin, kubectl, args...)
}

// ArgoRollouts runs kubectl-argo-rollouts (v1.9.1, the CLI build-control-plane.sh makes).
func (c *Cluster) ArgoRollouts(ctx context.Context, args ...string) (string, error) {
	bin, err := c.bin("kubectl-argo-rollouts", "v1.9.1")
	if err != nil {
		return "", err
	}
	return c.run(ctx, "", bin, args...)
}

func (c *Cluster) run(ctx context.Context, stdin, bin string, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, append([]string{"--kubeconfig=" + c.Kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// resources maps the kinds the suite reads to their API paths.
var resources = map[string]string{
	"rollout":     "/apis/argoproj.io/v1alpha1/namespaces/%s/rollouts",
	"analysisrun": "/apis/argoproj.io/v1alpha1/namespaces/%s/analysisruns",
	"replicaset":  "/apis/apps/v1/namespaces/%s/replicasets",
	"service":     "/api/v1/namespaces/%s/services",
	"pod":         "/api/v1/namespaces/%s/pods",
	"node":        "/api/v1/nodes",
}

// GetJSON reads one object or a list straight from the API server (no kubectl process per poll): args are
// KIND [NAME] -n NS [-l SELECTOR], as for `kubectl get`.
func (c *Cluster) GetJSON(ctx context.Context, args ...string) (map[string]any, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("GetJSON: no kind")
	}
	tmpl, ok := resources[args[0]]
	if !ok {
		return nil, fmt.Errorf("GetJSON: unknown kind %q", args[0])
	}
	var name, ns, sel string
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "-n":
			i++
			ns = args[i]
		case "-l":
			i++
			sel = args[i]
		default:
			name = args[i]
		}
	}
	path := tmpl
	if strings.Contains(tmpl, "%s") {
		path = fmt.Sprintf(tmpl, ns)
	}
	if name != "" {
		path += "/" + name
	}
	if sel != "" {
		path += "?labelSelector=" + url.QueryEscape(sel)
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.APIServer+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.api.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

func (c *Cluster) waitFor(ctx context.Context, d time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(d)
	for {
		if ok() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s (logs in %s)", d, what, filepath.Join(c.Dir, "logs"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// InstallTemplates applies the ClusterAnalysisTemplates the way a user does (kubectl apply -k manifests/analysis),
// the suite's shortened copies (tests/go/e2e/overlay/analysis, names ending -e2e) and
// examples/guardrails/pod-health.yaml.
func (c *Cluster) InstallTemplates(ctx context.Context) error {
	for _, args := range [][]string{
		{"apply", "-k", filepath.Join(c.Root, "manifests", "analysis")},
		{"apply", "-k", filepath.Join(c.Root, "tests", "go", "e2e", "overlay", "analysis")},
		{"apply", "-f", filepath.Join(c.Root, "examples", "guardrails", "pod-health.yaml")},
	} {
		if _, err := c.Kubectl(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// Query runs an instant PromQL query against the suite's Prometheus and returns the raw JSON result.
func (c *Cluster) Query(ctx context.Context, q string) ([]map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.PromURL+"/api/v1/query", nil)
	if err != nil {
		return nil, err
	}
	v := req.URL.Query()
	v.Set("query", q)
	req.URL.RawQuery = v.Encode()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []map[string]any `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, body.Error)
	}
	return body.Data.Result, nil
}
