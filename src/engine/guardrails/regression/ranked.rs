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
        let evidence = side_evidence(target, answers, common, at)?;
        if let Some(measure) = self.measure() {
            self.traffic.proven(measure, &evidence)?;
        }
        let (_, unit) = self.per_step(test, target)?;
        let steps = self.one_series(answers, &evidence.coverage)?;
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
        self.fresh(steps, &evidence.coverage, common.staleness, at)?;
        let values: Vec<f64> = steps
            .iter()
            .map(|(_, v)| v * unit)
            .filter(|v| v.is_finite())
            .collect();
        let dropped = steps.len() - values.len();
        Ok((evidence.coverage, Samples { values, dropped }))
    }

    /// The samples query's one series (a range vector): none is no data, two are ambiguous.
    fn one_series<'a>(
        &self,
        answers: &'a Answers,
        coverage: &Coverage,
    ) -> Result<&'a [(f64, f64)], Failure> {
        let series = match crate::engine::guardrails::answer(answers, query_name::SAMPLES)? {
            QueryData::Matrix(series) => series,
            other => {
                return Err(Failure::new(
                    FailureClass::QueryError,
                    format!(
                        "samples query returned a {}; expected a range vector (a subquery's)",
                        kind_name(other)
                    ),
                ));
            }
        };
        match series.as_slice() {
            [] => Err(Failure::new(
                FailureClass::NoData,
                format!(
                    "no {} samples for ReplicaSet {} in the last {}",
                    self.signal.name(),
                    coverage.target(),
                    duration::format(self.traffic.window)
                ),
            )),
            [one] => Ok(&one.samples),
            more => Err(Failure::new(
                FailureClass::Ambiguous,
                format!(
                    "samples query returned {} series; expected one (the per-step {} of ReplicaSet {})",
                    more.len(),
                    self.signal_phrase(),
                    coverage.target()
                ),
            )),
        }
    }

    /// The newest step is no older than `staleness` before the evaluation instant.
    fn fresh(
        &self,
        steps: &[(f64, f64)],
        coverage: &Coverage,
        staleness: Duration,
        at: SystemTime,
    ) -> Result<(), Failure> {
        let last = steps
            .iter()
            .map(|(t, _)| *t)
            .fold(f64::NEG_INFINITY, f64::max);
        let age = unix_seconds(at) - last;
        if age.is_finite() && age <= staleness.as_secs_f64() {
            return Ok(());
        }
        Err(Failure::new(
            FailureClass::Stale,
            format!(
                "stale {} samples for ReplicaSet {}: the last step is {} before the evaluation instant, older than staleness {}",
                self.signal.name(),
                coverage.target(),
                // Whole seconds: "10m59s", not "659168ms".
                duration::format(Duration::from_secs(age.clamp(0.0, 1e12).round() as u64)),
                duration::format(staleness)
            ),
        ))
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
        let mut details = sample_details(&c, &s);
        let context = format!(
            "{}; ReplicaSets {} vs {} over {}",
            dropped_phrase(&c, &s),
            canary_coverage.target(),
            stable_coverage.target(),
            duration::format(self.traffic.window)
        );
        if let Err(failure) = self.enough_samples(test, &c, &s, &context) {
            return Verdict::Fail(failure).with_details(details);
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
        let judged = self.judge_rank(test, &outcome, (mc, &c), (ms, &s), &context);
        details.push((metadata_key::P_VALUE, format!("{:e}", outcome.p_value)));
        details.push((metadata_key::U, format_number(outcome.u)));
        details.push((metadata_key::RATIO, format_number(round6(judged.ratio))));
        let value = format_number(round6(mc));
        if judged.regression {
            return Verdict::Fail(Failure {
                value,
                ..Failure::new(FailureClass::Threshold, judged.message)
            })
            .with_details(details);
        }
        proof
            .pass(value, judged.message, Vec::new())
            .with_details(details)
    }

    /// Each side holds at least `minSamples` finite samples, else the comparison is unproven.
    fn enough_samples(
        &self,
        test: &RankTest,
        canary: &Samples,
        stable: &Samples,
        context: &str,
    ) -> Result<(), Failure> {
        for (which, samples) in [("canary", canary), ("stable", stable)] {
            if (samples.values.len() as u64) < test.min_samples {
                return Err(Failure::new(
                    FailureClass::NoData,
                    format!(
                        "{which}: {} finite {} samples of the {} in the last {}, fewer than minSamples {} (unproven){context}",
                        samples.values.len(),
                        test.step_words(),
                        self.signal_phrase(),
                        duration::format(self.traffic.window),
                        test.min_samples
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The judgement: a regression only when the test is significant, the medians' ratio exceeds
    /// 1 + tolerance and the canary's median is above the floor; the sentence a person can check.
    fn judge_rank(
        &self,
        test: &RankTest,
        outcome: &stats::MannWhitney,
        (mc, c): (f64, &Samples),
        (ms, s): (f64, &Samples),
        context: &str,
    ) -> RankJudgement {
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
            "canary {what} median {} vs stable {} (×{shown_ratio} {} {limit:.2}), Mann-Whitney p = {} {} {} on {} vs {} {} samples: {verdict}{context}",
            self.show(mc),
            self.show(ms),
            if larger { ">" } else { "≤" },
            p_value(outcome.p_value),
            if significant { "<" } else { "≥" },
            format_number(round6(alpha)),
            c.values.len(),
            s.values.len(),
            test.step_words(),
            what = self.signal_phrase(),
        );
        RankJudgement {
            regression: significant && larger && above_floor,
            ratio,
            message,
        }
    }
}

/// What [`Regression::judge_rank`] decided.
struct RankJudgement {
    regression: bool,
    ratio: f64,
    message: String,
}

/// Both sample vectors (bounded), the dropped steps and the counts, for the measurement's metadata.
fn sample_details(c: &Samples, s: &Samples) -> Vec<(&'static str, String)> {
    vec![
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
    ]
}

/// `; 3 NaN/Inf steps dropped (canary 2, stable 1)`, or nothing.
fn dropped_phrase(c: &Samples, s: &Samples) -> String {
    match c.dropped + s.dropped {
        0 => String::new(),
        n => format!(
            "; {n} NaN/Inf step{} dropped (canary {}, stable {})",
            if n == 1 { "" } else { "s" },
            c.dropped,
            s.dropped
        ),
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
