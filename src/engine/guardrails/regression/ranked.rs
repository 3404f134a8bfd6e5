//! `method: mann-whitney`: per-step samples of each side, the rank test and the effect-size gate.
use super::*;

/// `method: mann-whitney`: per-step samples per side and the rank test.
impl Regression {
    /// The signal over one step, as an instant expression (one series), and its factor into the unit shown.
    pub(super) fn per_step(
        &self,
        test: &RankTest,
        target: &TargetSelector,
    ) -> Result<(String, f64), Failure> {
        Ok(match (self.measure(), self.signal) {
            (Some(measure), _) => traffic::per_step(&self.traffic, measure, target, test.step)?,
            // Per pod, averaged over the pod set: a canary of 1 pod compares with a stable of 10.
            (None, Signal::Cpu) => (format!("avg({})", target.cpu_per_pod(test.step)), 1.0),
            (None, _) => (format!("avg({})", target.memory_per_pod(test.step)), 1.0),
        })
    }

    /// One side: its coverage, the traffic proof (request signals, over `window` as for `ratio`) and the
    /// per-step samples as one subquery `(<per-step expression>)[window:step]`.
    pub(super) fn rank_side(
        &self,
        test: &RankTest,
        target: &TargetSelector,
    ) -> Result<Vec<Query>, Failure> {
        let mut queries = vec![coverage_query(target)];
        if let Some(measure) = self.measure() {
            let plan = traffic::plan(&self.traffic, measure, target)?;
            queries.extend(plan.queries.into_iter().filter(|(name, _)| {
                [
                    traffic::query_name::REQUESTS,
                    traffic::query_name::LATEST_REQUEST,
                ]
                .contains(name)
            }));
        }
        let (expression, _) = self.per_step(test, target)?;
        // One second short of `window`: Prometheus 2 includes both ends of a subquery's range, Prometheus 3
        // only the last, so `[1199s:60s]` is 20 steps on both, each step's data inside the window.
        let range = self.traffic.window.as_secs().saturating_sub(1).max(1);
        queries.push((
            query_name::SAMPLES,
            format!(
                "({expression})[{range}s:{}]",
                duration::promql_range(test.step)
            ),
        ));
        Ok(queries)
    }

