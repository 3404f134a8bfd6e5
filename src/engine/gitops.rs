//! The `gitops` guardrail: the reconciler that deploys the target is healthy and not stuck. Argo CD: the
//! Application's `argocd_app_info` says `Healthy` and `Synced`. Flux: the Kustomization's or HelmRelease's
//! `gotk_reconcile_condition{type="Ready"}` is `True`. Both pass only through a [`FreshSample`] proof.
use std::time::SystemTime;

use super::config::{Config, GitopsObject, Settings};
use super::duration::{self, promql_range};
use super::guardrail::Answers;
use super::promql::{Selector, SelectorError};
use super::verdict::{vector, Failure, FailureClass, FreshSample, Proof, Verdict};
use crate::prometheus::Sample;

/// The name of each query in metadata (`query.<name>`).
pub mod query_name {
    pub const STATUS: &str = "status";
    pub const READY_IN_WINDOW: &str = "ready-in-window";
}

fn selector(object: &GitopsObject, config: &Config) -> Result<Selector, SelectorError> {
    let mut s = match object {
        GitopsObject::ArgoApplication(name) => {
            Selector::new("metric", "argocd_app_info")?.equal("name", name)?
        }
        GitopsObject::FluxKustomization(name) => {
            Selector::new("metric", "gotk_reconcile_condition")?
                .equal("kind", "Kustomization")?
                .equal("name", name)?
                .equal("type", "Ready")?
        }
        GitopsObject::FluxHelmRelease(name) => Selector::new("metric", "gotk_reconcile_condition")?
            .equal("kind", "HelmRelease")?
            .equal("name", name)?
            .equal("type", "Ready")?,
    };
    for (label, value) in &config.matchers {
        s = s.equal(label, value)?;
    }
    Ok(s)
}

/// The queries of `gitops`.
pub fn plan(config: &Config, settings: &Settings) -> Result<Vec<(&'static str, String)>, Failure> {
    let object = config.gitops.as_ref().ok_or_else(|| {
        Failure::new(
            FailureClass::Config,
            "gitops needs `application`, `kustomization` or `helmRelease`",
        )
    })?;
    let s =
        selector(object, config).map_err(|e| Failure::new(FailureClass::Config, e.to_string()))?;
    Ok(match object {
        GitopsObject::ArgoApplication(_) => {
            vec![(query_name::STATUS, format!("timestamp({})", s.render()))]
        }
        _ => {
            let ready = s
                .clone()
                .equal("status", "True")
                .map_err(|e| Failure::new(FailureClass::Config, e.to_string()))?;
            vec![
                // The status whose series is 1 now (kube-style conditions keep one series per status), with the
                // time of its last sample. Not `timestamp(… == 1)`: VictoriaMetrics evaluates `timestamp()` of an
                // expression over the lookback window (an implicit subquery), so a status that was 1 minutes ago
                // would still answer (docs/prometheus-compatibility.md).
                (
                    query_name::STATUS,
                    format!("timestamp({0}) and {0} == 1", s.render()),
                ),
                (
                    query_name::READY_IN_WINDOW,
                    format!(
                        "max_over_time({}[{}])",
                        ready.render(),
                        promql_range(settings.window)
                    ),
                ),
            ]
        }
    })
}

fn describe(object: &GitopsObject) -> String {
    match object {
        GitopsObject::ArgoApplication(n) => format!("Argo CD Application {n}"),
        GitopsObject::FluxKustomization(n) => format!("Flux Kustomization {n}"),
        GitopsObject::FluxHelmRelease(n) => format!("Flux HelmRelease {n}"),
    }
}

fn label<'a>(sample: &'a Sample, name: &str) -> &'a str {
    sample.labels.get(name).map(String::as_str).unwrap_or("")
}

