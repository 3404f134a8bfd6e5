// Package peer drives the rollouts-guardrails binary with the real Go peers: hashicorp/go-plugin's client
// (as the Argo Rollouts controller configures it) and hashicorp/yamux directly. The Rust integration test
// tests/plugin/plugin_transport.rs runs `go test` here with PLUGIN_BIN set to the binary.
package peer

import (
	"encoding/gob"
	"encoding/json"
	"net/rpc"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
)

// Mirrors of the argo-rollouts types the controller sends (same gob names and field names; a subset of
// the fields, which gob matches by name).

// Time mirrors metav1.Time: a struct embedding time.Time, so it is a GobEncoder.
type Time struct{ time.Time }

type OwnerReference struct {
	APIVersion string
	Kind       string
	Name       string
	UID        string
	Controller *bool
}

type ObjectMeta struct {
	Name              string
	Namespace         string
	UID               string
	CreationTimestamp Time
	Labels            map[string]string
	Annotations       map[string]string
	OwnerReferences   []OwnerReference
}

type Argument struct {
	Name  string
	Value *string
}

type AnalysisRunSpec struct {
	Args []Argument
}

type AnalysisRun struct {
	ObjectMeta ObjectMeta
	Spec       AnalysisRunSpec
}

type MetricProvider struct {
	Plugin map[string]json.RawMessage
}

type Metric struct {
	Name             string
	SuccessCondition string
	FailureCondition string
	Provider         MetricProvider
}

type Measurement struct {
	Phase      string
	Message    string
	StartedAt  *Time
	FinishedAt *Time
	Value      string
	Metadata   map[string]string
	ResumeAt   *Time
}

type RunArgs struct {
	AnalysisRun *AnalysisRun
	Metric      Metric
}

type TerminateAndResumeArgs struct {
	AnalysisRun *AnalysisRun
	Metric      Metric
	Measurement Measurement
}

type GarbageCollectArgs struct {
	AnalysisRun *AnalysisRun
	Metric      Metric
	Limit       int
}

type GetMetadataArgs struct {
	Metric Metric
}

type RpcError struct {
	ErrorString string
}

func init() {
	// The names argo-rollouts registers (metricproviders/plugin/rpc/rpc.go, utils/plugin/types).
	gob.RegisterName("RunArgs", new(RunArgs))
	gob.RegisterName("TerminateAndResumeArgs", new(TerminateAndResumeArgs))
	gob.RegisterName("GarbageCollectArgs", new(GarbageCollectArgs))
	gob.RegisterName("GetMetadataArgs", new(GetMetadataArgs))
	gob.RegisterName("RpcError", new(RpcError))
}

// handshake is Argo's go-plugin handshake for metric providers.
var handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "ARGO_ROLLOUTS_RPC_PLUGIN",
	MagicCookieValue: "metricprovider",
}

// metricPlugin is the host side of "RpcMetricProviderPlugin": it hands back the raw *rpc.Client.
type metricPlugin struct{}

func (metricPlugin) Server(*goplugin.MuxBroker) (interface{}, error) { return nil, nil }
func (metricPlugin) Client(_ *goplugin.MuxBroker, c *rpc.Client) (interface{}, error) {
	return c, nil
}

const pluginName = "rollouts-guardrails/prometheus"

func sampleRunArgs(labelBytes int) RunArgs {
	svc := "cart"
	yes := true
	labels := map[string]string{"app": "cart"}
	if labelBytes > 0 {
		big := make([]byte, labelBytes)
		for i := range big {
			big[i] = 'a' + byte(i%26)
		}
		labels["big"] = string(big)
	}
	return RunArgs{
		AnalysisRun: &AnalysisRun{
			ObjectMeta: ObjectMeta{
				Name: "run-1", Namespace: "shop", UID: "u-1",
				CreationTimestamp: Time{time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
				Labels:            labels,
				OwnerReferences:   []OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "cart", UID: "r-1", Controller: &yes}},
			},
			Spec: AnalysisRunSpec{Args: []Argument{{Name: "service", Value: &svc}, {Name: "from-secret"}}},
		},
		Metric: Metric{
			Name:             "guard",
			SuccessCondition: "result == true",
			Provider:         MetricProvider{Plugin: map[string]json.RawMessage{pluginName: json.RawMessage(`{"guardrail":"restarts"}`)}},
		},
	}
}
