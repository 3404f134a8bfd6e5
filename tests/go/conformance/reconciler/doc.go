// Package reconciler runs argo-rollouts v1.9.1's own analysis controller in-process (fake clientsets and
// informers, as argo's analysis/controller_test.go builds it) with rollouts-guardrails registered the way the
// controller registers plugins (argo-rollouts-config + config.InitializeConfig + plugin.DownloadPlugins), and
// reconciles AnalysisRuns built by argo's own helpers from the shipped ClusterAnalysisTemplates and the example
// Rollouts' args. See reconciler_test.go.
package reconciler
