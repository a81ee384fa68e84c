//! The bench's two order statistics, defined once:
//!
//! - [`median`]: of an even count, the mean of the two middle values (the
//!   textbook median; used for every "median of the runs" figure).
//! - [`percentile`]: nearest rank, the smallest sample with at least `p`% of the
//!   samples at or below it (always a measured value; used for the p50 and p99
//!   round trips, so that a p50 is a round trip that happened).
//!
//! Values that are not finite (a NaN from a run that measured nothing) are left out.

/// The median of the finite values of `v`; `None` if there are none.
pub fn median(v: &[f64]) -> Option<f64> {
    let s = sorted_finite(v);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

/// The nearest-rank `p`th percentile (0 < p <= 100) of the finite values of `v`;
/// `None` if there are none.
pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    nearest_rank(&sorted_finite(v), p)
}

/// [`percentile`] of values already sorted in ascending order (no copy: for the
/// load generator's millions of round trips).
pub fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn sorted_finite(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, f64::NAN, 3.0]), Some(2.0));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 99.0), Some(10.0));
        assert_eq!(percentile(&v, 10.0), Some(1.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(nearest_rank(&[7u32, 8, 9], 50.0), Some(8));
    }
}
