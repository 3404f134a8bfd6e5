package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/analysis"
	"github.com/argoproj/argo-rollouts/controller/metrics"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/pkg/client/clientset/versioned/fake"
	informers "github.com/argoproj/argo-rollouts/pkg/client/informers/externalversions"
	"github.com/argoproj/argo-rollouts/utils/config"
	"github.com/argoproj/argo-rollouts/utils/plugin"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
	"github.com/argoproj/argo-rollouts/utils/queue"
	"github.com/argoproj/argo-rollouts/utils/record"
	goPlugin "github.com/hashicorp/go-plugin"
	"github.com/rollouts-guardrails/conformance/harness"
	log "github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeinformers "k8s.io/client-go/informers"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/yaml"
)

const (
	// configMapName is the ConfigMap the controller reads its plugins from (argo's --configmap default).
	configMapName = "argo-rollouts-config"
	// controllerNamespace is where the controller looks for it: argo reads POD_NAMESPACE, set by the downward
	// API in a real install.
	controllerNamespace = "argo-rollouts"
	// shippedControllerConfig is the ConfigMap docs/installation.md has users apply.
	shippedControllerConfig = "manifests/controller/argo-rollouts-config.yaml"
	// analysisWorkers is the controller's --analysis-threads (argo's default is 30; 10 keep 2 cores usable).
	analysisWorkers = 10
)

// world is what TestMain sets up once for every test: the controller and the plugin it starts are
// process-wide in argo (config and plugin clients are singletons), exactly as in the real controller.
var world struct {
	bin      string
	repo     string
	fixture  string
	proxy    *prometheusProxy
	argo     *fake.Clientset
	observed *observer
	setupErr error
}

func TestMain(m *testing.M) {
	code := func() int {
		stop, err := setup()
		defer stop()
		if err != nil {
			world.setupErr = err
			fmt.Fprintf(os.Stderr, "reconciler setup failed: %v\n", err)
		}
		return m.Run()
	}()
	os.Exit(code)
}

// requireWorld fails t with the setup error, if any.
func requireWorld(t *testing.T) {
	t.Helper()
	if world.setupErr != nil {
		t.Fatalf("reconciler setup failed: %v", world.setupErr)
	}
}

// setup starts the fixture Prometheus behind a proxy, registers the plugin as the controller does and starts
// argo's analysis controller. The returned stop undoes everything that was started, also after an error.
func setup() (func(), error) {
	var undo []func()
	stop := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	fail := func(err error) (func(), error) { return stop, err }

	bin := os.Getenv("GUARDRAILS_BIN")
	if bin == "" {
		return fail(errors.New("GUARDRAILS_BIN is unset: point it at the rollouts-guardrails binary " +
			"(e.g. GUARDRAILS_BIN=$PWD/target/release/rollouts-guardrails tests/go/conformance/run.sh)"))
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return fail(err)
	}
	if st, err := os.Stat(bin); err != nil {
		return fail(fmt.Errorf("GUARDRAILS_BIN=%s: %w", bin, err))
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return fail(fmt.Errorf("GUARDRAILS_BIN=%s is not an executable file", bin))
	}
	world.bin = bin
	// Both are found relative to the working directory, which changes below.
	if world.repo, err = harness.FindRepoRoot(); err != nil {
		return fail(err)
	}
	if world.fixture, err = harness.FixturePath(); err != nil {
		return fail(err)
	}

	// Argo's logs (every reconcile at Info) would drown the test output; warnings and errors stay.
	log.SetLevel(log.WarnLevel)

	backend, err := harness.StartPrometheus(world.fixture, time.Now())
	if err != nil {
		return fail(err)
	}
	world.proxy, err = startPrometheusProxy(backend)
	if err != nil {
		backend.Stop()
		return fail(err)
	}
	undo = append(undo, world.proxy.Stop)

	// The controller-wide Prometheus, as manifests/controller/controller-patch.yaml sets it on the controller
	// container; go-plugin passes the controller's environment to the plugin process.
	os.Setenv("GUARDRAILS_PROMETHEUS_ADDRESS", world.proxy.URL)
	os.Setenv("POD_NAMESPACE", controllerNamespace)

	// plugin.DownloadPlugins installs into plugin-bin/ relative to the working directory, and the plugin
	// client finds it there: the test runs in a temp dir, as the controller runs in its own.
	workdir, err := os.MkdirTemp("", "guardrails-reconciler-")
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() { os.RemoveAll(workdir) })
	previous, err := os.Getwd()
	if err != nil {
		return fail(err)
	}
	if err := os.Chdir(workdir); err != nil {
		return fail(err)
	}
	undo = append(undo, func() { os.Chdir(previous) })

	cm, err := controllerConfigMap(bin, world.proxy.URL)
	if err != nil {
		return fail(err)
	}
	kube := k8sfake.NewSimpleClientset(cm)
	if _, err := config.InitializeConfig(kube, configMapName); err != nil {
		return fail(fmt.Errorf("config.InitializeConfig: %w", err))
	}
	undo = append(undo, config.UnInitializeConfig)
	if err := plugin.DownloadPlugins(plugin.FileDownloaderImpl{}, kube); err != nil {
		return fail(fmt.Errorf("plugin.DownloadPlugins: %w", err))
	}
	installed, _, err := plugin.GetPluginInfo(harness.PluginName, types.PluginTypeMetricProvider)
	if err != nil {
		return fail(err)
	}
	if !strings.HasPrefix(installed, workdir) {
		return fail(fmt.Errorf("plugin installed at %s, outside the controller's working directory %s", installed, workdir))
	}
	// argo's plugin clients are Managed: CleanupClients kills every plugin process the controller started.
	undo = append(undo, goPlugin.CleanupClients)

	world.argo = fake.NewSimpleClientset()
	argoInformers := informers.NewSharedInformerFactory(world.argo, 0)
	kubeInformers := kubeinformers.NewSharedInformerFactory(kube, 0)
	runs := argoInformers.Argoproj().V1alpha1().AnalysisRuns()
	work := workqueue.NewNamedRateLimitingQueue(queue.DefaultArgoRolloutsRateLimiter(), "AnalysisRuns")
	controller := analysis.NewController(analysis.ControllerConfig{
		KubeClientSet:        kube,
		ArgoProjClientset:    world.argo,
		AnalysisRunInformer:  runs,
		JobInformer:          kubeInformers.Batch().V1().Jobs(),
		ResyncPeriod:         0,
		AnalysisRunWorkQueue: work,
		MetricsServer: metrics.NewMetricsServer(metrics.ServerConfig{
			Addr:               "127.0.0.1:0", // never served: the test does not call ListenAndServe
			K8SRequestProvider: &metrics.K8sRequestsCountProvider{},
		}),
		Recorder: record.NewFakeEventRecorder(),
	})
	world.observed = newObserver()
	runs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    world.observed.record,
		UpdateFunc: func(_, obj any) { world.observed.record(obj) },
	})

	ctx, cancel := context.WithCancel(context.Background())
	argoInformers.Start(ctx.Done())
	kubeInformers.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), runs.Informer().HasSynced) {
		cancel()
		return fail(errors.New("the AnalysisRun informer never synced"))
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		controller.Run(ctx, analysisWorkers)
	}()
	undo = append(undo, func() {
		// The workers leave only when their queue shuts down (argo's controller manager does this on exit).
		cancel()
		work.ShutDown()
		<-stopped
		argoInformers.Shutdown()
		kubeInformers.Shutdown()
	})
	return stop, nil
}

