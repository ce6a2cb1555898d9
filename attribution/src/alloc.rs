//! Exact integer splitting: the one place where real-valued shares become
//! microjoules, so conservation holds by construction.
//!
//! [`split`] gives each party `⌊total·wᵢ/Σw⌋` and hands the leftover units
//! out by largest remainder. Parties whose remainders tie are served as a
//! group, all or none, so identical parties always get identical shares; the
//! units a tie group cannot share evenly (fewer than the number of parties)
//! are returned as `unsplit` and the caller books them as unattributed.
//! `Σ shares + unsplit = total` always.

/// Fixed-point scale for normalised weights: 2^52 keeps every f64 weight's
/// significant bits and leaves `total · q` within u128.
const SCALE: f64 = (1u64 << 52) as f64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub shares: Vec<u64>,
    pub unsplit: u64,
}

/// Splits `total` in proportion to `weights`. Weights that are negative or
/// not finite count as 0; if all are 0 nothing is split.
pub fn split(total: u64, weights: &[f64]) -> Split {
    let clean = |w: f64| if w.is_finite() && w > 0.0 { w } else { 0.0 };
    let sum: f64 = weights.iter().map(|&w| clean(w)).sum();
    if weights.is_empty() || sum <= 0.0 || !sum.is_finite() {
        return Split { shares: vec![0; weights.len()], unsplit: total };
    }
    let q: Vec<u128> = weights.iter().map(|&w| (clean(w) / sum * SCALE).floor() as u128).collect();
    let qsum: u128 = q.iter().sum();
    if qsum == 0 {
        return Split { shares: vec![0; weights.len()], unsplit: total };
    }
    let t = total as u128;
    let mut shares = Vec::with_capacity(q.len());
    let mut rems = Vec::with_capacity(q.len());
    let mut given: u128 = 0;
    for &qi in &q {
        let x = t * qi;
        shares.push((x / qsum) as u64);
        rems.push(x % qsum);
        given += x / qsum;
    }
    let mut left = (t - given) as u64;
    if left > 0 {
        // Largest remainder first; ties as groups.
        let mut order: Vec<usize> = (0..q.len()).filter(|&i| rems[i] > 0).collect();
        order.sort_by(|&a, &b| rems[b].cmp(&rems[a]).then(a.cmp(&b)));
        let mut i = 0;
        while i < order.len() && left > 0 {
            let mut j = i;
            while j < order.len() && rems[order[j]] == rems[order[i]] {
                j += 1;
            }
            let group = (j - i) as u64;
            if group > left {
                break;
            }
            for &k in &order[i..j] {
                shares[k] += 1;
            }
            left -= group;
            i = j;
        }
    }
    Split { shares, unsplit: left }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn proportional_and_exact() {
        assert_eq!(split(100, &[1.0, 1.0, 2.0]), Split { shares: vec![25, 25, 50], unsplit: 0 });
        assert_eq!(split(10, &[1.0, 2.0]), Split { shares: vec![3, 7], unsplit: 0 });
        // 10 among three equals: 3 each and 1 that cannot be shared evenly.
        assert_eq!(split(10, &[1.0, 1.0, 1.0]), Split { shares: vec![3, 3, 3], unsplit: 1 });
        assert_eq!(split(7, &[0.0, f64::NAN, -1.0]), Split { shares: vec![0, 0, 0], unsplit: 7 });
        assert_eq!(split(7, &[]), Split { shares: vec![], unsplit: 7 });
        assert_eq!(split(u64::MAX, &[1.0, 0.0]), Split { shares: vec![u64::MAX, 0], unsplit: 0 });
    }

    proptest! {
        #[test]
        fn conserves_and_is_fair(total in 0u64..1_000_000_000_000_000, ws in proptest::collection::vec(0.0f64..1e9, 0..40)) {
            let s = split(total, &ws);
            let sum: u128 = s.shares.iter().map(|&x| x as u128).sum::<u128>() + s.unsplit as u128;
            prop_assert_eq!(sum, total as u128);
            if ws.iter().any(|&w| w > 0.0) { prop_assert!((s.unsplit as usize) < ws.len().max(1)); }
            let wsum: f64 = ws.iter().sum();
            for (i, &w) in ws.iter().enumerate() {
                if w == 0.0 { prop_assert_eq!(s.shares[i], 0); }
                if wsum > 0.0 {
                    let exact = total as f64 * w / wsum;
                    prop_assert!((s.shares[i] as f64 - exact).abs() <= 1.0 + exact * 1e-12, "share {} vs {}", s.shares[i], exact);
                }
                for (j, &v) in ws.iter().enumerate() {
                    if v == w { prop_assert_eq!(s.shares[i], s.shares[j]); }
                }
            }
        }
    }
}
