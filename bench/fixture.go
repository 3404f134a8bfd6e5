package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// fixtureVersion changes whenever the rendering below changes, so that a cached fixture of another shape is
// never reused.
const fixtureVersion = 2

// FixtureParams describe the controller-scale fixture: Rollouts canaries, BigNamespace of them in one
// namespace (team-000: our kube-state-metrics queries select by namespace, so its size is their cost) and the
// others spread evenly over the other Namespaces - 1, each with PodsPerRollout healthy pods of one container,
// every series sampled every Step from Before the generation instant to After it. Every parameter is part of
// the cache key.
type FixtureParams struct {
	Rollouts       int           `json:"rollouts"`
	Namespaces     int           `json:"namespaces"`
	BigNamespace   int           `json:"big_namespace"`
	PodsPerRollout int           `json:"pods_per_rollout"`
	Step           time.Duration `json:"step"`
	Before         time.Duration `json:"before"`
	After          time.Duration `json:"after"`
	Version        int           `json:"version"`
}

// Canary is one rollout of the fixture: the target an AnalysisRun names.
type Canary struct {
	Namespace, Rollout, Hash string
}

// ReplicaSet is `<rollout>-<hash>`.
func (c Canary) ReplicaSet() string { return c.Rollout + "-" + c.Hash }

// Canaries lists the fixture's rollouts in a fixed order: the first BigNamespace in team-000, rollout i after
// them in team-(1 + i % (Namespaces − 1)).
func (p FixtureParams) Canaries() []Canary {
	out := make([]Canary, p.Rollouts)
	for i := range out {
		ns := 0
		if i >= p.BigNamespace && p.Namespaces > 1 {
			ns = 1 + (i-p.BigNamespace)%(p.Namespaces-1)
		}
		out[i] = Canary{
			Namespace: fmt.Sprintf("team-%03d", ns),
			Rollout:   fmt.Sprintf("svc-%04d", i),
			Hash:      podTemplateHash(i),
		}
	}
	return out
}

// RolloutsIn is how many canaries namespace holds.
func (p FixtureParams) RolloutsIn(namespace string) int {
	n := 0
	for _, c := range p.Canaries() {
		if c.Namespace == namespace {
			n++
		}
	}
	return n
}

// Fixture is a cached TSDB (blocks written by promtool) holding the fixture's samples from Start to End.
type Fixture struct {
	Params     FixtureParams `json:"params"`
	Start, End time.Time
	// Blocks is the TSDB directory promtool wrote.
	Blocks string `json:"-"`
	// Series and Samples are what was rendered; GenerateSeconds how long rendering and promtool took.
	Series          int     `json:"series"`
	Samples         int     `json:"samples"`
	GenerateSeconds float64 `json:"generate_seconds"`
	// Cached says the blocks were reused from an earlier run.
	Cached bool `json:"cached"`
}

