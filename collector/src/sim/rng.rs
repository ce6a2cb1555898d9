//! The simulator's own deterministic random numbers.
//!
//! Traces must be reproducible bit for bit from `(scenario, seed)` across
//! releases of fairwatt, so the generator is written out here instead of
//! borrowed from a crate whose stream may change between versions:
//!
//! - seeding and stream derivation: SplitMix64 (Steele, Lea & Flood 2014),
//!   `z = (x += 0x9e3779b97f4a7c15); z = (z ^ z>>30)·0xbf58476d1ce4e5b9;
//!   z = (z ^ z>>27)·0x94d049bb133111eb; z ^ z>>31`;
//! - the stream itself: xoshiro256** 1.0 (Blackman & Vigna 2018);
//! - uniforms in `[0, 1)` from the top 53 bits;
//! - normals by Box–Muller, `√(−2 ln u1)·cos(2π u2)` and its `sin` twin,
//!   the twin cached for the next call;
//! - cheap unit-variance jitter `(u1 + u2 − 1)·√6` (triangular) for the
//!   per-interval scatter of counters, where a normal's cost buys nothing.
//!
//! Every VM and every host gets its own stream derived from the seed and a
//! stable tag (host id, VM index), so adding a VM never perturbs the others.

/// One SplitMix64 step: advances `state` and returns the mixed output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed for a sub-stream named by `tag`, independent of `seed`'s own stream.
pub fn derive(seed: u64, tag: u64) -> u64 {
    let mut s = seed ^ tag.rotate_left(32);
    let a = splitmix64(&mut s);
    let mut t = a ^ tag;
    splitmix64(&mut t)
}

/// FNV-1a of a string, to turn names (host ids, scenario names) into tags.
pub fn tag_of(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// xoshiro256** with a cached Box–Muller twin.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
    spare: Option<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut s = [0u64; 4];
        for x in &mut s {
            *x = splitmix64(&mut sm);
        }
        // The all-zero state is the one fixed point of xoshiro; SplitMix64 of
        // any seed cannot produce four zeros in a row, but be safe.
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s, spare: None }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in `0..n` (0 when `n` is 0); Lemire's multiply-shift,
    /// whose bias is below 2^-32 for the small `n` the simulator uses.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }

    /// Zero-mean, unit-variance triangular scatter `(u1 + u2 − 1)·√6`, from
    /// one 64-bit draw: a tenth of a Box–Muller normal's cost, for the many
    /// small per-interval jitters where the exact shape does not matter.
    pub fn jitter(&mut self) -> f64 {
        let x = self.next_u64();
        let scale = 1.0 / (1u64 << 32) as f64;
        let (u1, u2) = ((x >> 32) as f64 * scale, (x & 0xffff_ffff) as f64 * scale);
        (u1 + u2 - 1.0) * 6f64.sqrt()
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference() {
        // First outputs of SplitMix64 seeded with 0 (reference implementation by Vigna).
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(&mut s), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn xoshiro_matches_reference() {
        // xoshiro256** from state {1, 2, 3, 4}: the reference C code gives 11520, 0, 1509978240.
        let mut r = Rng { s: [1, 2, 3, 4], spare: None };
        assert_eq!(r.next_u64(), 11520);
        assert_eq!(r.next_u64(), 0);
        assert_eq!(r.next_u64(), 1_509_978_240);
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..8).map({
            let mut r = Rng::new(7);
            move |_| r.next_u64()
        }).collect();
        let mut r = Rng::new(7);
        assert!(a.iter().all(|&x| x == r.next_u64()));
        assert_ne!(derive(7, 1), derive(7, 2));
        assert_ne!(derive(7, 1), derive(8, 1));
        assert_ne!(tag_of("hv-01"), tag_of("hv-02"));
    }

    #[test]
    fn normals_have_unit_moments() {
        let mut r = Rng::new(42);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        assert!(xs.iter().all(|x| x.is_finite()));
        let js: Vec<f64> = (0..n).map(|_| r.jitter()).collect();
        let jm = js.iter().sum::<f64>() / n as f64;
        let jv = js.iter().map(|x| (x - jm).powi(2)).sum::<f64>() / n as f64;
        assert!(jm.abs() < 0.02 && (jv - 1.0).abs() < 0.02, "jitter {jm} {jv}");
        assert!(js.iter().all(|x| x.abs() <= 6f64.sqrt()));
        let u: Vec<f64> = (0..1000).map(|_| r.uniform()).collect();
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        assert!((0..1000).all(|_| r.below(6) < 6));
    }
}