// controllerConfigMap is the shipped argo-rollouts-config with its plugin location pointed at bin and its
// registration's `--address` at address, as a user sets them: decoded with Kubernetes' and argo's own types, so a
// change to the shipped plugin name or shape breaks this test.
func controllerConfigMap(bin, address string) (*corev1.ConfigMap, error) {
	raw, err := os.ReadFile(filepath.Join(world.repo, shippedControllerConfig))
	if err != nil {
		return nil, err
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", shippedControllerConfig, err)
	}
	var plugins []types.PluginItem
	if err := yaml.UnmarshalStrict([]byte(cm.Data["metricProviderPlugins"]), &plugins); err != nil {
		return nil, fmt.Errorf("%s: metricProviderPlugins: %w", shippedControllerConfig, err)
	}
	if len(plugins) != 1 || plugins[0].Name != harness.PluginName {
		return nil, fmt.Errorf("%s registers %+v, want exactly the plugin %s", shippedControllerConfig, plugins, harness.PluginName)
	}
	plugins[0].Location = "file://" + bin
	for i, arg := range plugins[0].Args {
		if strings.HasPrefix(arg, "--address=") {
			plugins[0].Args[i] = "--address=" + address
		}
	}
	out, err := yaml.Marshal(plugins)
	if err != nil {
		return nil, err
	}
	if cm.Name != configMapName {
		return nil, fmt.Errorf("%s is named %q, the controller reads %q", shippedControllerConfig, cm.Name, configMapName)
	}
	cm.Namespace = controllerNamespace
	cm.Data["metricProviderPlugins"] = string(out)
	return &cm, nil
}

// observation is one version of an AnalysisRun as the informer delivered it, and when.
type observation struct {
	at  time.Time
	run *v1alpha1.AnalysisRun
}

// observer keeps every version of every AnalysisRun the controller persisted: argo replaces an in-flight
// measurement in place, so its Running states are only visible in the history.
type observer struct {
	mu      sync.Mutex
	changed *sync.Cond
	history map[string][]observation
}

func newObserver() *observer {
	o := &observer{history: map[string][]observation{}}
	o.changed = sync.NewCond(&o.mu)
	return o
}

func (o *observer) record(obj any) {
	run, ok := obj.(*v1alpha1.AnalysisRun)
	if !ok {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	key := run.Namespace + "/" + run.Name
	o.history[key] = append(o.history[key], observation{at: time.Now(), run: run.DeepCopy()})
	o.changed.Broadcast()
}

// waitCompleted blocks until the AnalysisRun's phase is completed or deadline passes, and returns its history.
func (o *observer) waitCompleted(key string, deadline time.Time) ([]observation, bool) {
	timer := time.AfterFunc(time.Until(deadline), func() {
		o.mu.Lock()
		o.changed.Broadcast()
		o.mu.Unlock()
	})
	defer timer.Stop()
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		h := o.history[key]
		if len(h) > 0 && h[len(h)-1].run.Status.Phase.Completed() {
			return append([]observation(nil), h...), true
		}
		if !time.Now().Before(deadline) {
			return append([]observation(nil), h...), false
		}
		o.changed.Wait()
	}
}

// create submits run to the fake API server, as the rollout controller does.
func create(t *testing.T, run *v1alpha1.AnalysisRun) string {
	t.Helper()
	if _, err := world.argo.ArgoprojV1alpha1().AnalysisRuns(run.Namespace).Create(context.Background(), run, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create AnalysisRun %s/%s: %v", run.Namespace, run.Name, err)
	}
	return run.Namespace + "/" + run.Name
}
