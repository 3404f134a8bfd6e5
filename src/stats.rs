//! The Mann-Whitney U test (one-sided: is the first sample stochastically *greater* than the second?), as the
//! statistical canary judge uses it: the canary's per-step samples against the stable's.
//!
//! Pure arithmetic over finite `f64` samples, no I/O. It answers what SciPy's
//! `scipy.stats.mannwhitneyu(x, y, alternative="greater")` answers with its defaults (method `auto`, continuity
//! correction on): the exact null distribution when either sample has at most [`EXACT_MAX_SMALLER`] values and
//! no value is tied, otherwise the normal approximation with tie correction. The reference vectors and their
//! generator are in `tests/fixtures/stats/`; the unit tests below hold every one of them.
use statrs::distribution::{ContinuousCDF, Normal};

/// SciPy's rule for choosing the exact distribution: when the smaller sample has at most this many values (and
/// no value is tied), the exact distribution is used; otherwise the normal approximation.
pub const EXACT_MAX_SMALLER: usize = 8;

/// The most values one sample may hold. Counting the exact distribution is `O(n1 · n2 · min(n1, n2))` and a
/// canary judge sees tens to a few thousand steps; a larger input is a caller's bug, not a reason to allocate.
pub const MAX_SAMPLE_LEN: usize = 100_000;

/// How the p-value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The exact null distribution of U (no ties, a small sample).
    Exact,
    /// The normal approximation with tie and continuity correction.
    Asymptotic,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Asymptotic => "asymptotic",
        }
    }
}

/// The outcome of one test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: the number of (x, y) pairs with x > y, ties counting one half.
    pub u: f64,
    /// The probability, under "both samples come from one distribution", of a U at least this large.
    pub p_value: f64,
    pub method: Method,
}

/// Why a test could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    #[error("the {0} sample is empty")]
    Empty(&'static str),
    #[error("the {0} sample holds a value that is not finite")]
    NotFinite(&'static str),
    #[error(
        "the {which} sample holds {len} values, more than the {MAX_SAMPLE_LEN} a test accepts"
    )]
    TooLong { which: &'static str, len: usize },
}

/// Tests whether `x` tends to be greater than `y` (one-sided), as SciPy's `mannwhitneyu(x, y,
/// alternative="greater")` does.
pub fn greater(x: &[f64], y: &[f64]) -> Result<MannWhitney, StatsError> {
    check(x, "first")?;
    check(y, "second")?;
    let (n1, n2) = (x.len(), y.len());
    let ranks = average_ranks(x, y);
    let rank_sum_x: f64 = ranks.ranks[..n1].iter().sum();
    let u = rank_sum_x - (n1 * (n1 + 1)) as f64 / 2.0;
    let tied = ranks.tie_sizes.iter().any(|&t| t > 1);
    if n1.min(n2) <= EXACT_MAX_SMALLER && !tied {
        // Without ties U is a whole number.
        let p_value = exact_survival(n1, n2, u.round() as usize);
        return Ok(MannWhitney {
            u,
            p_value,
            method: Method::Exact,
        });
    }
    Ok(MannWhitney {
        u,
        p_value: asymptotic_survival(u, n1, n2, &ranks.tie_sizes),
        method: Method::Asymptotic,
    })
}

/// The median of finite samples (the mean of the two middle values for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len() % 2 == 0 {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    })
}

fn check(sample: &[f64], which: &'static str) -> Result<(), StatsError> {
    if sample.is_empty() {
        return Err(StatsError::Empty(which));
    }
    if sample.len() > MAX_SAMPLE_LEN {
        return Err(StatsError::TooLong {
            which,
            len: sample.len(),
        });
    }
    if sample.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::NotFinite(which));
    }
    Ok(())
}

/// Ranks of the pooled sample (`x` first, then `y`), ties given the average of the ranks they span, and the size
/// of every group of equal values.
struct PooledRanks {
    ranks: Vec<f64>,
    tie_sizes: Vec<usize>,
}

fn average_ranks(x: &[f64], y: &[f64]) -> PooledRanks {
    let pooled: Vec<f64> = x.iter().chain(y).copied().collect();
    let mut order: Vec<usize> = (0..pooled.len()).collect();
    order.sort_by(|&a, &b| pooled[a].total_cmp(&pooled[b]));
    let mut ranks = vec![0.0; pooled.len()];
    let mut tie_sizes = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && pooled[order[end]] == pooled[order[start]] {
            end += 1;
        }
        // Ranks start + 1 ..= end share their mean.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &index in &order[start..end] {
            ranks[index] = rank;
        }
        tie_sizes.push(end - start);
        start = end;
    }
    PooledRanks { ranks, tie_sizes }
}

