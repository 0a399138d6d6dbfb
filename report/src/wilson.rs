//! Proportions and their 95% Wilson score intervals.

use serde::Serialize;

/// The two-sided 95% normal quantile, Φ⁻¹(0.975).
pub const Z95: f64 = 1.959_963_984_540_054;

/// A proportion `x / n` with its Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Proportion {
    /// Successes (here: mismatches, errors).
    pub count: u64,
    /// Trials (compared pairs, outcomes).
    pub total: u64,
    /// `count / total`; `None` when `total` is 0.
    pub rate: Option<f64>,
    /// Lower bound of the 95% Wilson score interval; `None` when `total` is 0.
    pub low: Option<f64>,
    /// Upper bound of the 95% Wilson score interval; `None` when `total` is 0.
    pub high: Option<f64>,
}

impl Proportion {
    pub fn new(count: u64, total: u64) -> Proportion {
        let (rate, low, high) = match wilson(count, total, Z95) {
            Some((low, high)) => (Some(count as f64 / total as f64), Some(low), Some(high)),
            None => (None, None, None),
        };
        Proportion {
            count,
            total,
            rate,
            low,
            high,
        }
    }
}

/// Wilson score interval (Wilson 1927; Newcombe 1998, method 3, without
/// continuity correction) for `x` successes in `n` trials at normal quantile
/// `z`:
///
/// ```text
///   p̂ = x/n
///   centre = (p̂ + z²/2n) / (1 + z²/n)
///   half   = z / (1 + z²/n) · √( p̂(1−p̂)/n + z²/4n² )
///   [centre − half, centre + half]
/// ```
///
/// `None` for `n == 0`. `x > n` is clamped to `n`. The bounds are clamped to
/// [0, 1], and are exactly 0 for `x == 0` and exactly 1 for `x == n` (where
/// the formula gives them up to rounding).
pub fn wilson(x: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let x = x.min(n);
    let nf = n as f64;
    let p = x as f64 / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let centre = (p + z2 / (2.0 * nf)) / denom;
    let half = z / denom * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    let low = if x == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if x == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    fn check(x: u64, n: u64, low: f64, high: f64, tol: f64) {
        let (l, h) = wilson(x, n, Z95).unwrap();
        assert!(
            close(l, low, tol) && close(h, high, tol),
            "{x}/{n}: got [{l}, {h}], want [{low}, {high}] ± {tol}"
        );
    }

    /// Published values: Newcombe, R. G. (1998), "Two-sided confidence
    /// intervals for the single proportion: comparison of seven methods",
    /// Statistics in Medicine 17:857–872, Table II, method 3 (Wilson score
    /// without continuity correction), given to 4 decimals.
    #[test]
    fn newcombe_1998_table_ii_method_3() {
        check(81, 263, 0.2553, 0.3662, 5e-5);
        check(15, 148, 0.0624, 0.1605, 5e-5);
        check(0, 20, 0.0, 0.1611, 5e-5);
        check(1, 29, 0.0061, 0.1718, 5e-5);
    }

    /// Reference values computed independently with Python's `math` only
    /// (no statsmodels), z = 1.959963984540054:
    ///
    /// ```python
    /// def w(x, n):
    ///     p = x / n; d = 1 + z*z/n; c = (p + z*z/(2*n)) / d
    ///     h = z / d * math.sqrt(p*(1-p)/n + z*z/(4*n*n))
    ///     return max(0, c - h), min(1, c + h)
    /// ```
    ///
    /// 0/10 → [0, 0.277533]; 5/100 → [0.021544, 0.111750];
    /// 50/100 → [0.403832, 0.596168]; 1/1000 → [0.000177, 0.005643];
    /// 0/100 → [0, 0.036993]; 1/100 → [0.001767, 0.054486];
    /// 10/10 → [0.722467, 1]; 0/381 → [0, 0.009982]; 2/1000 → [0.000549, 0.007263].
    /// (statsmodels' `proportion_confint(x, n, method="wilson")` gives the same.)
    #[test]
    fn python_reference_values() {
        check(0, 10, 0.0, 0.277533, 1e-6);
        check(5, 100, 0.021544, 0.111750, 1e-6);
        check(50, 100, 0.403832, 0.596168, 1e-6);
        check(1, 1000, 0.000177, 0.005643, 1e-6);
        check(0, 100, 0.0, 0.036993, 1e-6);
        check(1, 100, 0.001767, 0.054486, 1e-6);
        check(10, 10, 0.722467, 1.0, 1e-6);
        check(0, 381, 0.0, 0.009982, 1e-6);
        check(2, 1000, 0.000549, 0.007263, 1e-6);
    }

    #[test]
    fn edges() {
        assert_eq!(wilson(0, 0, Z95), None);
        assert_eq!(wilson(0, 5, Z95).unwrap().0, 0.0);
        assert_eq!(wilson(5, 5, Z95).unwrap().1, 1.0);
        // x > n is clamped rather than producing NaN.
        assert_eq!(wilson(7, 5, Z95), wilson(5, 5, Z95));
        // Symmetry: [l, h] for x/n is [1−h, 1−l] for (n−x)/n.
        let (l, h) = wilson(3, 40, Z95).unwrap();
        let (l2, h2) = wilson(37, 40, Z95).unwrap();
        assert!(close(l, 1.0 - h2, 1e-12) && close(h, 1.0 - l2, 1e-12));
        // The point estimate lies inside; the interval narrows with n.
        for (x, n) in [(1u64, 3u64), (5, 100), (999, 1000)] {
            let (l, h) = wilson(x, n, Z95).unwrap();
            let p = x as f64 / n as f64;
            assert!(l <= p && p <= h);
        }
        let w1 = wilson(10, 100, Z95).unwrap();
        let w2 = wilson(100, 1000, Z95).unwrap();
        assert!(w2.1 - w2.0 < w1.1 - w1.0);
    }

    #[test]
    fn proportion() {
        let p = Proportion::new(5, 100);
        assert_eq!(p.rate, Some(0.05));
        assert!(close(p.low.unwrap(), 0.021544, 1e-6));
        let empty = Proportion::new(0, 0);
        assert_eq!((empty.rate, empty.low, empty.high), (None, None, None));
    }
}
