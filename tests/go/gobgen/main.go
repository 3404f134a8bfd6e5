// Command gobgen writes golden gob vectors for the Rust codec, produced by Go's own encoding/gob, net/rpc and
// the real Argo Rollouts metric-plugin RPC types (argo-rollouts v1.9.1).
//
//	cd tests/go/gobgen && go run . ../../fixtures/gob
//
// See ../../fixtures/gob/README.md for what each file holds. The Rust→Go direction is checked by `go test` here
// (verify_test.go), which reads what `cargo test --test plugin gob_golden` writes to target/gob-out.
package main

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"time"

	argorpc "github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Point is the doc.go example type.
type Point struct{ X, Y int }

// P is a registered struct sent inside interface values.
type P struct {
	Name string
	N    int
}

func init() { gob.RegisterName("P", P{}) }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gobgen OUTDIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gobgen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Order matters: Go type ids are process-global, so point.bin (first) gets ids from 65 like a fresh process.
	steps := []struct {
		name string
		gen  func() ([]byte, error)
	}{
		{"point.bin", genPoint},
		{"singletons.bin", genSingletons},
		{"interface.bin", genInterface},
		{"measurements.bin", genMeasurements},
		{"run_args.bin", genRunArgs},
		{"big_run_args.bin", genBigRunArgs},
	}
	for _, s := range steps {
		b, err := s.gen()
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, s.name), b, 0o644); err != nil {
			return err
		}
	}
	ctlReq, ctlResp, err := genControlRPC()
	if err != nil {
		return fmt.Errorf("control rpc: %w", err)
	}
	plugReq, plugResp, err := genPluginRPC()
	if err != nil {
		return fmt.Errorf("plugin rpc: %w", err)
	}
	for name, b := range map[string][]byte{
		"control_requests.bin":  ctlReq,
		"control_responses.bin": ctlResp,
		"plugin_requests.bin":   plugReq,
		"plugin_responses.bin":  plugResp,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func encodeAll(values ...any) ([]byte, error) {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	for _, v := range values {
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

func genPoint() ([]byte, error) { return encodeAll(Point{22, 33}, Point{-1, 0}) }

func genSingletons() ([]byte, error) {
	return encodeAll(
		"hello",
		map[string]string{"k": "v", "prometheus": "up"},
		map[string]string{},
		int64(-129),
		uint32(300),
		true,
		17.0,
		[]byte{0, 1, 2, 255},
		[]string{"a", "", "c"},
		[2]int{7, 0},
		complex(1.5, -2),
		struct{}{},
	)
}

func genInterface() ([]byte, error) {
	var first, second, nilIface any = P{"first", 1}, P{"second", 0}, nil
	return encodeAll(&first, &second, &nilIface)
}

var (
	t2024    = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tStarted = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	tLocal   = time.Date(2025, 3, 14, 20, 39, 26, 0, time.FixedZone("IST", 5*3600+30*60))
	tOddZone = time.Date(2025, 3, 14, 16, 9, 33, 0, time.FixedZone("LMT", 3600+7))
)

func mtime(t time.Time) *metav1.Time { return &metav1.Time{Time: t} }

func genMeasurements() ([]byte, error) {
	return encodeAll(
		v1alpha1.Measurement{Phase: "Successful", StartedAt: mtime(t2024), Value: "42", Metadata: map[string]string{"k": "v"}},
		v1alpha1.Measurement{Phase: "Failed", Message: "restarts 3 > 0", StartedAt: mtime(tStarted), FinishedAt: mtime(tLocal),
			ResumeAt: mtime(tOddZone), Metadata: map[string]string{}},
		v1alpha1.Measurement{Phase: "Running"},
	)
}

func boolPtr(b bool) *bool                { return &b }
func strPtr(s string) *string             { return &s }
func intstrPtr(i int) *intstr.IntOrString { v := intstr.FromInt(i); return &v }

func sampleMetric() v1alpha1.Metric {
	return v1alpha1.Metric{
		Name:             "guardrails",
		Interval:         "30s",
		Count:            intstrPtr(5),
		FailureLimit:     intstrPtr(0),
		SuccessCondition: "result == true",
		Provider: v1alpha1.MetricProvider{
			Plugin: map[string]json.RawMessage{
				"argoproj-labs/rollouts-guardrails": json.RawMessage(`{"guardrails":["restarts","not-ready"],"prometheus":"http://prom:9090"}`),
			},
		},
	}
}

func sampleAnalysisRun(measurements int) *v1alpha1.AnalysisRun {
	ar := &v1alpha1.AnalysisRun{
		TypeMeta: metav1.TypeMeta{Kind: "AnalysisRun", APIVersion: "argoproj.io/v1alpha1"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              "web-7d9f-2",
			Namespace:         "prod",
			UID:               "6a3b1c2d-0000-4000-8000-000000000001",
			Generation:        2,
			CreationTimestamp: metav1.Time{Time: tLocal},
			Labels:            map[string]string{"rollouts-pod-template-hash": "7d9f", "app": "web"},
			Annotations:       map[string]string{"rollout.argoproj.io/revision": "4"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "web",
				UID: "6a3b1c2d-0000-4000-8000-000000000000", Controller: boolPtr(true), BlockOwnerDeletion: boolPtr(true),
			}},
		},
		Spec: v1alpha1.AnalysisRunSpec{
			Metrics: []v1alpha1.Metric{sampleMetric()},
			Args: []v1alpha1.Argument{
				{Name: "service", Value: strPtr("web")},
				{Name: "empty", Value: strPtr("")},
				{Name: "canary-hash", ValueFrom: &v1alpha1.ValueFrom{FieldRef: &v1alpha1.FieldRef{FieldPath: "metadata.labels['rollouts-pod-template-hash']"}}},
			},
		},
		Status: v1alpha1.AnalysisRunStatus{
			Phase:     "Running",
			StartedAt: mtime(tStarted),
		},
	}
	if measurements > 0 {
		res := v1alpha1.MetricResult{Name: "guardrails", Phase: "Running", Count: int32(measurements)}
		for i := 0; i < measurements; i++ {
			at := t2024.Add(time.Duration(i) * 30 * time.Second)
			res.Measurements = append(res.Measurements, v1alpha1.Measurement{
				Phase: "Successful", Value: fmt.Sprint(i), StartedAt: mtime(at), FinishedAt: mtime(at.Add(time.Second)),
				Metadata: map[string]string{"query": "sum(kube_pod_container_status_restarts_total)"},
			})
		}
		ar.Status.MetricResults = []v1alpha1.MetricResult{res}
	}
	return ar
}

// genRunArgs encodes RunArgs exactly as MetricsPluginRPC.Run does (`var args any = RunArgs{…}; Encode(&args)`),
// twice on one stream: the first value carries every definition inside the interface (gob.md §4.2).
func genRunArgs() ([]byte, error) {
	var first any = argorpc.RunArgs{AnalysisRun: sampleAnalysisRun(2), Metric: sampleMetric()}
	var second any = argorpc.RunArgs{AnalysisRun: sampleAnalysisRun(0), Metric: sampleMetric()}
	return encodeAll(&first, &second)
}

func genBigRunArgs() ([]byte, error) {
	var args any = argorpc.RunArgs{AnalysisRun: sampleAnalysisRun(5000), Metric: sampleMetric()}
	return encodeAll(&args)
}

// tee records what one side of a connection writes and reads.
type tee struct {
	net.Conn
	wrote, read bytes.Buffer
}

func (t *tee) Write(b []byte) (int, error) { t.wrote.Write(b); return t.Conn.Write(b) }
func (t *tee) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	t.read.Write(b[:n])
	return n, err
}

// serve runs a net/rpc server on one end of a pipe and returns a client on the other, teed.
func serve(register func(*rpc.Server) error) (*rpc.Client, *tee, error) {
	srv := rpc.NewServer()
	if err := register(srv); err != nil {
		return nil, nil, err
	}
	clientEnd, serverEnd := net.Pipe()
	go srv.ServeConn(serverEnd)
	t := &tee{Conn: clientEnd}
	return rpc.NewClient(t), t, nil
}

// Control and Dispenser mirror go-plugin's control-stream services (rpc_server.go) in shape.
type Control struct{}

func (Control) Ping(null bool, resp *struct{}) error { *resp = struct{}{}; return nil }

type Dispenser struct{}

func (Dispenser) Dispense(name string, id *uint32) error {
	if name != "RpcMetricProviderPlugin" {
		return fmt.Errorf("unknown plugin type: %s", name)
	}
	*id = 1
	return nil
}

func genControlRPC() ([]byte, []byte, error) {
	client, t, err := serve(func(s *rpc.Server) error {
		return errors.Join(s.RegisterName("Control", Control{}), s.RegisterName("Dispenser", Dispenser{}))
	})
	if err != nil {
		return nil, nil, err
	}
	var empty struct{}
	var id uint32
	if err := client.Call("Control.Ping", true, &empty); err != nil {
		return nil, nil, err
	}
	if err := client.Call("Dispenser.Dispense", "RpcMetricProviderPlugin", &id); err != nil || id != 1 {
		return nil, nil, fmt.Errorf("dispense: %v %d", err, id)
	}
	if err := client.Call("Dispenser.Dispense", "nope", &id); err == nil {
		return nil, nil, errors.New("dispense of unknown plugin succeeded")
	}
	if err := client.Call("Control.Ping", false, &empty); err != nil {
		return nil, nil, err
	}
	client.Close()
	return t.wrote.Bytes(), t.read.Bytes(), nil
}

// fakePlugin answers like a real metric plugin would.
type fakePlugin struct{}

func (fakePlugin) InitPlugin() types.RpcError { return types.RpcError{} }
func (fakePlugin) Run(ar *v1alpha1.AnalysisRun, m v1alpha1.Metric) v1alpha1.Measurement {
	return v1alpha1.Measurement{Phase: "Successful", StartedAt: mtime(tStarted), FinishedAt: mtime(tStarted.Add(time.Second)),
		Value: "0", Metadata: map[string]string{"namespace": ar.Namespace}}
}
func (fakePlugin) Resume(ar *v1alpha1.AnalysisRun, m v1alpha1.Metric, ms v1alpha1.Measurement) v1alpha1.Measurement {
	return ms
}
func (fakePlugin) Terminate(ar *v1alpha1.AnalysisRun, m v1alpha1.Metric, ms v1alpha1.Measurement) v1alpha1.Measurement {
	ms.Phase = "Successful"
	ms.FinishedAt = mtime(t2024)
	return ms
}
func (fakePlugin) GarbageCollect(*v1alpha1.AnalysisRun, v1alpha1.Metric, int) types.RpcError {
	return types.RpcError{ErrorString: "garbage collection failed"}
}
func (fakePlugin) Type() string { return "RpcMetricProviderPlugin" }
func (fakePlugin) GetMetadata(m v1alpha1.Metric) map[string]string {
	return map[string]string{"metric": m.Name}
}

// genPluginRPC drives the real Argo client (MetricsPluginRPC) against the real Argo server (MetricsRPCServer)
// and records both directions: what the controller sends a plugin and what a Go plugin replies.
func genPluginRPC() ([]byte, []byte, error) {
	plugin := &argorpc.RpcMetricProviderPlugin{Impl: fakePlugin{}}
	server, err := plugin.Server(nil)
	if err != nil {
		return nil, nil, err
	}
	client, t, err := serve(func(s *rpc.Server) error { return s.RegisterName("Plugin", server) })
	if err != nil {
		return nil, nil, err
	}
	raw, err := plugin.Client(nil, client)
	if err != nil {
		return nil, nil, err
	}
	p := raw.(argorpc.MetricProviderPlugin)
	ar, m := sampleAnalysisRun(2), sampleMetric()
	if e := p.InitPlugin(); e.Error() != "" {
		return nil, nil, e
	}
	first := p.Run(ar, m)
	second := p.Run(ar, m)
	resumed := p.Resume(ar, m, first)
	terminated := p.Terminate(ar, m, second)
	gc := p.GarbageCollect(ar, m, 10)
	typ := p.Type()
	meta := p.GetMetadata(m)
	if first.Phase != "Successful" || resumed.Value != "0" || terminated.FinishedAt == nil ||
		gc.ErrorString == "" || typ != "RpcMetricProviderPlugin" || meta["metric"] != "guardrails" {
		return nil, nil, fmt.Errorf("unexpected replies: %+v %+v %+v %+v %q %v", first, resumed, terminated, gc, typ, meta)
	}
	client.Close()
	return t.wrote.Bytes(), t.read.Bytes(), nil
}
