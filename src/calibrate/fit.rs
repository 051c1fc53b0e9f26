//! The statistics of calibration, as pure functions over samples: maximum-likelihood fits of
//! the distribution families [`crate::dist`] samples from, the Kolmogorov–Smirnov distance of
//! a sample to a fitted [`Dist`] and the choice of family by it, least squares with the
//! slope's standard error, and a proportion with its Wilson interval.
//!
//! It must not know about attempts, files or deployments: callers turn observations into
//! samples and give meaning to the numbers. Fitted parameters are rounded to
//! [`SIGNIFICANT_DIGITS`] before their distance is measured, so the distance printed is that
//! of the distribution written out.

use crate::dist::{Dist, DistConfig};
use crate::validate::{is_non_negative, is_positive};
use serde::Serialize;

/// Significant digits of fitted parameters: far below the statistical error of any sample
/// a calibration sees (10⁻⁵ relative), and short enough to read.
pub const SIGNIFICANT_DIGITS: i32 = 5;

/// z of a two-sided 95% interval: Φ⁻¹(0.975).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// `x` rounded to `digits` significant digits (0 and non-finite values unchanged).
pub fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits - 1 - magnitude);
    let rounded = (x * scale).round() / scale;
    // Dividing by a power of ten can leave a long binary tail (0.30000000000000004); the
    // shortest representation of the rounded decimal is what a reader expects.
    format!("{rounded:.*e}", (digits - 1).max(0) as usize).parse().unwrap_or(rounded)
}

fn round(x: f64) -> f64 {
    round_significant(x, SIGNIFICANT_DIGITS)
}

/// The Kolmogorov–Smirnov distance `sup |F_n(x) − F(x)|` of a sample, sorted ascending, to
/// `dist`: at each order statistic the larger of the steps above and below the CDF.
pub fn ks_distance(sorted: &[f64], dist: &Dist) -> f64 {
    let n = sorted.len();
    let mut distance = 0.0_f64;
    let mut i = 0;
    while i < n {
        // Equal values form one step of F_n: compare F_n just below and at the value with F
        // just below and at it, so a discrete distribution (a constant) is measured right.
        let x = sorted[i];
        let mut j = i;
        while j + 1 < n && sorted[j + 1] == x {
            j += 1;
        }
        let at = ((j + 1) as f64 / n as f64 - dist.cdf(x)).abs();
        let below = (i as f64 / n as f64 - dist.cdf(x.next_down())).abs();
        distance = distance.max(at).max(below);
        i = j + 1;
    }
    distance
}

/// The 5% critical value of the KS distance for `n` samples, `1.358 / √n` (asymptotic, known
/// parameters). Parameters fitted from the same sample make the true critical value smaller
/// (Lilliefors), so a distance below this one is "not rejected" only in this lenient sense.
pub fn ks_critical_95(n: usize) -> f64 {
    1.358 / (n.max(1) as f64).sqrt()
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation (n − 1 in the denominator).
fn sample_sd(xs: &[f64]) -> f64 {
    let m = mean(xs);
    let squares: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    (squares / (xs.len() as f64 - 1.0)).sqrt()
}

/// The median of a sample (the mean of the two middle values for an even count).
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(if n % 2 == 1 { sorted[n / 2] } else { 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]) })
}

/// Lognormal by maximum likelihood: μ and σ are the mean and (1/n) standard deviation of ln x;
/// the median is e^μ. `None` unless every value is > 0 and they are not all equal.
pub fn fit_lognormal(xs: &[f64]) -> Option<DistConfig> {
    if xs.len() < 2 || xs.iter().any(|x| !is_positive(*x)) {
        return None;
    }
    let logs: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    let mu = mean(&logs);
    let sigma = (logs.iter().map(|l| (l - mu) * (l - mu)).sum::<f64>() / logs.len() as f64).sqrt();
    (sigma > 0.0).then(|| DistConfig::Lognormal {
        median: round(mu.exp()),
        sigma: Some(round(sigma)),
        p90: None,
    })
}

