// The end-to-end suite: a real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok,
// kube-state-metrics, Prometheus, the Argo Rollouts controller) started by cluster/, scenarios in *_test.go.
// Standard library only: the control plane's binaries are built by ../tools/build-control-plane.sh from
// ../tools/*/go.mod.
module github.com/rollouts-guardrails/e2e

go 1.26.1
