package main

// Rust→Go check: the reply stream written by `cargo test --test plugin gob_golden` (target/gob-out/plugin_replies,
// or $GOB_OUT/plugin_replies) is fed to Go's real net/rpc client, which decodes each reply into the real
// Argo Rollouts types exactly as the controller's MetricsPluginRPC does.

import (
	"io"
	"net/rpc"
	"os"
	"path/filepath"
	"testing"
	"time"

	argorpc "github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
)

// replayConn hands the client the Rust replies; requests are discarded.
type replayConn struct{ *io.PipeReader }

func (replayConn) Write(b []byte) (int, error) { return len(b), nil }

func TestRustRepliesDecodeIntoArgoTypes(t *testing.T) {
	dir := os.Getenv("GOB_OUT")
	if dir == "" {
		dir = "../../../target/gob-out"
	}
	chunks, err := filepath.Glob(filepath.Join(dir, "plugin_replies", "*.bin"))
	if err != nil || len(chunks) != 8 {
		t.Fatalf("want 8 reply chunks in %s (run `cargo test --test plugin gob_golden` first), got %d (%v)", dir, len(chunks), err)
	}
	pr, pw := io.Pipe()
	client := rpc.NewClient(replayConn{pr})
	defer client.Close()

	var (
		initErr, gcErr types.RpcError
		run, resume    v1alpha1.Measurement
		typ            string
		meta, empty    map[string]string
		nope           struct{}
	)
	ar := &v1alpha1.AnalysisRun{}
	calls := []struct {
		method string
		args   any
		reply  any
	}{
		{"Plugin.InitPlugin", nil, &initErr},
		{"Plugin.Run", argorpc.RunArgs{AnalysisRun: ar}, &run},
		{"Plugin.Resume", argorpc.TerminateAndResumeArgs{AnalysisRun: ar}, &resume},
		{"Plugin.GarbageCollect", argorpc.GarbageCollectArgs{AnalysisRun: ar}, &gcErr},
		{"Plugin.Type", nil, &typ},
		{"Plugin.GetMetadata", argorpc.GetMetadataArgs{}, &meta},
		{"Plugin.GetMetadata", argorpc.GetMetadataArgs{}, &empty},
		{"Plugin.Nope", nil, &nope},
	}
	for i, c := range calls {
		args := c.args
		// Registers the pending call (Seq i) before its reply can be read.
		call := client.Go(c.method, &args, c.reply, nil)
		chunk, err := os.ReadFile(chunks[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pw.Write(chunk); err != nil {
			t.Fatal(err)
		}
		select {
		case <-call.Done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no reply decoded", c.method)
		}
		if c.method == "Plugin.Nope" {
			if call.Error == nil || call.Error.Error() != "rpc: can't find method Plugin.Nope" {
				t.Errorf("error reply: got %v", call.Error)
			}
		} else if call.Error != nil {
			t.Fatalf("%s: %v", c.method, call.Error)
		}
	}

	started := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	if initErr.ErrorString != "" || gcErr.ErrorString != "gc failed" {
		t.Errorf("RpcError replies: %+v %+v", initErr, gcErr)
	}
	if run.Phase != v1alpha1.AnalysisPhaseSuccessful || run.Value != "0" || run.StartedAt == nil ||
		!run.StartedAt.Time.Equal(started) || run.FinishedAt == nil || !run.FinishedAt.Time.Equal(started.Add(time.Second-535897932)) ||
		run.Metadata["namespace"] != "prod" || run.Metadata["guardrail"] != "restarts" || run.ResumeAt != nil {
		t.Errorf("Run reply: %+v", run)
	}
	if resume.Phase != v1alpha1.AnalysisPhaseFailed || resume.Message != "no data for pod web-1" || resume.StartedAt != nil ||
		resume.Metadata == nil || len(resume.Metadata) != 0 || resume.ResumeAt == nil ||
		!resume.ResumeAt.Time.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Resume reply: %+v", resume)
	}
	if typ != "RpcMetricProviderPlugin" || meta["metric"] != "guardrails" || len(meta) != 1 || empty == nil || len(empty) != 0 {
		t.Errorf("Type/GetMetadata replies: %q %v %v", typ, meta, empty)
	}
}