/// ψ(x), the digamma function, for x > 0: the recurrence ψ(x) = ψ(x + 1) − 1/x up to x >= 10,
/// then the asymptotic series to x⁻¹² (its next term is below 1e-13 there).
pub fn digamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 10.0 {
        shift -= 1.0 / x;
        x += 1.0;
    }
    let inv2 = 1.0 / (x * x);
    let series = inv2
        * (1.0 / 12.0
            - inv2 * (1.0 / 120.0 - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0 - inv2 * (1.0 / 132.0)))));
    shift + x.ln() - 0.5 / x - series
}

/// ψ'(x), the trigamma function, for x > 0, by the same recurrence and asymptotic series.
pub fn trigamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 10.0 {
        shift += 1.0 / (x * x);
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let tail = 1.0 / 42.0 - inv2 * (1.0 / 30.0 - inv2 * (5.0 / 66.0));
    let series = inv * inv2 * (1.0 / 6.0 - inv2 * (1.0 / 30.0 - inv2 * tail));
    shift + inv + 0.5 * inv2 + series
}

/// Gamma by maximum likelihood: the shape k solves ln k − ψ(k) = ln(mean) − mean(ln x) (Minka's
/// starting point, then Newton), the scale is mean / k. `None` unless every value is > 0 and
/// they are not all equal.
pub fn fit_gamma(xs: &[f64]) -> Option<DistConfig> {
    if xs.len() < 2 || xs.iter().any(|x| !is_positive(*x)) {
        return None;
    }
    let m = mean(xs);
    let s = m.ln() - mean(&xs.iter().map(|x| x.ln()).collect::<Vec<_>>());
    // s >= 0 by Jensen; (near) 0 means no spread, and NaN no answer.
    if s.is_nan() || s <= 1e-12 {
        return None;
    }
    let mut shape = (3.0 - s + ((s - 3.0) * (s - 3.0) + 24.0 * s).sqrt()) / (12.0 * s);
    for _ in 0..50 {
        let step = (shape.ln() - digamma(shape) - s) / (1.0 / shape - trigamma(shape));
        // ln k − ψ(k) is decreasing and convex: Newton from Minka's start converges; halving
        // keeps the shape positive if a step overshoots.
        let next = if shape - step > 0.0 { shape - step } else { shape / 2.0 };
        let converged = (next - shape).abs() <= 1e-12 * shape;
        shape = next;
        if converged {
            break;
        }
    }
    is_positive(shape).then(|| DistConfig::Gamma {
        shape: Some(round(shape)),
        scale: Some(round(m / shape)),
        mean: None,
        cv: None,
    })
}

/// Normal (truncated at 0 by the sampler) by the sample mean and standard deviation; `None`
/// unless the mean is > 0 and the values are not all equal.
pub fn fit_normal(xs: &[f64]) -> Option<DistConfig> {
    if xs.len() < 2 {
        return None;
    }
    let (m, sd) = (mean(xs), sample_sd(xs));
    (m > 0.0 && is_positive(sd)).then(|| DistConfig::Normal { mean: round(m), sd: round(sd) })
}

/// Exponential by its maximum-likelihood mean; `None` unless the values are >= 0 with a
/// positive mean.
pub fn fit_exponential(xs: &[f64]) -> Option<DistConfig> {
    if xs.is_empty() || xs.iter().any(|x| *x < 0.0) {
        return None;
    }
    let m = mean(xs);
    is_positive(m).then(|| DistConfig::Exponential { mean: round(m) })
}

/// Uniform on the sample's range (its maximum-likelihood estimate); `None` for a negative
/// minimum or a zero range.
pub fn fit_uniform(xs: &[f64]) -> Option<DistConfig> {
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min >= 0.0 && max > min && max.is_finite())
        .then(|| DistConfig::Uniform { min: round_down(min), max: round_up(max) })
}

/// Rounding the range outwards keeps every sample inside it.
fn round_down(x: f64) -> f64 {
    let r = round(x);
    if r <= x {
        r
    } else {
        round(x - (r - x).abs() * 2.0).min(x)
    }
}