/// P(U ≥ u) under the normal approximation: mean n1·n2/2, variance with the tie correction, and the continuity
/// correction of ½ (SciPy's `_get_mwu_z`).
fn asymptotic_survival(u: f64, n1: usize, n2: usize, tie_sizes: &[usize]) -> f64 {
    let (n1, n2) = (n1 as f64, n2 as f64);
    let n = n1 + n2;
    let tie_term: f64 = tie_sizes
        .iter()
        .map(|&t| {
            let t = t as f64;
            t * t * t - t
        })
        .sum();
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if variance <= 0.0 {
        // Every value equal: no evidence either way.
        return 1.0;
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / variance.sqrt();
    let standard = Normal::new(0.0, 1.0).expect("the standard normal distribution is valid");
    standard.sf(z).clamp(0.0, 1.0)
}

/// P(U ≥ u) under the exact null distribution of U for samples of `n1` and `n2` values without ties.
///
/// The number of orderings with U = k is the coefficient of q^k in the Gaussian binomial coefficient
/// [n1 + n2 choose m]_q (m = min(n1, n2)), = Π_{i=1..m} (1 − q^(N−m+i)) / (1 − q^i) with N = n1 + n2: exact
/// integers, computed in `i128` (m ≤ [`EXACT_MAX_SMALLER`], so every count is below C(N, 8)).
fn exact_survival(n1: usize, n2: usize, u: usize) -> f64 {
    let (small, large) = (n1.min(n2), n1.max(n2));
    let degree = small * large;
    let mut counts = vec![0i128; degree + 1];
    counts[0] = 1;
    for i in 1..=small {
        // Multiply by (1 − q^(large + i)), highest powers first so each coefficient is read before it changes.
        let shift = large + i;
        for k in (shift..=degree).rev() {
            counts[k] -= counts[k - shift];
        }
        // Divide by (1 − q^i): a running sum with stride i.
        for k in i..=degree {
            counts[k] += counts[k - i];
        }
    }
    // The distribution of U is symmetric, so it does not matter which sample is the smaller one.
    let total: i128 = counts.iter().sum();
    let at_least: i128 = counts.iter().skip(u.min(degree + 1)).sum();
    (at_least as f64 / total as f64).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SciPy's answers for the committed vectors (tests/fixtures/stats/generate.py).
    const REFERENCE: &str = include_str!("../tests/fixtures/stats/mann_whitney.json");

    #[test]
    fn matches_scipy_on_every_reference_vector() {
        let reference: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
        let cases = reference["cases"].as_array().unwrap();
        assert!(
            cases.len() >= 100,
            "the reference holds {} cases",
            cases.len()
        );
        let mut worst = 0.0f64;
        for (index, case) in cases.iter().enumerate() {
            let sample = |key: &str| -> Vec<f64> {
                case[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            };
            let result = greater(&sample("x"), &sample("y")).unwrap();
            let expected_p = case["p"].as_f64().unwrap();
            assert_eq!(result.u, case["u"].as_f64().unwrap(), "case {index}: U");
            assert_eq!(
                result.method.name(),
                case["method"].as_str().unwrap(),
                "case {index}: method"
            );
            let difference = (result.p_value - expected_p).abs();
            // Absolute for ordinary p-values, relative for the tiny ones a clear regression produces.
            assert!(
                difference <= 1e-12 || difference <= 1e-9 * expected_p,
                "case {index} ({}): p = {} but SciPy says {expected_p}",
                case["kind"],
                result.p_value
            );
            worst = worst.max(difference);
        }
        eprintln!(
            "largest |p - p_scipy| over {} cases: {worst:e}",
            cases.len()
        );
    }

    #[test]
    fn a_clear_shift_is_significant_and_no_shift_is_not() {
        let stable: Vec<f64> = (0..20).map(|i| 0.25 + 0.001 * i as f64).collect();
        let slower: Vec<f64> = stable.iter().map(|v| v * 1.5).collect();
        assert!(greater(&slower, &stable).unwrap().p_value < 1e-6);
        assert!(greater(&stable, &slower).unwrap().p_value > 0.999);
        assert!(greater(&stable, &stable).unwrap().p_value > 0.4);
    }

    #[test]
    fn exact_distribution_sums_to_one_and_is_symmetric() {
        for (n1, n2) in [(1, 1), (3, 5), (8, 8), (8, 30), (2, 100)] {
            assert_eq!(exact_survival(n1, n2, 0), 1.0);
            assert_eq!(exact_survival(n1, n2, n1 * n2 + 1), 0.0);
            for u in 0..=n1 * n2 {
                let upper = exact_survival(n1, n2, u);
                let mirrored = exact_survival(n2, n1, u);
                assert!((upper - mirrored).abs() < 1e-15, "{n1}x{n2} at {u}");
            }
        }
    }

    #[test]
    fn bad_samples_are_errors_not_panics() {
        assert_eq!(greater(&[], &[1.0]), Err(StatsError::Empty("first")));
        assert_eq!(greater(&[1.0], &[]), Err(StatsError::Empty("second")));
        assert_eq!(
            greater(&[f64::NAN], &[1.0]),
            Err(StatsError::NotFinite("first"))
        );
        assert_eq!(
            greater(&[1.0], &[f64::INFINITY]),
            Err(StatsError::NotFinite("second"))
        );
        let long = vec![1.0; MAX_SAMPLE_LEN + 1];
        assert!(matches!(
            greater(&long, &[1.0]),
            Err(StatsError::TooLong { .. })
        ));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
