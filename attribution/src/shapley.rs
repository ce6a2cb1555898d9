//! Shapley values of a cooperative game over `n` players (here: the VMs of
//! one interval, for the forest model's non-additive power curve), exactly
//! or by permutation sampling. Generic: the game is a closure
//! `v(coalition) -> f64`, the coalition a `&[bool]` of length `n`.
//!
//! - [`exact`] enumerates all `2ⁿ` coalitions, each evaluated once, with the
//!   standard weights `|S|!(n−|S|−1)!/n!`; up to [`EXACT_MAX`] players.
//! - [`sample`] and [`sample_until`] average each player's marginal
//!   contribution over random permutations, drawn in antithetic pairs (a
//!   permutation and its reverse: a player early in one is late in the
//!   other, which cancels much of the variance of a convex or concave game).
//!
//! # Error bound of the sampled estimate
//!
//! Each player's estimate is unbiased: every permutation is equally likely,
//! and the Shapley value is the mean marginal contribution over them. An
//! antithetic pair's average is one independent sample (the two halves are
//! not independent of each other), so with `m` pairs the reported
//! `std_err[i]` is the sample standard deviation of the pair averages over
//! `√m`, and `1.96 · std_err[i]` is the 95 % confidence half-width (normal
//! approximation, fine from a few dozen pairs). Efficiency,
//! `Σᵢ φᵢ = v(N) − v(∅)`, holds for every single permutation (its marginal
//! contributions telescope), hence for any average of them: the sum of the
//! sampled values is exact up to floating-point rounding, whatever the
//! number of permutations; only how it is split among the players is
//! uncertain. The tests check both.

/// Most players [`exact`] enumerates (`2²⁰` evaluations, 8 MiB of cache).
pub const EXACT_MAX: usize = 20;

#[derive(Clone, Debug, PartialEq)]
pub struct ShapleyEstimate {
    pub values: Vec<f64>,
    /// Standard error of each value (0 when exact); 95 % half-width = 1.96×.
    pub std_err: Vec<f64>,
    /// How many times the game was evaluated.
    pub evaluations: usize,
    pub exact: bool,
}

impl ShapleyEstimate {
    /// The largest 95 % confidence half-width over the players.
    pub fn max_half_width(&self) -> f64 {
        self.std_err.iter().fold(0.0, |m, s| m.max(1.96 * s))
    }
}

/// Exact Shapley values by enumerating every coalition.
///
/// # Panics
/// If `n > EXACT_MAX`: the caller picks [`sample_until`] for larger games.
pub fn exact(n: usize, v: &mut impl FnMut(&[bool]) -> f64) -> ShapleyEstimate {
    assert!(n <= EXACT_MAX, "exact Shapley values over {n} players: at most {EXACT_MAX}, sample instead");
    let size = 1usize << n;
    let mut mask = vec![false; n];
    // v once per coalition, indexed by its bitmask.
    let cache: Vec<f64> = (0..size)
        .map(|bits| {
            mask.iter_mut().enumerate().for_each(|(i, m)| *m = bits >> i & 1 == 1);
            v(&mask)
        })
        .collect();
    // w[s] = s!(n−s−1)!/n! = 1/(n·C(n−1, s)), built without factorials.
    let mut w = vec![0.0; n];
    let mut binom = 1.0; // C(n−1, s)
    for (s, ws) in w.iter_mut().enumerate() {
        *ws = 1.0 / (n as f64 * binom);
        binom = binom * (n - 1 - s) as f64 / (s + 1) as f64;
    }
    let mut values = vec![0.0; n];
    for bits in 0..size {
        let s = bits.count_ones() as usize;
        if s == n {
            continue;
        }
        for (i, val) in values.iter_mut().enumerate() {
            if bits >> i & 1 == 0 {
                *val += w[s] * (cache[bits | 1 << i] - cache[bits]);
            }
        }
    }
    ShapleyEstimate { values, std_err: vec![0.0; n], evaluations: size, exact: true }
}

/// Shapley values from `perms` sampled permutations (rounded up to whole
/// antithetic pairs, at least 2 pairs so that a standard error exists).
pub fn sample(n: usize, perms: usize, seed: u64, v: &mut impl FnMut(&[bool]) -> f64) -> ShapleyEstimate {
    sample_until(n, perms, perms, 0.0, 0.0, seed, v)
}