fn round_up(x: f64) -> f64 {
    let r = round(x);
    if r >= x {
        r
    } else {
        round(x + (x - r).abs() * 2.0).max(x)
    }
}

/// One family fitted to a sample and how far the sample is from it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FamilyFit {
    pub config: DistConfig,
    /// Kolmogorov–Smirnov distance of the sample to the fitted distribution.
    pub ks_distance: f64,
}

/// The family chosen for a sample, with every candidate tried.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DistFit {
    /// Samples the fit used.
    pub n: usize,
    pub chosen: FamilyFit,
    /// Every family that could be fitted, the chosen one included, in the order tried.
    pub candidates: Vec<FamilyFit>,
}

impl DistFit {
    /// The 5% KS critical value for this sample size ([`ks_critical_95`]).
    pub fn ks_critical_95(&self) -> f64 {
        ks_critical_95(self.n)
    }
}

/// A maximum-likelihood fit of one family.
type Fitter = fn(&[f64]) -> Option<DistConfig>;

/// Fits every family [`crate::dist`] can sample (lognormal, gamma, normal, exponential,
/// uniform) by maximum likelihood and chooses the one with the smallest KS distance (ties:
/// the earlier in that order). The empirical family is not a candidate: it would always win
/// by reproducing the sample. All values equal (or one value) gives a constant. `None` for an
/// empty sample or a non-finite or negative value.
pub fn fit_best(xs: &[f64]) -> Option<DistFit> {
    if xs.is_empty() || xs.iter().any(|x| !is_non_negative(*x)) {
        return None;
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let measure = |config: DistConfig| {
        let dist = Dist::try_from(config.clone()).ok()?;
        Some(FamilyFit { ks_distance: ks_distance(&sorted, &dist), config })
    };
    // Equal up to float noise (a residual computed from exact data) is a constant.
    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
    if max - min <= 1e-9 * max.abs() {
        // Measured on the values as written (rounded), so float noise below the rounding is
        // not a misfit of a step CDF.
        let value = round(sorted[0]);
        let rounded: Vec<f64> = sorted.iter().map(|x| round(*x)).collect();
        let dist = Dist::try_from(DistConfig::Constant { value }).ok()?;
        let chosen =
            FamilyFit { ks_distance: ks_distance(&rounded, &dist), config: DistConfig::Constant { value } };
        return Some(DistFit { n: xs.len(), candidates: vec![chosen.clone()], chosen });
    }
    let fitters: [Fitter; 5] = [fit_lognormal, fit_gamma, fit_normal, fit_exponential, fit_uniform];
    let candidates: Vec<FamilyFit> = fitters.iter().filter_map(|fit| fit(xs)).filter_map(measure).collect();
    let chosen = candidates.iter().fold(None::<&FamilyFit>, |best, c| match best {
        Some(b) if b.ks_distance <= c.ks_distance => Some(b),
        _ => Some(c),
    })?;
    Some(DistFit { n: xs.len(), chosen: chosen.clone(), candidates })
}

/// `y = intercept + slope · x` by ordinary least squares.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinearFit {
    pub n: usize,
    pub intercept: f64,
    pub slope: f64,
    /// Standard error of the slope, `√(s² / Sxx)` with `s² = RSS / (n − 2)`.
    pub slope_se: f64,
}

/// Least squares of `ys` on `xs`; `None` with fewer than 3 points or no spread in `xs` (the
/// slope is then not identifiable).
pub fn least_squares(xs: &[f64], ys: &[f64]) -> Option<LinearFit> {
    let n = xs.len();
    if n < 3 || ys.len() != n {
        return None;
    }
    let (mx, my) = (mean(xs), mean(ys));
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if sxx.is_nan() || sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let rss: f64 = xs.iter().zip(ys).map(|(x, y)| (y - intercept - slope * x).powi(2)).sum();
    let slope_se = (rss / (n as f64 - 2.0) / sxx).sqrt();
    Some(LinearFit { n, intercept, slope, slope_se })
}

