package harness

// The hostile-template suite through plugin mode (docs/security.md): the plugin started the way
// argo-rollouts' controller starts it, with the registration `args` read by argo-rollouts' own code from an
// argo-rollouts-config ConfigMap, and AnalysisTemplates a tenant could write. Every refusal has a positive
// control beside it, so the suite can fail.

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/config"
	argoplugin "github.com/argoproj/argo-rollouts/utils/plugin"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

const (
	controllerToken = "ctl-TOKEN-conformance-51e0"
	fileSecret      = "FILE-CONTENT-MARKER-conformance-2b7d"
	bodyMarker      = "BODY-MARKER-conformance-c3a9"
)

// RegistrationArgs is what argo-rollouts' controller passes as the plugin's argv for a metricProviderPlugins
// entry: utils/config.InitializeConfig reads the ConfigMap, utils/plugin.GetPluginInfo returns the entry's
// args, and metricproviders/plugin/client.startPluginSystem runs exec.Command(pluginPath, args...).
func RegistrationArgs(t *testing.T, entryYAML string) []string {
	t.Helper()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "argo-rollouts-config", Namespace: "argo-rollouts"},
		Data:       map[string]string{"metricProviderPlugins": entryYAML},
	}
	config.UnInitializeConfig()
	t.Cleanup(config.UnInitializeConfig)
	t.Setenv("POD_NAMESPACE", "argo-rollouts")
	if _, err := config.InitializeConfig(fake.NewSimpleClientset(cm), "argo-rollouts-config"); err != nil {
		t.Fatalf("argo-rollouts rejects the registration: %v", err)
	}
	_, args, err := argoplugin.GetPluginInfo(PluginName, types.PluginTypeMetricProvider)
	if err != nil {
		t.Fatalf("argo-rollouts GetPluginInfo: %v", err)
	}
	return args
}

// echoServer answers every request with reply and records each request's credentials.
type echoServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func newEcho(t *testing.T, reply func(w http.ResponseWriter)) *echoServer {
	e := &echoServer{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		e.mu.Lock()
		e.seen = append(e.seen, r.Header.Clone())
		e.mu.Unlock()
		reply(w)
	}))
	t.Cleanup(e.Close)
	return e
}

func emptyVector(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
}

func (e *echoServer) requests() []http.Header {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]http.Header(nil), e.seen...)
}

func startWith(t *testing.T, args []string) *Plugin {
	t.Helper()
	bin, _ := requireEnv(t)
	p, err := Start(bin, Options{Args: args})
	if err != nil {
		t.Fatalf("start with args %q: %v", args, err)
	}
	t.Cleanup(p.Kill)
	return p
}

func restartsAt(extra map[string]any) v1alpha1.Metric {
	c := map[string]any{"guardrail": "restarts", "timeout": "5s"}
	for k, v := range extra {
		c[k] = v
	}
	return NewMetric("restarts", c)
}

// wantConfigFailure checks a refusal: Failed, failure class config, each of wants in the message, and none of
// forbidden anywhere in the measurement or the plugin's log.
func wantConfigFailure(t *testing.T, p *Plugin, m v1alpha1.Measurement, wants []string, forbidden ...string) {
	t.Helper()
	if m.Phase != failed || m.Metadata["failure"] != "config" {
		t.Errorf("want Failed (config), got %s", describe(m))
	}
	for _, w := range wants {
		if !strings.Contains(m.Message, w) {
			t.Errorf("message %q lacks %q", m.Message, w)
		}
	}
	for _, f := range forbidden {
		if strings.Contains(describe(m), f) || strings.Contains(p.Logs(), f) {
			t.Errorf("%q reached the measurement or the log", f)
		}
	}
}

