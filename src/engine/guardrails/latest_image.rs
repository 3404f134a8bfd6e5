//! `latest-image`: mutable image references (`latest`, untagged) in the canary's pods as specified in the pod
//! template, plus any references listed in `images`.
use std::collections::BTreeSet;

use super::{coverage_query, waiting_query, Answers, Query};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, ConfigError};
use crate::engine::image;
use crate::engine::pods::{
    judge_pods, label, plural, pods_of, samples, waiting_reasons, with_reason,
};
use crate::engine::promql::TargetSelector;
use crate::engine::verdict::{Coverage, Failure, Verdict};

pub const SUMMARY: &str = "mutable image references (`latest`, untagged) in the canary's pods";
pub const KEYS: &[&str] = &["threshold", "images"];

pub mod query_name {
    pub const IMAGES: &str = "images";
}

#[derive(Debug, Clone, PartialEq)]
pub struct LatestImage {
    /// More mutable references than this fail (0 by default).
    pub threshold: f64,
    /// References judged as well as the pods' (`images`).
    pub images: Vec<String>,
}

pub fn plan(target: &TargetSelector) -> Vec<Query> {
    vec![
        coverage_query(target),
        (query_name::IMAGES, target.container_images()),
        waiting_query(target),
    ]
}

impl LatestImage {
    pub fn parse(keys: &Keys) -> Result<LatestImage, ConfigError> {
        Ok(LatestImage {
            threshold: config::threshold(keys, 0.0)?,
            images: keys.string_list("images", "a list of image references")?,
        })
    }

    pub fn judge(&self, coverage: &Coverage, answers: &Answers) -> Result<Verdict, Failure> {
        let containers = coverage.by_pod(samples(answers, query_name::IMAGES)?);
        coverage.require_all(&containers.keys().cloned().collect(), "container image")?;
        let reasons = waiting_reasons(answers, coverage)?;
        let mut offenders = Vec::new();
        for reference in &self.images {
            let kind = image::classify(reference);
            if kind.is_violation() {
                offenders.push(format!(
                    "image `{reference}` (from the configuration): {}",
                    kind.describe()
                ));
            }
        }
        let mut judged = 0usize;
        for (pod, samples) in &containers {
            let mut seen = BTreeSet::new();
            for sample in samples {
                let container = label(sample, "container");
                if !seen.insert(container) {
                    continue;
                }
                judged += 1;
                // The image as specified in the pod template, so a pod that never pulled still counts.
                let reference = match label(sample, "image_spec") {
                    "" => label(sample, "image"),
                    spec => spec,
                };
                let kind = image::classify(reference);
                if kind.is_violation() {
                    let text =
                        format!("{pod}/{container} image `{reference}`: {}", kind.describe());
                    let key = (pod.clone(), container.to_string());
                    offenders.push(with_reason(text, reasons.get(&key)));
                }
            }
        }
        let count = offenders.len() as f64;
        let static_part = if self.images.is_empty() {
            String::new()
        } else {
            format!(
                " and {} configured image{}",
                self.images.len(),
                plural(self.images.len() as f64)
            )
        };
        let message = format!(
            "{} mutable image reference{} in {} container{} of {}{static_part}",
            offenders.len(),
            plural(count),
            judged,
            plural(judged as f64),
            pods_of(coverage),
        );
        Ok(judge_pods(coverage, self.threshold, message, offenders))
    }
}

#[cfg(test)]
mod tests {
    use super::query_name::IMAGES;
    use crate::engine::guardrails::testing::*;

    #[test]
    fn latest_image_judges_the_specified_image_and_static_references() {
        let ans = answers(
            &["a"],
            vec![
                (
                    IMAGES,
                    vec![
                        s(
                            &[
                                ("pod", "a"),
                                ("container", "app"),
                                ("image_spec", "nginx"),
                                ("image", "docker.io/library/nginx:latest"),
                            ],
                            1.0,
                        ),
                        s(
                            &[
                                ("pod", "a"),
                                ("container", "side"),
                                ("image_spec", ""),
                                ("image", "envoy:v1"),
                            ],
                            1.0,
                        ),
                    ],
                ),
                (
                    WAITING,
                    vec![s(
                        &[
                            ("pod", "a"),
                            ("container", "app"),
                            ("reason", "ImagePullBackOff"),
                        ],
                        1.0,
                    )],
                ),
            ],
        );
        let Verdict::Fail(f) = judge(r#"{"guardrail":"latest-image"}"#, ans.clone()) else {
            panic!()
        };
        assert_eq!(f.value, "1");
        assert!(
            f.message
                .contains("a/app image `nginx`: no tag (pulls `latest`) (ImagePullBackOff)"),
            "{}",
            f.message
        );
        let with_static = r#"{"guardrail":"latest-image","images":["registry.local/app:latest","registry.local/app:1.0"]}"#;
        let Verdict::Fail(f) = judge(with_static, ans) else {
            panic!()
        };
        assert_eq!(f.value, "2");
        assert!(
            f.message
                .contains("image `registry.local/app:latest` (from the configuration)"),
            "{}",
            f.message
        );
    }
}