/// `k` events out of `n` trials with the Wilson score 95% interval (sound near 0 and 1, where
/// the normal approximation is not).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Proportion {
    pub k: u64,
    pub n: u64,
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

pub fn proportion(k: u64, n: u64) -> Proportion {
    if n == 0 {
        return Proportion { k, n, rate: 0.0, low: 0.0, high: 1.0 };
    }
    let (kf, nf) = (k as f64, n as f64);
    let p = kf / nf;
    let z2 = Z_95 * Z_95;
    let centre = (p + z2 / (2.0 * nf)) / (1.0 + z2 / nf);
    let half = Z_95 * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / (1.0 + z2 / nf);
    Proportion { k, n, rate: p, low: (centre - half).max(0.0), high: (centre + half).min(1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn draws(config: DistConfig, n: usize, seed: u64) -> Vec<f64> {
        let dist = Dist::try_from(config).unwrap();
        let mut rng = SplitMix64::new(seed);
        (0..n).map(|_| dist.sample(&mut rng)).collect()
    }

    #[test]
    fn ks_distance_of_a_hand_worked_sample() {
        // Against U(0, 1): at 0.1 the steps are 1/3 − 0.1 and 0.1 − 0; at 0.4, 2/3 − 0.4 and
        // 0.4 − 1/3; at 0.7, 1 − 0.7 and 0.7 − 2/3. The largest is 0.3.
        let uniform = Dist::try_from(DistConfig::Uniform { min: 0.0, max: 1.0 }).unwrap();
        assert!((ks_distance(&[0.1, 0.4, 0.7], &uniform) - 0.3).abs() < 1e-15);
        // One value at the median of a continuous distribution: 1/2 either way.
        let e = Dist::try_from(DistConfig::Exponential { mean: 1.0 }).unwrap();
        assert!((ks_distance(&[std::f64::consts::LN_2], &e) - 0.5).abs() < 1e-12);
        // A constant sample against its constant: 0.
        assert_eq!(ks_distance(&[5.0, 5.0], &Dist::constant(5.0)), 0.0);
    }

    #[test]
    fn lognormal_mle_recovers_its_parameters() {
        // n = 4000 draws of lognormal(median 800, σ 0.4). The MLE of μ = ln median has SE
        // σ/√n = 0.0063 and that of σ has SE σ/√(2n) = 0.0045; allow 4 SE each.
        let n = 4_000;
        let xs = draws(DistConfig::Lognormal { median: 800.0, sigma: Some(0.4), p90: None }, n, 7);
        let Some(DistConfig::Lognormal { median, sigma: Some(sigma), .. }) = fit_lognormal(&xs) else {
            panic!("a lognormal fit")
        };
        let se_mu = 0.4 / (n as f64).sqrt();
        assert!((median.ln() - 800f64.ln()).abs() < 4.0 * se_mu, "median {median}");
        assert!((sigma - 0.4).abs() < 4.0 * 0.4 / (2.0 * n as f64).sqrt(), "sigma {sigma}");
        let best = fit_best(&xs).unwrap();
        assert!(matches!(best.chosen.config, DistConfig::Lognormal { .. }), "{best:?}");
        assert!(best.chosen.ks_distance < best.ks_critical_95(), "{best:?}");
        assert_eq!(best.candidates.len(), 5);
    }

    #[test]
    fn gamma_mle_recovers_its_shape() {
        // The shape MLE has asymptotic variance k / (n (k ψ'(k) − 1)); for k = 3, n = 4000 its
        // SE is 0.065. Allow 4 SE; the mean (scale·shape) is the sample mean.
        let n = 4_000;
        let xs = draws(DistConfig::Gamma { shape: Some(3.0), scale: Some(20.0), mean: None, cv: None }, n, 8);
        let Some(DistConfig::Gamma { shape: Some(shape), scale: Some(scale), .. }) = fit_gamma(&xs) else {
            panic!("a gamma fit")
        };
        let se = (3.0 / (n as f64 * (3.0 * trigamma(3.0) - 1.0))).sqrt();
        assert!((shape - 3.0).abs() < 4.0 * se, "shape {shape}, 4 SE {}", 4.0 * se);
        assert!((shape * scale / mean(&xs) - 1.0).abs() < 1e-4);
        // ψ(1) = −γ, ψ'(1) = π²/6.
        assert!((digamma(1.0) + 0.577_215_664_901_532_9).abs() < 1e-12);
        assert!((trigamma(1.0) - std::f64::consts::PI.powi(2) / 6.0).abs() < 1e-12);
    }

    #[test]
    fn normal_and_exponential_fits_are_their_moments() {
        let xs = [50.0, 60.0, 70.0];
        assert_eq!(fit_normal(&xs), Some(DistConfig::Normal { mean: 60.0, sd: 10.0 }));
        assert_eq!(fit_exponential(&xs), Some(DistConfig::Exponential { mean: 60.0 }));
        assert_eq!(fit_uniform(&xs), Some(DistConfig::Uniform { min: 50.0, max: 70.0 }));
        // A sample of a normal is closer to a normal than to an exponential or a uniform.
        let xs = draws(DistConfig::Normal { mean: 63.0, sd: 12.6 }, 2_000, 9);
        let best = fit_best(&xs).unwrap();
        assert!(best.chosen.ks_distance < best.ks_critical_95(), "{best:?}");
        let exponential = best.candidates.iter().find(|c| matches!(c.config, DistConfig::Exponential { .. }));
        assert!(exponential.unwrap().ks_distance > 0.2);
    }

    #[test]
    fn equal_values_are_a_constant_and_bad_samples_are_refused() {
        let best = fit_best(&[7.0, 7.0, 7.0]).unwrap();
        assert_eq!(best.chosen, FamilyFit { config: DistConfig::Constant { value: 7.0 }, ks_distance: 0.0 });
        // Differences below 1e-9 relative are float noise (500 ms computed as end − start).
        let noisy = fit_best(&[500.0, 500.0 - 1e-10, 500.0 + 1e-10]).unwrap();
        assert_eq!(
            noisy.chosen,
            FamilyFit { config: DistConfig::Constant { value: 500.0 }, ks_distance: 0.0 }
        );
        assert_eq!(fit_best(&[]), None);
        assert_eq!(fit_best(&[1.0, f64::NAN]), None);
        assert_eq!(fit_lognormal(&[0.0, 1.0]), None);
    }

    #[test]
    fn least_squares_recovers_exact_linear_data() {
        let xs: Vec<f64> = (0..20).map(|i| i as f64 * 1.5).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 300.0 + 12.5 * x).collect();
        let fit = least_squares(&xs, &ys).unwrap();
        assert!((fit.slope - 12.5).abs() < 1e-12 && (fit.intercept - 300.0).abs() < 1e-9, "{fit:?}");
        assert!(fit.slope_se < 1e-9);
        assert_eq!(least_squares(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
    }

    #[test]
    fn wilson_interval_of_a_hand_worked_case() {
        // 10 of 100: centre (0.1 + 1.92/100)/(1.0384) = 0.1148, half-width 0.0582.
        let p = proportion(10, 100);
        assert!((p.low - 0.0552).abs() < 5e-4 && (p.high - 0.1744).abs() < 5e-4, "{p:?}");
        let zero = proportion(0, 1_000);
        assert!(zero.rate == 0.0 && zero.low < 1e-15, "{zero:?}");
        assert!((zero.high - 0.00383).abs() < 5e-5, "{zero:?}");
    }

    #[test]
    fn rounding_keeps_significant_digits() {
        assert_eq!(round_significant(1802.1234, 5), 1802.1);
        assert_eq!(round_significant(0.45123456, 5), 0.45123);
        assert_eq!(round_significant(0.1 + 0.2, 5), 0.3);
        assert_eq!(round_significant(0.0, 5), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