func testSecurity(t *testing.T) {
	_, prom := requireEnv(t)

	t.Run("RegistrationArgsReachThePlugin", func(t *testing.T) {
		args := RegistrationArgs(t, fmt.Sprintf(`
- name: %q
  location: "file://./rollouts-guardrails"
  args:
    - "--address=%s"
    - "--allow-cross-namespace"
`, PluginName, prom.URL))
		if len(args) != 2 {
			t.Fatalf("argo-rollouts returned args %q", args)
		}
		p := startWith(t, args)
		// The address comes from the args only (the environment has none): the measurement proves they arrived.
		runChecked(t, p, NewAnalysisRun(PayAPI, "args"), NewMetric("restarts", map[string]any{"guardrail": "restarts"}),
			Want{Phase: failed, Value: "3", Target: PayAPI, Prometheus: prom.URL})
		// --allow-cross-namespace arrived too.
		runChecked(t, p, NewAnalysisRun(ShopWeb, "args-cross"), NewMetric("restarts", ExplicitTargetConfig(prom.URL, "restarts", PayAPI)),
			Want{Phase: failed, Value: "3", Target: PayAPI, Prometheus: prom.URL})
	})

	t.Run("InvalidArgsFailEveryMeasurement", func(t *testing.T) {
		args := RegistrationArgs(t, fmt.Sprintf(`
- name: %q
  location: "file://./rollouts-guardrails"
  args: ["--adress=%s"]
`, PluginName, prom.URL))
		p := startWith(t, args) // handshake and InitPlugin succeed: the plugin never exits on bad args
		m := p.Provider.Run(NewAnalysisRun(ShopWeb, "bad-args"), NewMetric("restarts", GuardrailConfig(prom.URL, "restarts")))
		wantConfigFailure(t, p, m, []string{"'--adress'", "'--address'"})
		if !strings.Contains(p.Logs(), "controller-side settings are invalid") {
			t.Errorf("the plugin did not log the bad args:\n%s", p.Logs())
		}
	})

	t.Run("TemplateFilesOutsideCredentialsDir", func(t *testing.T) {
		root := t.TempDir()
		creds := filepath.Join(root, "creds")
		must(t, os.MkdirAll(creds, 0o755))
		outside := filepath.Join(root, "outside")
		must(t, os.WriteFile(outside, []byte(fileSecret), 0o600))
		must(t, os.Symlink(outside, filepath.Join(creds, "escape")))
		inside := filepath.Join(creds, "token")
		must(t, os.WriteFile(inside, []byte("tenant-token-inside\n"), 0o600))
		tenant := newEcho(t, emptyVector)
		ar := NewAnalysisRun(ShopWeb, "files")

		none := startWith(t, nil)
		for key, extra := range map[string]map[string]any{
			"bearerTokenFile":        {"bearerTokenFile": outside},
			"basicAuth.passwordFile": {"basicAuth": map[string]any{"username": "u", "passwordFile": outside}},
			"tls.caFile":             {"tls": map[string]any{"caFile": outside}},
		} {
			extra["address"] = tenant.URL
			m := none.Provider.Run(ar, restartsAt(extra))
			wantConfigFailure(t, none, m, []string{key, "--credentials-dir", "none is registered"}, fileSecret)
		}
		for _, sa := range []string{"/var/run/secrets/kubernetes.io/serviceaccount/token", "/run/secrets/kubernetes.io/serviceaccount/token"} {
			m := none.Provider.Run(ar, restartsAt(map[string]any{"address": tenant.URL, "bearerTokenFile": sa}))
			wantConfigFailure(t, none, m, []string{"bearerTokenFile"})
		}

		withDir := startWith(t, []string{"--credentials-dir=" + creds})
		for _, path := range []string{filepath.Join(creds, "..", "outside"), filepath.Join(creds, "escape"), outside} {
			m := withDir.Provider.Run(ar, restartsAt(map[string]any{"address": tenant.URL, "bearerTokenFile": path}))
			wantConfigFailure(t, withDir, m, []string{"bearerTokenFile", "is not inside a --credentials-dir"}, fileSecret)
		}
		if n := len(tenant.requests()); n != 0 {
			t.Fatalf("refused templates sent %d requests", n)
		}
		// Positive control: a file inside the credentials directory is sent.
		withDir.Provider.Run(ar, restartsAt(map[string]any{"address": tenant.URL, "bearerTokenFile": inside}))
		got := tenant.requests()
		if len(got) == 0 || got[0].Get("Authorization") != "Bearer tenant-token-inside" {
			t.Errorf("the allowed file was not sent: %v", got)
		}
	})

	t.Run("ServiceAccountDirNeverACredentialsDir", func(t *testing.T) {
		p := startWith(t, []string{"--credentials-dir=/var/run/secrets/kubernetes.io/serviceaccount"})
		m := p.Provider.Run(NewAnalysisRun(ShopWeb, "sa"), NewMetric("restarts", GuardrailConfig(prom.URL, "restarts")))
		wantConfigFailure(t, p, m, []string{"service-account"})
	})

	t.Run("ControllerCredentialsOnlyToControllerAddress", func(t *testing.T) {
		dir := t.TempDir()
		token := filepath.Join(dir, "token")
		must(t, os.WriteFile(token, []byte(controllerToken), 0o600))
		password := filepath.Join(dir, "password")
		must(t, os.WriteFile(password, []byte(controllerToken+"-pw"), 0o600))
		controller := newEcho(t, emptyVector)
		tenant := newEcho(t, emptyVector)
		ar := NewAnalysisRun(ShopWeb, "creds")
		for _, args := range [][]string{
			{"--address=" + controller.URL, "--bearer-token-file=" + token, "--tenant=org-admin"},
			{"--address", controller.URL, "--basic-auth-username", "ctl", "--basic-auth-password-file", password},
		} {
			p := startWith(t, args)
			p.Provider.Run(ar, restartsAt(map[string]any{"address": tenant.URL}))
			p.Provider.Run(ar, restartsAt(map[string]any{"address": tenant.URL + "/prometheus"}))
			p.Provider.Run(ar, restartsAt(nil)) // positive control: the controller's address
			m := p.Provider.Run(ar, restartsAt(map[string]any{"tenant": "org-other"}))
			if args[2] == "--tenant=org-admin" {
				wantConfigFailure(t, p, m, []string{"--tenant"})
			}
		}
		hostile := tenant.requests()
		if len(hostile) == 0 {
			t.Fatal("the template's server was never asked")
		}
		for _, h := range hostile {
			if h.Get("Authorization") != "" || h.Get("X-Scope-OrgID") != "" {
				t.Errorf("controller credentials reached the template's address: %v", h)
			}
		}
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("ctl:"+controllerToken+"-pw"))
		var bearerSeen, basicSeen, tenantSeen bool
		for _, h := range controller.requests() {
			bearerSeen = bearerSeen || h.Get("Authorization") == "Bearer "+controllerToken
			basicSeen = basicSeen || h.Get("Authorization") == basic
			tenantSeen = tenantSeen || h.Get("X-Scope-OrgID") == "org-admin"
		}
		if !bearerSeen || !basicSeen || !tenantSeen {
			t.Errorf("the controller's address did not get its credentials: bearer %v basic %v tenant %v", bearerSeen, basicSeen, tenantSeen)
		}
	})

	t.Run("AllowedAddressPrefixes", func(t *testing.T) {
		allowed := newEcho(t, emptyVector)
		other := newEcho(t, emptyVector)
		p := startWith(t, []string{"--allowed-address=" + allowed.URL + "/mimir"})
		ar := NewAnalysisRun(ShopWeb, "allowed")
		for _, address := range []string{other.URL, allowed.URL + "/mimir-other", allowed.URL} {
			m := p.Provider.Run(ar, restartsAt(map[string]any{"address": address}))
			wantConfigFailure(t, p, m, []string{"outside every --allowed-address"})
		}
		p.Provider.Run(ar, restartsAt(map[string]any{"address": allowed.URL + "/mimir/"}))
		if len(other.requests()) != 0 || len(allowed.requests()) == 0 {
			t.Errorf("requests: other %d, allowed %d (want 0, at least 1)", len(other.requests()), len(allowed.requests()))
		}
	})

	t.Run("RedirectNotFollowed", func(t *testing.T) {
		elsewhere := newEcho(t, emptyVector)
		redirector := newEcho(t, func(w http.ResponseWriter) {
			w.Header().Set("Location", elsewhere.URL+"/api/v1/query")
			w.WriteHeader(http.StatusTemporaryRedirect)
		})
		token := filepath.Join(t.TempDir(), "token")
		must(t, os.WriteFile(token, []byte(controllerToken), 0o600))
		p := startWith(t, []string{"--address=" + redirector.URL, "--bearer-token-file=" + token})
		m := p.Provider.Run(NewAnalysisRun(ShopWeb, "redirect"), restartsAt(nil))
		if m.Phase != failed || !strings.Contains(m.Message, "redirects are not followed") {
			t.Errorf("got %s", describe(m))
		}
		if strings.Contains(describe(m), strings.TrimPrefix(elsewhere.URL, "http://")) {
			t.Errorf("the redirect's target reached the measurement: %s", describe(m))
		}
		if len(elsewhere.requests()) != 0 {
			t.Errorf("the redirect was followed")
		}
		if got := redirector.requests(); len(got) == 0 || got[0].Get("Authorization") != "Bearer "+controllerToken {
			t.Errorf("positive control: the redirector did not get the token: %v", got)
		}
	})

	t.Run("ForeignBodiesNeverShown", func(t *testing.T) {
		p := startWith(t, nil)
		pages := map[string]func(w http.ResponseWriter){
			"html 200": func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_, _ = io.WriteString(w, "<html><body>"+bodyMarker+" instance-id</body></html>")
			},
			"text 200": func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = io.WriteString(w, bodyMarker+" ami-id\nhostname\n")
			},
			"text 500": func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, bodyMarker)
			},
			"json of another API": func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"AccessKeyId":"`+bodyMarker+`","status":"`+bodyMarker+`"}`)
			},
		}
		for name, page := range pages {
			server := newEcho(t, page)
			m := p.Provider.Run(NewAnalysisRun(ShopWeb, "body"), restartsAt(map[string]any{"address": server.URL}))
			if m.Phase != failed || !strings.Contains(m.Message, "not a Prometheus API answer") {
				t.Errorf("%s: got %s", name, describe(m))
			}
			if strings.Contains(describe(m), bodyMarker) {
				t.Errorf("%s: the body reached the measurement: %s", name, describe(m))
			}
		}
		if strings.Contains(p.Logs(), bodyMarker) {
			t.Errorf("a body reached the plugin's log")
		}
		if !strings.Contains(p.Logs(), "not a Prometheus API answer") {
			t.Errorf("the log check proves nothing: no measurement was logged")
		}
	})

	t.Run("OwnNamespaceOnly", func(t *testing.T) {
		p := startWith(t, nil)
		m := p.Provider.Run(NewAnalysisRun(ShopWeb, "ns"), NewMetric("restarts", ExplicitTargetConfig(prom.URL, "restarts", PayAPI)))
		wantConfigFailure(t, p, m, []string{"`pay`", "`shop`", "--allow-cross-namespace"})
		// Positive control: the own namespace, spelled out.
		runChecked(t, p, NewAnalysisRun(PayAPI, "ns-own"), NewMetric("restarts", ExplicitTargetConfig(prom.URL, "restarts", PayAPI)),
			Want{Phase: failed, Value: "3", Target: PayAPI, Prometheus: prom.URL})
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
