//! Statistics over replications and across points: mean with a Student-t 95% confidence
//! interval, and Pareto dominance. Pure functions on numbers; no knowledge of simulation.

/// Two-sided 95% quantiles of Student's t (t_{0.975, df}) for df = 1..=30, to 6 decimals.
/// Tested against the closed-form CDF of t for integer df (Abramowitz & Stegun 26.7.3–4).
const T975: [f64; 30] = [
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
    2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
    2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
];

/// t_{0.975, df}: the table up to 30 degrees of freedom, beyond it the Cornish-Fisher expansion
/// of t around the normal quantile (error < 1e-6 for df > 30).
pub fn t_975(df: u32) -> f64 {
    match df {
        0 => f64::NAN,
        1..=30 => T975[df as usize - 1],
        _ => {
            let z: f64 = 1.959_963_984_540_054;
            let n = f64::from(df);
            let (z3, z5, z7, z9) = (z.powi(3), z.powi(5), z.powi(7), z.powi(9));
            z + (z3 + z) / (4.0 * n)
                + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * n * n)
                + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * n.powi(3))
                + (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z) / (92_160.0 * n.powi(4))
        }
    }
}

/// Mean and 95% confidence interval of the mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    /// `None` with fewer than two values (no spread to estimate).
    pub ci95: Option<(f64, f64)>,
}

/// Mean ± t_{0.975, n−1} · s / √n, with `s` the sample standard deviation (n − 1 divisor).
pub fn estimate(values: &[f64]) -> Estimate {
    let n = values.len();
    if n == 0 {
        return Estimate { mean: f64::NAN, ci95: None };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Estimate { mean, ci95: None };
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half_width = t_975(n as u32 - 1) * (variance / n as f64).sqrt();
    Estimate { mean, ci95: Some((mean - half_width, mean + half_width)) }
}

/// For each vector of objectives (all minimised), whether no other vector dominates it: is at
/// least as good on every objective and strictly better on one. Equal vectors are all on the
/// front. A NaN objective never dominates and is never dominated by that objective's side.
pub fn pareto_front(points: &[Vec<f64>]) -> Vec<bool> {
    let dominates =
        |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y);
    points.iter().map(|p| !points.iter().any(|q| dominates(q, p))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P(|T| <= t) for Student's t with integer `df`, in closed form (A&S 26.7.3, 26.7.4):
    /// θ = atan(t / √df); odd df: (2/π)(θ + sinθ (cosθ + 2/3 cos³θ + … )), even df:
    /// sinθ (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + …), both series ending at cos^{df−2}θ.
    fn t_central_probability(t: f64, df: u32) -> f64 {
        let theta = (t / f64::from(df).sqrt()).atan();
        let (s, c) = (theta.sin(), theta.cos());
        if df % 2 == 1 {
            let mut sum = 0.0;
            if df > 1 {
                let mut term = c;
                sum = term;
                let mut k = 3;
                while k < df {
                    term *= c * c * f64::from(k - 1) / f64::from(k);
                    sum += term;
                    k += 2;
                }
            }
            2.0 / std::f64::consts::PI * (theta + s * sum)
        } else {
            let mut term = 1.0;
            let mut sum = 1.0;
            let mut k = 2;
            while k < df {
                term *= c * c * f64::from(k - 1) / f64::from(k);
                sum += term;
                k += 2;
            }
            s * sum
        }
    }

    #[test]
    fn t_quantiles_have_95_percent_central_probability() {
        for df in 1..=200 {
            let p = t_central_probability(t_975(df), df);
            // 6-decimal table values move P by at most ~1e-6 · density ≤ 1e-6.
            assert!((p - 0.95).abs() < 2e-6, "df {df}: t {} gives {p}", t_975(df));
        }
        // Closed forms: df 1 is Cauchy (tan(0.475π)); df 2 is (2p−1)/√(2p(1−p)) at p = 0.975.
        assert!((t_975(1) - (0.475 * std::f64::consts::PI).tan()).abs() < 1e-6);
        assert!((t_975(2) - 0.95 / (2.0f64 * 0.975 * 0.025).sqrt()).abs() < 1e-6);
        assert!((t_975(1_000_000) - 1.959_964).abs() < 1e-5, "tends to the normal quantile");
        assert!((1..300).all(|df| t_975(df + 1) < t_975(df)), "decreasing in df");
    }

    #[test]
    fn confidence_interval_by_hand() {
        // 1, 2, 3, 4, 5: mean 3, s² = 10/4 = 2.5, se = √(2.5/5) = √0.5; t_{0.975,4} = 2.776445.
        let e = estimate(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(e.mean, 3.0);
        let (lo, hi) = e.ci95.unwrap();
        let half = 2.776445 * 0.5f64.sqrt();
        assert!((hi - 3.0 - half).abs() < 1e-12 && (3.0 - lo - half).abs() < 1e-12);
        assert_eq!(estimate(&[7.0]).ci95, None);
        assert_eq!(estimate(&[2.0, 2.0, 2.0]).ci95, Some((2.0, 2.0)));
    }

    #[test]
    fn pareto_flags_on_a_hand_made_set() {
        let set = vec![
            vec![1.0, 5.0, 0.0], // cheapest: front
            vec![2.0, 3.0, 0.0], // trades cost for latency: front
            vec![2.0, 3.0, 0.1], // dominated by the previous (same cost and latency, more 429s)
            vec![3.0, 3.0, 0.0], // dominated by [2, 3, 0]
            vec![5.0, 1.0, 0.2], // fastest: front
            vec![1.0, 5.0, 0.0], // equal to the first: both stay on the front
        ];
        assert_eq!(pareto_front(&set), [true, true, false, false, true, true]);
    }
}
