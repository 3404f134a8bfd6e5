//! `gitops`: the reconciler that deploys the target is healthy and not stuck. Argo CD: the Application's
//! `argocd_app_info` says `Healthy` and `Synced`. Flux: the Kustomization's or HelmRelease's
//! `gotk_reconcile_condition{type="Ready"}` is `True`. Both pass only through a [`FreshSample`] proof.
use std::time::{Duration, SystemTime};

use super::{answer, Answers, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, Common, ConfigError, Profile};
use crate::engine::duration::{self, promql_range};
use crate::engine::pods::label;
use crate::engine::promql::{Matchers, Selector, SelectorError};
use crate::engine::verdict::{vector, Failure, FailureClass, FreshSample, Proof, Verdict};
use crate::prometheus::Sample;

pub const SUMMARY: &str =
    "the Argo CD Application or Flux object deploying the canary is unhealthy or stuck";
pub const KEYS: &[&str] = &[
    "window",
    "threshold",
    "application",
    "kustomization",
    "helmRelease",
];

/// The name of each query in metadata (`query.<name>`).
pub mod query_name {
    pub const STATUS: &str = "status";
    pub const READY_IN_WINDOW: &str = "ready-in-window";
}

/// The object whose reconciliation `gitops` judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitopsObject {
    /// An Argo CD Application (`argocd_app_info{name}`).
    ArgoApplication(String),
    /// A Flux Kustomization (`gotk_reconcile_condition{kind="Kustomization",name}`).
    FluxKustomization(String),
    /// A Flux HelmRelease (`gotk_reconcile_condition{kind="HelmRelease",name}`).
    FluxHelmRelease(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gitops {
    pub object: GitopsObject,
    /// How long "not Ready" may last before it reads as stuck (10m by default, 5m in `prod`).
    pub window: Duration,
    /// Accepted for symmetry with the other guardrails; the verdict is healthy or not.
    pub threshold: f64,
}

impl Gitops {
    pub fn parse(keys: &Keys, profile: Profile) -> Result<Gitops, ConfigError> {
        let mut objects = Vec::new();
        for (key, make) in [
            (
                "application",
                GitopsObject::ArgoApplication as fn(String) -> GitopsObject,
            ),
            ("kustomization", GitopsObject::FluxKustomization),
            ("helmRelease", GitopsObject::FluxHelmRelease),
        ] {
            if let Some(name) = keys.text(key)? {
                if name.len() > 253 {
                    return Err(keys.invalid(key, "longer than 253 characters"));
                }
                objects.push(make(name));
            }
        }
        let object = match (objects.pop(), objects.is_empty()) {
            (Some(object), true) => object,
            _ => {
                return Err(keys.invalid(
                    "application",
                    "set exactly one of `application` (Argo CD), `kustomization` or `helmRelease` (Flux)",
                ))
            }
        };
        let gitops = Gitops {
            object,
            window: config::window(keys, Duration::from_secs(profile.pick(600, 300)))?,
            threshold: config::threshold(keys, 0.0)?,
        };
        gitops
            .plan(&keys.matchers("matchers")?)
            .map_err(|f| ConfigError::Plan(f.message))?;
        Ok(gitops)
    }

    fn selector(&self, source: &Matchers) -> Result<Selector, SelectorError> {
        let s = match &self.object {
            GitopsObject::ArgoApplication(name) => {
                Selector::new("metric", "argocd_app_info")?.equal("name", name)?
            }
            GitopsObject::FluxKustomization(name) => {
                Selector::new("metric", "gotk_reconcile_condition")?
                    .equal("kind", "Kustomization")?
                    .equal("name", name)?
                    .equal("type", "Ready")?
            }
            GitopsObject::FluxHelmRelease(name) => {
                Selector::new("metric", "gotk_reconcile_condition")?
                    .equal("kind", "HelmRelease")?
                    .equal("name", name)?
                    .equal("type", "Ready")?
            }
        };
        source.apply(s)
    }

    /// The queries, reading the source `source` selects.
    pub fn plan(&self, source: &Matchers) -> Result<Vec<Query>, Failure> {
        let config_failure = |e: SelectorError| Failure::new(FailureClass::Config, e.to_string());
        let s = self.selector(source).map_err(config_failure)?;
        Ok(match self.object {
            GitopsObject::ArgoApplication(_) => {
                vec![(query_name::STATUS, format!("timestamp({})", s.render()))]
            }
            _ => {
                let ready = s.clone().equal("status", "True").map_err(config_failure)?;
                vec![
                    // The status whose series is 1 now (kube-style conditions keep one series per status), with
                    // the time of its last sample. Not `timestamp(… == 1)`: of an expression, Prometheus answers the
                    // evaluation time (the staleness check could never fail) and VictoriaMetrics the last step of an
                    // implicit subquery (docs/prometheus-compatibility.md).
                    (
                        query_name::STATUS,
                        format!("timestamp({0}) and {0} == 1", s.render()),
                    ),
                    (
                        query_name::READY_IN_WINDOW,
                        format!(
                            "max_over_time({}[{}])",
                            ready.render(),
                            promql_range(self.window)
                        ),
                    ),
                ]
            }
        })
    }

    pub fn judge(
        &self,
        answers: &Answers,
        common: &Common,
        at: SystemTime,
    ) -> Result<Verdict, Failure> {
        let what = describe(&self.object);
        let samples = vector(answer(answers, query_name::STATUS)?, query_name::STATUS)?;
        let sample = match samples {
            [] => {
                return Err(Failure::new(
                    FailureClass::NoData,
                    format!("no series for {what} — is the reconciler's metrics endpoint scraped, and is the name right?"),
                ))
            }
            [one] => one,
            more => {
                return Err(Failure::new(
                    FailureClass::NoData,
                    format!("{} series match {what}: ambiguous; add `matchers` (e.g. the object's namespace label)", more.len()),
                ))
            }
        };
        let proof = FreshSample::prove(
            sample.value,
            at,
            common.staleness,
            &format!("series for {what}"),
        )?;
        let (healthy, state) = self.state(sample, answers)?;
        let message = format!("{what}: {state}");
        if !healthy {
            return Ok(Verdict::Fail(Failure {
                class: FailureClass::Threshold,
                message,
                value: "0".into(),
                offenders: vec![what],
                awaiting: None,
                details: Vec::new(),
            }));
        }
        Ok(proof.pass("1".into(), message, Vec::new()))
    }

    /// Whether the object is healthy, and its state as the message says it.
    fn state(&self, sample: &Sample, answers: &Answers) -> Result<(bool, String), Failure> {
        if let GitopsObject::ArgoApplication(_) = self.object {
            let (health, sync) = (label(sample, "health_status"), label(sample, "sync_status"));
            return Ok((
                health == "Healthy" && sync == "Synced",
                format!("health {health}, sync {sync}"),
            ));
        }
        let status = label(sample, "status");
        let in_window = answer(answers, query_name::READY_IN_WINDOW)?;
        let ready_in_window = vector(in_window, query_name::READY_IN_WINDOW)?
            .iter()
            .any(|s| s.value == 1.0);
        let window = duration::format(self.window);
        let state = if status == "True" {
            "Ready".to_string()
        } else if ready_in_window {
            format!("not Ready (status {status}), Ready earlier in the last {window}: reconciling")
        } else {
            format!("not Ready (status {status}) for longer than {window}: stuck")
        };
        Ok((status == "True", state))
    }
}

fn describe(object: &GitopsObject) -> String {
    match object {
        GitopsObject::ArgoApplication(n) => format!("Argo CD Application {n}"),
        GitopsObject::FluxKustomization(n) => format!("Flux Kustomization {n}"),
        GitopsObject::FluxHelmRelease(n) => format!("Flux HelmRelease {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Config;
    use crate::engine::guardrails::testing::{at, config, s, AT};
    use crate::engine::guardrails::Guardrail;
    use crate::prometheus::QueryData;

    fn gitops(json: &str) -> (Gitops, Common) {
        let c = config(json);
        match c.settings {
            Guardrail::Gitops(g) => (g, c.common),
            other => panic!("{other:?}"),
        }
    }

    fn status(labels: &[(&str, &str)], ts: f64) -> Answers {
        [(query_name::STATUS, QueryData::Vector(vec![s(labels, ts)]))].into()
    }

    fn verdict(g: &Gitops, common: &Common, answers: &Answers) -> Verdict {
        g.judge(answers, common, at()).unwrap_or_else(Verdict::Fail)
    }

    #[test]
    fn argo_cd_needs_healthy_and_synced_and_fresh() {
        let (g, common) = gitops(r#"{"guardrail":"gitops","application":"cart"}"#);
        assert_eq!(
            g.plan(&Default::default()).unwrap()[0].1,
            r#"timestamp(argocd_app_info{name="cart"})"#
        );
        let healthy = [("health_status", "Healthy"), ("sync_status", "Synced")];
        assert!(matches!(
            verdict(&g, &common, &status(&healthy, AT - 30.0)),
            Verdict::Pass(_)
        ));
        let degraded = [("health_status", "Degraded"), ("sync_status", "Synced")];
        let Verdict::Fail(f) = verdict(&g, &common, &status(&degraded, AT - 30.0)) else {
            panic!()
        };
        assert_eq!(
            f.message,
            "Argo CD Application cart: health Degraded, sync Synced"
        );
        let Verdict::Fail(f) = verdict(&g, &common, &status(&healthy, AT - 3600.0)) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Stale);
        let none: Answers = [(query_name::STATUS, QueryData::Vector(vec![]))].into();
        let Verdict::Fail(f) = verdict(&g, &common, &none) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData);
    }

    #[test]
    fn exactly_one_object() {
        assert!(Config::from_json(br#"{"guardrail":"gitops"}"#).is_err());
        assert!(Config::from_json(
            br#"{"guardrail":"gitops","application":"a","kustomization":"b"}"#
        )
        .is_err());
        let c = config(
            r#"{"guardrail":"gitops","helmRelease":"x\"}","matchers":{"exported_namespace":"flux-system"}}"#,
        );
        let Guardrail::Gitops(g) = &c.settings else {
            panic!()
        };
        assert_eq!(
            g.plan(&c.common.matchers).unwrap()[0].1,
            r#"timestamp(gotk_reconcile_condition{kind="HelmRelease",name="x\"}",type="Ready",exported_namespace="flux-system"}) and gotk_reconcile_condition{kind="HelmRelease",name="x\"}",type="Ready",exported_namespace="flux-system"} == 1"#
        );
    }
}