/// Judges the answers of [`plan`].
pub fn judge(config: &Config, answers: &Answers, settings: &Settings, at: SystemTime) -> Verdict {
    let result = (|| {
        let object = config
            .gitops
            .as_ref()
            .ok_or_else(|| Failure::new(FailureClass::Config, "gitops has no object"))?;
        let what = describe(object);
        let get = |name: &'static str| {
            answers.get(name).ok_or_else(|| {
                Failure::new(
                    FailureClass::QueryError,
                    format!("{name} query has no answer"),
                )
            })
        };
        let samples = vector(get(query_name::STATUS)?, query_name::STATUS)?;
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
            settings.staleness,
            &format!("series for {what}"),
        )?;
        let (healthy, state) = match object {
            GitopsObject::ArgoApplication(_) => {
                let (health, sync) = (label(sample, "health_status"), label(sample, "sync_status"));
                (
                    health == "Healthy" && sync == "Synced",
                    format!("health {health}, sync {sync}"),
                )
            }
            _ => {
                let status = label(sample, "status");
                let ready_in_window = vector(
                    get(query_name::READY_IN_WINDOW)?,
                    query_name::READY_IN_WINDOW,
                )?
                .iter()
                .any(|s| s.value == 1.0);
                let state = if status == "True" {
                    "Ready".to_string()
                } else if ready_in_window {
                    format!(
                        "not Ready (status {status}), Ready earlier in the last {}: reconciling",
                        duration::format(settings.window)
                    )
                } else {
                    format!(
                        "not Ready (status {status}) for longer than {}: stuck",
                        duration::format(settings.window)
                    )
                };
                (status == "True", state)
            }
        };
        let message = format!("{what}: {state}");
        if !healthy {
            return Ok(Verdict::Fail(Failure {
                class: FailureClass::Threshold,
                message,
                value: "0".into(),
                offenders: vec![what],
                awaiting: None,
            }));
        }
        Ok(proof.pass("1".into(), message, Vec::new()))
    })();
    result.unwrap_or_else(Verdict::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::QueryData;
    use std::time::{Duration, UNIX_EPOCH};

    const AT: f64 = 1_767_268_800.0;

    fn config(json: &str) -> Config {
        Config::from_json(json.as_bytes()).unwrap()
    }

    fn status(labels: &[(&str, &str)], ts: f64) -> QueryData {
        QueryData::Vector(vec![Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timestamp: AT,
            value: ts,
        }])
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(AT as u64)
    }

    #[test]
    fn argo_cd_needs_healthy_and_synced_and_fresh() {
        let c = config(r#"{"guardrail":"gitops","application":"cart"}"#);
        let s = c.settings();
        let plan = plan(&c, &s).unwrap();
        assert_eq!(plan[0].1, r#"timestamp(argocd_app_info{name="cart"})"#);
        let ok: Answers = [(
            query_name::STATUS,
            status(
                &[("health_status", "Healthy"), ("sync_status", "Synced")],
                AT - 30.0,
            ),
        )]
        .into();
        assert!(matches!(judge(&c, &ok, &s, at()), Verdict::Pass(_)));
        let bad: Answers = [(
            query_name::STATUS,
            status(
                &[("health_status", "Degraded"), ("sync_status", "Synced")],
                AT - 30.0,
            ),
        )]
        .into();
        let Verdict::Fail(f) = judge(&c, &bad, &s, at()) else {
            panic!()
        };
        assert_eq!(
            f.message,
            "Argo CD Application cart: health Degraded, sync Synced"
        );
        let stale: Answers = [(
            query_name::STATUS,
            status(
                &[("health_status", "Healthy"), ("sync_status", "Synced")],
                AT - 3600.0,
            ),
        )]
        .into();
        let Verdict::Fail(f) = judge(&c, &stale, &s, at()) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Stale);
        let none: Answers = [(query_name::STATUS, QueryData::Vector(vec![]))].into();
        let Verdict::Fail(f) = judge(&c, &none, &s, at()) else {
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
        let p = plan(&c, &c.settings()).unwrap();
        assert_eq!(
            p[0].1,
            r#"timestamp(gotk_reconcile_condition{kind="HelmRelease",name="x\"}",type="Ready",exported_namespace="flux-system"}) and gotk_reconcile_condition{kind="HelmRelease",name="x\"}",type="Ready",exported_namespace="flux-system"} == 1"#
        );
    }
}