/// Samples permutations in batches of `batch` until the largest 95 %
/// half-width is at most `rel_target · scale` (`scale`: e.g. the total
/// dynamic power, so the target is a fraction of what is being split) or
/// `max` permutations have been drawn. The first batch always runs; the
/// same seed gives the same result.
pub fn sample_until(n: usize, batch: usize, max: usize, rel_target: f64, scale: f64, seed: u64, v: &mut impl FnMut(&[bool]) -> f64) -> ShapleyEstimate {
    let mut mask = vec![false; n];
    if n <= 1 {
        // Nothing to sample: one player takes all of v(N) − v(∅).
        let empty = v(&mask);
        mask.fill(true);
        let values = if n == 1 { vec![v(&mask) - empty] } else { Vec::new() };
        return ShapleyEstimate { values, std_err: vec![0.0; n], evaluations: 2, exact: true };
    }
    let v_empty = v(&mask);
    mask.fill(true);
    let v_full = v(&mask);
    let mut evaluations = 2;
    let batch_pairs = batch.div_ceil(2).max(2);
    let max_pairs = max.div_ceil(2).max(batch_pairs);
    let target = rel_target * scale.abs();

    let mut rng = SplitMix64::new(seed);
    let mut perm: Vec<usize> = (0..n).collect();
    let (mut fwd, mut rev) = (vec![0.0; n], vec![0.0; n]);
    // Per player: plain sum of pair averages (for the mean: keeps efficiency
    // to rounding) and Welford's running mean / squared deviations (for the
    // variance, numerically stable).
    let (mut sum, mut mean, mut m2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut pairs = 0usize;
    loop {
        for _ in 0..batch_pairs {
            rng.shuffle(&mut perm);
            // v(∅) and v(N) are known: n − 1 new evaluations per direction.
            marginals(perm.iter().copied(), v_empty, v_full, &mut mask, v, &mut fwd);
            marginals(perm.iter().rev().copied(), v_empty, v_full, &mut mask, v, &mut rev);
            evaluations += 2 * (n - 1);
            pairs += 1;
            for i in 0..n {
                let x = 0.5 * (fwd[i] + rev[i]);
                sum[i] += x;
                let d = x - mean[i];
                mean[i] += d / pairs as f64;
                m2[i] += d * (x - mean[i]);
            }
        }
        let se = |m2: f64| (m2 / (pairs - 1) as f64 / pairs as f64).sqrt();
        let worst = m2.iter().fold(0.0f64, |w, &m| w.max(1.96 * se(m)));
        if pairs >= max_pairs || worst <= target {
            return ShapleyEstimate {
                values: sum.iter().map(|s| s / pairs as f64).collect(),
                std_err: m2.iter().map(|&m| se(m)).collect(),
                evaluations,
                exact: false,
            };
        }
    }
}

/// Each player's marginal contribution when joining in `order`, one game
/// evaluation per step (the coalition grows by one player at a time).
fn marginals(order: impl Iterator<Item = usize>, v_empty: f64, v_full: f64, mask: &mut [bool], v: &mut impl FnMut(&[bool]) -> f64, out: &mut [f64]) {
    mask.fill(false);
    let n = mask.len();
    let mut prev = v_empty;
    for (k, i) in order.enumerate() {
        mask[i] = true;
        let cur = if k + 1 == n { v_full } else { v(mask) };
        out[i] = cur - prev;
        prev = cur;
    }
}

/// splitmix64 (Steele et al. 2014): tiny, fast, well mixed, and the same
/// on every platform, which is what determinism needs; no crate required.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `0..k` (multiply-shift; the bias, < k/2⁶⁴, is negligible).
    pub fn below(&mut self, k: usize) -> usize {
        ((self.next_u64() as u128 * k as u128) >> 64) as usize
    }

    /// Fisher–Yates: every permutation equally likely.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            xs.swap(i, self.below(i + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// v(S) = (Σ_{i∈S} x_i)²: φ_i = x_i · Σx (each pair's cross term split evenly).
    fn square_game(x: &[f64]) -> impl FnMut(&[bool]) -> f64 + '_ {
        |s: &[bool]| x.iter().zip(s).filter(|(_, s)| **s).map(|(x, _)| x).sum::<f64>().powi(2)
    }

    #[test]
    fn exact_matches_the_closed_form() {
        let x = [1.0, 2.5, 0.0, 4.0, 0.5];
        let total: f64 = x.iter().sum();
        let est = exact(x.len(), &mut square_game(&x));
        assert!(est.exact && est.evaluations == 32);
        for (phi, xi) in est.values.iter().zip(&x) {
            assert!((phi - xi * total).abs() < 1e-12, "{:?}", est.values);
        }
        // Null player (x = 0), efficiency.
        assert_eq!(est.values[2], 0.0);
        assert!((est.values.iter().sum::<f64>() - total * total).abs() < 1e-9);
    }

    #[test]
    fn exact_symmetry_and_an_interaction_game() {
        // Glove game: v = 1 when the coalition holds a left (0) and any right
        // glove (1 or 2). Players 1 and 2 are symmetric: φ = (2/3, 1/6, 1/6).
        let mut glove = |s: &[bool]| if s[0] && (s[1] || s[2]) { 1.0 } else { 0.0 };
        let est = exact(3, &mut glove);
        assert!((est.values[0] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(est.values[1], est.values[2]);
        assert!((est.values[1] - 1.0 / 6.0).abs() < 1e-12);
        let one = exact(1, &mut |s: &[bool]| if s[0] { 7.0 } else { 2.0 });
        assert_eq!(one.values, vec![5.0]);
        assert!(exact(0, &mut |_: &[bool]| 3.0).values.is_empty());
    }

    #[test]
    fn sampling_is_unbiased_within_its_error_and_exactly_efficient() {
        // A non-additive game on 12 players: a concave total plus a pairwise
        // interaction, so the values are not simply proportional.
        let x: Vec<f64> = (0..12).map(|i| 0.3 + (i as f64 * 0.77) % 2.0).collect();
        let mut game = |s: &[bool]| {
            let t: f64 = x.iter().zip(s).filter(|(_, s)| **s).map(|(x, _)| x).sum();
            30.0 * t.sqrt() + if s[0] && s[5] { 4.0 } else { 0.0 }
        };
        let truth = exact(12, &mut game);
        let est = sample(12, 400, 42, &mut game);
        assert!(!est.exact && est.evaluations == 2 + 200 * 2 * 11);
        for i in 0..12 {
            let z = (est.values[i] - truth.values[i]).abs() / est.std_err[i];
            assert!(est.std_err[i] > 0.0 && z < 3.0, "player {i}: {} vs {} (se {})", est.values[i], truth.values[i], est.std_err[i]);
        }
        let full = game(&[true; 12]) - game(&[false; 12]);
        assert!((est.values.iter().sum::<f64>() - full).abs() < 1e-9);
        // Deterministic for a seed, different for another.
        assert_eq!(est, sample(12, 400, 42, &mut game));
        assert_ne!(est.values, sample(12, 400, 43, &mut game).values);
    }

    #[test]
    fn sampling_keeps_null_and_symmetric_players_in_line() {
        let x = [2.0, 0.0, 2.0, 1.0, 3.0];
        let est = sample(5, 64, 1, &mut square_game(&x));
        // A null player's marginal contribution is 0 in every permutation.
        assert_eq!(est.values[1], 0.0);
        assert_eq!(est.std_err[1], 0.0);
        // For this game the antithetic pair cancels the order effect exactly:
        // (x_i·(2a + x_i) + x_i·(2(T − a − x_i) + x_i)) / 2 = x_i·T.
        for (phi, xi) in est.values.iter().zip(&x) {
            assert!((phi - xi * 8.0).abs() < 1e-9);
        }
    }

    #[test]
    fn sample_until_stops_at_the_target_or_the_cap() {
        let x: Vec<f64> = (0..30).map(|i| 1.0 + (i % 7) as f64).collect();
        let mut game = |s: &[bool]| {
            let t: f64 = x.iter().zip(s).filter(|(_, s)| **s).map(|(x, _)| x).sum();
            (t * 3.0).sqrt() * 10.0
        };
        let scale = game(&[true; 30]) - game(&[false; 30]);
        // A loose target is met by the first batch.
        let loose = sample_until(30, 16, 512, 0.5, scale, 9, &mut game);
        assert_eq!(loose.evaluations, 2 + 8 * 2 * 29);
        assert!(loose.max_half_width() <= 0.5 * scale);
        // An unreachable one runs to the cap.
        let capped = sample_until(30, 16, 64, 0.0, scale, 9, &mut game);
        assert_eq!(capped.evaluations, 2 + 32 * 2 * 29);
        assert!((capped.values.iter().sum::<f64>() - scale).abs() < 1e-9);
    }

    #[test]
    fn shuffle_is_a_uniform_permutation() {
        let mut rng = SplitMix64::new(5);
        let mut counts = [[0usize; 4]; 4];
        for _ in 0..8000 {
            let mut p = [0, 1, 2, 3];
            rng.shuffle(&mut p);
            for (pos, &who) in p.iter().enumerate() {
                counts[who][pos] += 1;
            }
        }
        // Each player in each position about 2000 times (σ ≈ 39).
        assert!(counts.iter().flatten().all(|&c| (1800..2200).contains(&c)), "{counts:?}");
    }
}