// key is the cache key of p: a digest of every parameter.
func (p FixtureParams) key() string {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// loadFixture returns the cached fixture of p under dir if its samples stay fresh until needUntil, else renders
// it anew (OpenMetrics text, then promtool tsdb create-blocks-from openmetrics, the text removed afterwards).
func loadFixture(dir string, p FixtureParams, needUntil time.Time) (*Fixture, error) {
	home := filepath.Join(dir, "scale-fixture-"+p.key())
	meta := filepath.Join(home, "fixture.json")
	if b, err := os.ReadFile(meta); err == nil {
		var f Fixture
		if json.Unmarshal(b, &f) == nil && f.Params == p && f.End.After(needUntil) && f.Start.Before(time.Now().Add(-p.Before/2)) {
			f.Blocks, f.Cached = filepath.Join(home, "blocks"), true
			return &f, nil
		}
	}
	// Fixtures of other parameters, or stale ones, are removed: disk is short.
	stale, _ := filepath.Glob(filepath.Join(dir, "scale-fixture-*"))
	for _, old := range stale {
		if err := os.RemoveAll(old); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	t0 := time.Now()
	f := &Fixture{Params: p, Start: t0.Add(-p.Before).Truncate(p.Step), End: t0.Add(p.After).Truncate(p.Step)}
	text := filepath.Join(home, "fixture.om")
	if err := f.render(text); err != nil {
		return nil, fmt.Errorf("render %s: %w", text, err)
	}
	f.Blocks = filepath.Join(home, "blocks")
	if out, err := exec.Command("promtool", "tsdb", "create-blocks-from", "openmetrics", text, f.Blocks).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("promtool tsdb create-blocks-from openmetrics: %w\n%s", err, lastLines(out, 20))
	}
	if err := os.Remove(text); err != nil {
		return nil, err
	}
	f.GenerateSeconds = time.Since(t0).Seconds()
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return f, os.WriteFile(meta, b, 0o644)
}

// family is one kube-state-metrics metric family: its TYPE, HELP and how to render each pod's series.
type family struct {
	name, typ, help string
	// series are the label sets (inside the braces) and constant values of pod's series.
	series func(pod fixturePod) []fixtureSeries
}

type fixtureSeries struct {
	labels string
	value  string
}

// fixturePod is one pod of a canary.
type fixturePod struct {
	canary Canary
	name   string
	uid    string
	index  int
	// created is the pod's creation time (unix seconds), before the fixture's first sample.
	created int64
	// restarts is its container's constant restart count (restarts before the data began).
	restarts int
}

// families are the series the four scale guardrails (restarts, not-ready, waiting-reasons, latest-image) read
// (src/engine/promql.rs TargetSelector), labelled as kube-state-metrics v2 labels them (the canonical
// fixture tests/fixtures/prometheus/kube-state-metrics.om). Healthy pods have no
// kube_pod_container_status_waiting_reason series (kube-state-metrics exports it only while a container
// waits) and no init containers.
func families() []family {
	podLabels := func(p fixturePod) string {
		return fmt.Sprintf(`namespace="%s",pod="%s",uid="%s"`, p.canary.Namespace, p.name, p.uid)
	}
	image := func(p fixturePod) string {
		return fmt.Sprintf("registry.local/%s/%s:1.%d.0", p.canary.Namespace, p.canary.Rollout, p.index%7)
	}
	containerLabels := func(p fixturePod) string {
		return fmt.Sprintf(`%s,container="app"`, podLabels(p))
	}
	return []family{
		{"kube_pod_info", "gauge", "Information about pod.", func(p fixturePod) []fixtureSeries {
			return []fixtureSeries{{fmt.Sprintf(`%s,host_ip="10.0.%d.%d",pod_ip="10.244.%d.%d",node="worker-%d",created_by_kind="ReplicaSet",created_by_name="%s",priority_class="",host_network="false"`,
				podLabels(p), p.index%250, p.index%200+10, p.index/250%250, p.index%250, p.index%40, p.canary.ReplicaSet()), "1"}}
		}},
		{"kube_pod_created", "gauge", "Unix creation timestamp", func(p fixturePod) []fixtureSeries {
			return []fixtureSeries{{podLabels(p), fmt.Sprint(p.created)}}
		}},
		{"kube_pod_status_ready", "gauge", "Describes whether the pod is ready to serve requests.", func(p fixturePod) []fixtureSeries {
			return []fixtureSeries{
				{podLabels(p) + `,condition="true"`, "1"},
				{podLabels(p) + `,condition="false"`, "0"},
				{podLabels(p) + `,condition="unknown"`, "0"},
			}
		}},
		{"kube_pod_container_info", "gauge", "Information about a container in a pod.", func(p fixturePod) []fixtureSeries {
			img := image(p)
			return []fixtureSeries{{fmt.Sprintf(`%s,image_spec="%s",image="%s",image_id="%s@sha256:%s",container_id="containerd://%s"`,
				containerLabels(p), img, img, img, digest(img, 64), digest(p.uid, 64)), "1"}}
		}},
		{"kube_pod_container_status_restarts", "counter", "The number of container restarts per container.", func(p fixturePod) []fixtureSeries {
			return []fixtureSeries{{containerLabels(p), fmt.Sprint(p.restarts)}}
		}},
	}
}

// render writes the fixture as OpenMetrics text in the form promtool accepts: families one after the other,
// each series' samples in time order, counters' samples named `_total`, a final `# EOF`.
func (f *Fixture) render(path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	pods := f.pods()
	var instants []int64
	for t := f.Start; !t.After(f.End); t = t.Add(f.Params.Step) {
		instants = append(instants, t.Unix())
	}
	f.Series, f.Samples = 0, 0
	for _, fam := range families() {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", fam.name, fam.help, fam.name, fam.typ)
		sample := fam.name
		if fam.typ == "counter" {
			sample += "_total"
		}
		for _, pod := range pods {
			for _, s := range fam.series(pod) {
				f.Series++
				for _, t := range instants {
					fmt.Fprintf(w, "%s{%s} %s %d\n", sample, s.labels, s.value, t)
				}
				f.Samples += len(instants)
			}
		}
	}
	w.WriteString("# EOF\n")
	if err := w.Flush(); err != nil {
		return err
	}
	return out.Close()
}

// pods are every canary's pods: created an hour before the data starts, one in seven with restarts from
// before the data (so the restarts guardrail's window start is not trivially zero).
func (f *Fixture) pods() []fixturePod {
	var pods []fixturePod
	created := f.Start.Add(-time.Hour).Unix()
	for i, c := range f.Params.Canaries() {
		for j := 0; j < f.Params.PodsPerRollout; j++ {
			n := len(pods)
			pods = append(pods, fixturePod{
				canary:   c,
				name:     fmt.Sprintf("%s-%s", c.ReplicaSet(), podSuffix(i*f.Params.PodsPerRollout+j)),
				uid:      uid(n),
				index:    n,
				created:  created,
				restarts: map[bool]int{true: 2, false: 0}[n%7 == 0],
			})
		}
	}
	return pods
}

// hashAlphabet is the alphabet of Kubernetes' generated names (k8s.io/apimachinery rand.SafeEncodeString).
const hashAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func encodeName(n, length int) string {
	b := make([]byte, length)
	for i := range b {
		b[i] = hashAlphabet[n%len(hashAlphabet)]
		n /= len(hashAlphabet)
	}
	return string(b)
}

// podTemplateHash is rollout i's pod-template hash: 10 characters (distinct: the rollout names are).
func podTemplateHash(i int) string { return encodeName(scramble(fmt.Sprint("rollout", i)), 10) }

// podSuffix is pod n's 5-character name suffix.
func podSuffix(n int) string { return encodeName(scramble(fmt.Sprint("pod", n)), 5) }

// scramble is a stable non-negative number derived from s.
func scramble(s string) int {
	sum := sha256.Sum256([]byte(s))
	return int(binary.BigEndian.Uint64(sum[:8]) >> 2)
}

func uid(n int) string {
	d := digest(fmt.Sprint("pod", n), 32)
	return d[:8] + "-" + d[8:12] + "-" + d[12:16] + "-" + d[16:20] + "-" + d[20:32]
}

// digest is a stable hex string of length n derived from s.
func digest(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