    /// One side's proven samples: coverage and traffic as for `ratio`, then exactly one fresh series.
    pub(super) fn side_samples(
        &self,
        test: &RankTest,
        target: &TargetSelector,
        answers: &Answers,
        common: &Common,
        at: SystemTime,
    ) -> Result<(Coverage, Samples), Failure> {
        let evidence = Evidence {
            target,
            coverage: prove_coverage(answers, target, common, at)?,
            answers,
            staleness: common.staleness,
            at,
        };
        if let Some(measure) = self.measure() {
            self.traffic.proven(measure, &evidence)?;
        }
        let (_, unit) = self.per_step(test, target)?;
        let what = format!("{} samples", self.signal.name());
        let series = match crate::engine::guardrails::answer(answers, query_name::SAMPLES)? {
            QueryData::Matrix(series) => series,
            other => {
                let kind = kind_name(other);
                return Err(Failure::new(
                    FailureClass::QueryError,
                    format!(
                        "samples query returned a {kind}; expected a range vector (a subquery's)"
                    ),
                ));
            }
        };
        let steps = match series.as_slice() {
            [] => {
                return Err(Failure::new(
                    FailureClass::NoData,
                    format!(
                        "no {what} for ReplicaSet {} in the last {}",
                        evidence.coverage.target(),
                        duration::format(self.traffic.window)
                    ),
                ))
            }
            [one] => &one.samples,
            more => {
                return Err(Failure::new(
                    FailureClass::Ambiguous,
                    format!(
                        "samples query returned {} series; expected one (the per-step {} of ReplicaSet {})",
                        more.len(),
                        self.signal_phrase(),
                        evidence.coverage.target()
                    ),
                ))
            }
        };
        if steps.len() as u64 > MAX_STEPS + 1 {
            return Err(Failure::new(
                FailureClass::QueryError,
                format!(
                    "samples query returned {} steps, more than {MAX_STEPS}",
                    steps.len()
                ),
            ));
        }
        // A subquery's steps strictly increase: repeated or reordered steps are not Prometheus' answer, and a
        // repeated step would count twice in the rank test.
        if steps.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return Err(Failure::new(
                FailureClass::QueryError,
                "samples query returned steps out of order or with repeated timestamps",
            ));
        }
        let last = steps
            .iter()
            .map(|(t, _)| *t)
            .fold(f64::NEG_INFINITY, f64::max);
        let age = unix_seconds(at) - last;
        if !age.is_finite() || age > common.staleness.as_secs_f64() {
            return Err(Failure::new(
                FailureClass::Stale,
                format!(
                    "stale {what} for ReplicaSet {}: the last step is {} before the evaluation instant, older than staleness {}",
                    evidence.coverage.target(),
                    duration::format(Duration::from_secs_f64(age.clamp(0.0, 1e12))),
                    duration::format(common.staleness)
                ),
            ));
        }
        let values: Vec<f64> = steps
            .iter()
            .map(|(_, v)| v * unit)
            .filter(|v| v.is_finite())
            .collect();
        let dropped = steps.len() - values.len();
        Ok((evidence.coverage, Samples { values, dropped }))
    }

    /// The signal without its unit, for messages (`p99 latency`).
    pub(super) fn signal_phrase(&self) -> String {
        match self.signal {
            Signal::ErrorRate => "error ratio".to_string(),
            Signal::Latency => format!("p{} latency", format_number(self.quantile * 100.0)),
            Signal::Cpu => "CPU per pod".to_string(),
            Signal::Memory => "memory per pod".to_string(),
        }
    }

    /// `0.44 s`, `0.3 cores`: a sample value with three significant digits and its unit.
    pub(super) fn show(&self, v: f64) -> String {
        let unit = match self.signal {
            Signal::ErrorRate => "",
            Signal::Latency => " s",
            Signal::Cpu => " cores",
            Signal::Memory => " bytes",
        };
        format!("{}{unit}", format_number(significant(v, 3)))
    }

    /// Canary samples against stable samples, both sides proven.
    pub(super) fn rank_compare(
        &self,
        test: &RankTest,
        canary: (Coverage, Samples),
        stable: (Coverage, Samples),
    ) -> Verdict {
        let (canary_coverage, c) = canary;
        let (stable_coverage, s) = stable;
        let step_words = test.step_words();
        let mut details = vec![
            (metadata_key::SAMPLES, bounded(&c.values)),
            (metadata_key::STABLE_SAMPLES, bounded(&s.values)),
            (
                metadata_key::DROPPED,
                format!("canary {}, stable {}", c.dropped, s.dropped),
            ),
            (
                metadata_key::COUNTS,
                format!("{} vs {}", c.values.len(), s.values.len()),
            ),
        ];
        let dropped = match c.dropped + s.dropped {
            0 => String::new(),
            n => format!(
                "; {n} NaN/Inf step{} dropped (canary {}, stable {})",
                if n == 1 { "" } else { "s" },
                c.dropped,
                s.dropped
            ),
        };
        let context = format!(
            "{dropped}; ReplicaSets {} vs {} over {}",
            canary_coverage.target(),
            stable_coverage.target(),
            duration::format(self.traffic.window)
        );
        for (which, samples) in [("canary", &c), ("stable", &s)] {
            if (samples.values.len() as u64) < test.min_samples {
                let failure = Failure::new(
                    FailureClass::NoData,
                    format!(
                        "{which}: {} finite {step_words} samples of the {} in the last {}, fewer than minSamples {} (unproven){context}",
                        samples.values.len(),
                        self.signal_phrase(),
                        duration::format(self.traffic.window),
                        test.min_samples
                    ),
                );
                return Verdict::Fail(failure).with_details(details);
            }
        }
        let proof = match Comparison::of(&canary_coverage, &stable_coverage) {
            Ok(proof) => proof,
            Err(failure) => return Verdict::Fail(failure).with_details(details),
        };
        let outcome = match stats::greater(&c.values, &s.values) {
            Ok(outcome) => outcome,
            Err(e) => {
                return Verdict::Fail(Failure::new(
                    FailureClass::QueryError,
                    format!("the Mann-Whitney test cannot be computed: {e}"),
                ))
                .with_details(details)
            }
        };
        // Both sides hold at least minSamples (≥ 5) finite values.
        let (Some(mc), Some(ms)) = (stats::median(&c.values), stats::median(&s.values)) else {
            return Verdict::Fail(Failure::new(FailureClass::NoData, "no samples"));
        };
        let alpha = 1.0 - test.confidence;
        let limit = 1.0 + self.tolerance;
        let significant = outcome.p_value < alpha;
        let larger = mc > ms * limit;
        let above_floor = mc > self.threshold;
        let ratio = if ms > 0.0 {
            mc / ms
        } else if mc > 0.0 {
            f64::INFINITY
        } else {
            1.0
        };
        let shown_ratio = match format!("{ratio:.2}") {
            _ if !ratio.is_finite() => "+Inf".to_string(),
            // Close to the limit, one more digit shows which side it is on.
            shown if shown == format!("{limit:.2}") => format!("{ratio:.3}"),
            shown => shown,
        };
        details.push((metadata_key::P_VALUE, format!("{:e}", outcome.p_value)));
        details.push((metadata_key::U, format_number(outcome.u)));
        details.push((metadata_key::RATIO, format_number(round6(ratio))));
        let verdict = match (significant, larger, above_floor) {
            (true, true, true) => "regression".to_string(),
            (true, true, false) => format!(
                "no regression (the canary median is at or below the floor {})",
                self.show(self.threshold)
            ),
            (true, false, _) => "no regression (significant, but within tolerance)".to_string(),
            (false, _, _) => "no regression (not significant)".to_string(),
        };
        let message = format!(
            "canary {what} median {} vs stable {} (×{shown_ratio} {} {limit:.2}), Mann-Whitney p = {} {} {} on {} vs {} {step_words} samples: {verdict}{context}",
            self.show(mc),
            self.show(ms),
            if larger { ">" } else { "≤" },
            p_value(outcome.p_value),
            if significant { "<" } else { "≥" },
            format_number(round6(alpha)),
            c.values.len(),
            s.values.len(),
            what = self.signal_phrase(),
        );
        let value = format_number(round6(mc));
        if significant && larger && above_floor {
            return Verdict::Fail(Failure {
                value,
                ..Failure::new(FailureClass::Threshold, message)
            })
            .with_details(details);
        }
        proof.pass(value, message, Vec::new()).with_details(details)
    }
}

/// A side's failure, its message prefixed by the side (`canary: …`).
pub(super) fn side<T>(which: &str, result: Result<T, Failure>) -> Result<T, Failure> {
    result.map_err(|f| Failure {
        message: format!("{which}: {}", f.message),
        ..f
    })
}

/// `v` rounded to `digits` significant digits.
pub(super) fn significant(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let magnitude = v.abs().log10().floor() as i32;
    let factor = 10f64.powi(digits - 1 - magnitude);
    (v * factor).round() / factor
}

/// A p-value as people read one: `0.31`, `0.0042`, `3.4e-08`.
pub(super) fn p_value(p: f64) -> String {
    if p >= 1e-3 || p == 0.0 {
        return format_number(significant(p, 2));
    }
    let text = format!("{p:.1e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(digits) => ("-", digits),
                None => ("+", exponent),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => text,
    }
}

/// The latest [`METADATA_SAMPLES`] values, comma-separated.
pub(super) fn bounded(values: &[f64]) -> String {
    let start = values.len().saturating_sub(METADATA_SAMPLES);
    values[start..]
        .iter()
        .map(|v| format_number(significant(*v, 6)))
        .collect::<Vec<_>>()
        .join(",")
}
