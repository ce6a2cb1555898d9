//! KDQNVMP's improved K-means over hosts, which turns "which of 800 hosts"
//! into "which of k clusters" for the agents:
//! 1. density of a point = how many points lie within r of it, r the mean
//!    pairwise distance (the paper's eq. 10);
//! 2. the densest point is the first centre; each next one is the point of
//!    the high-density region (density ≥ the mean) farthest from the
//!    centres so far, so a stray host never seeds a cluster;
//! 3. k maximises Fitness = Dis_out / (a·Dis_in + b·r) over k_min..=k_max,
//!    Dis_out the mean distance from each centre to its nearest other,
//!    Dis_in the mean over clusters of the members' distance to their
//!    centre (constants in [`ClusterConfig`]);
//! 4. Lloyd iterations, a fixed number, with low-density points (outliers)
//!    down-weighted in the centre updates.
//!
//! Everything is deterministic: ties go to the lowest index.

use super::config::ClusterConfig;

#[derive(Clone, Debug, PartialEq)]
pub struct Clustering {
    pub k: usize,
    /// Cluster of each point.
    pub assign: Vec<usize>,
    pub centres: Vec<Vec<f64>>,
    pub fitness: f64,
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt()
}

/// Rescales each column to 0..=1 over the points (a constant column → 0),
/// so capacity in MIPS does not drown a utilisation fraction.
pub fn normalise(points: &mut [Vec<f64>]) {
    let Some(d) = points.first().map(Vec::len) else { return };
    for j in 0..d {
        let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p[j]), hi.max(p[j])));
        for p in points.iter_mut() {
            p[j] = if hi > lo { (p[j] - lo) / (hi - lo) } else { 0.0 };
        }
    }
}

/// Mean pairwise distance r and each point's density (points within r,
/// itself included).
fn densities(points: &[Vec<f64>]) -> (f64, Vec<usize>) {
    let n = points.len();
    let (mut sum, mut pairs) = (0.0, 0usize);
    for i in 0..n {
        for j in i + 1..n {
            sum += dist(&points[i], &points[j]);
            pairs += 1;
        }
    }
    let r = if pairs > 0 { sum / pairs as f64 } else { 0.0 };
    let mut density = vec![1usize; n];
    for i in 0..n {
        for j in i + 1..n {
            if dist(&points[i], &points[j]) <= r {
                density[i] += 1;
                density[j] += 1;
            }
        }
    }
    (r, density)
}

/// Clusters `points` with k chosen by the fitness.
pub fn cluster(points: &[Vec<f64>], k_min: usize, k_max: usize, cfg: &ClusterConfig) -> Clustering {
    let n = points.len();
    if n == 0 {
        return Clustering { k: 0, assign: Vec::new(), centres: Vec::new(), fitness: 0.0 };
    }
    let (r, density) = densities(points);
    let mean_density = density.iter().sum::<usize>() as f64 / n as f64;
    let seeds = initial_centres(points, &density, mean_density, k_max.max(1));
    // All points alike (or only one dense spot): a single cluster.
    if r == 0.0 || seeds.len() < 2 {
        return lloyd(points, &seeds[..1], &density, mean_density, r, cfg);
    }
    let mut best: Option<Clustering> = None;
    for k in k_min.max(2)..=k_max.min(seeds.len()) {
        let c = lloyd(points, &seeds[..k], &density, mean_density, r, cfg);
        if best.as_ref().is_none_or(|b| c.fitness > b.fitness + 1e-12) {
            best = Some(c);
        }
    }
    best.unwrap_or_else(|| lloyd(points, &seeds[..1], &density, mean_density, r, cfg))
}

/// Up to `k` seeds: the densest point, then farthest-first within the
/// high-density region. Farthest-first is greedy, so the first k of the
/// k_max seeds are exactly the seeds for k.
fn initial_centres(points: &[Vec<f64>], density: &[usize], mean_density: f64, k: usize) -> Vec<usize> {
    let dense: Vec<usize> = (0..points.len()).filter(|i| density[*i] as f64 >= mean_density).collect();
    let first = (0..points.len()).fold(0, |b, i| if density[i] > density[b] { i } else { b });
    let mut seeds = vec![first];
    let mut nearest: Vec<f64> = dense.iter().map(|i| dist(&points[*i], &points[first])).collect();
    while seeds.len() < k {
        let Some((pos, far)) = nearest.iter().enumerate().fold(None::<(usize, f64)>, |b, (p, d)| match b {
            Some((_, bd)) if *d <= bd => b,
            _ => Some((p, *d)),
        }) else {
            break;
        };
        if far <= 0.0 {
            break; // every dense point coincides with a centre
        }
        let s = dense[pos];
        seeds.push(s);
        for (p, i) in dense.iter().enumerate() {
            nearest[p] = nearest[p].min(dist(&points[*i], &points[s]));
        }
    }
    seeds
}

fn nearest_centre(p: &[f64], centres: &[Vec<f64>]) -> usize {
    (0..centres.len()).fold(0, |b, c| if dist(p, &centres[c]) < dist(p, &centres[b]) { c } else { b })
}

fn lloyd(points: &[Vec<f64>], seeds: &[usize], density: &[usize], mean_density: f64, r: f64, cfg: &ClusterConfig) -> Clustering {
    let d = points[0].len();
    let mut centres: Vec<Vec<f64>> = seeds.iter().map(|s| points[*s].clone()).collect();
    let weight: Vec<f64> = density.iter().map(|x| if (*x as f64) < cfg.outlier_density * mean_density { cfg.outlier_weight } else { 1.0 }).collect();
    let mut assign: Vec<usize> = points.iter().map(|p| nearest_centre(p, &centres)).collect();
    for _ in 0..cfg.iterations {
        let mut sum = vec![vec![0.0; d]; centres.len()];
        let mut w = vec![0.0; centres.len()];
        for (i, p) in points.iter().enumerate() {
            w[assign[i]] += weight[i];
            for j in 0..d {
                sum[assign[i]][j] += weight[i] * p[j];
            }
        }
        for c in 0..centres.len() {
            if w[c] > 0.0 {
                centres[c] = sum[c].iter().map(|s| s / w[c]).collect();
            }
        }
        let next: Vec<usize> = points.iter().map(|p| nearest_centre(p, &centres)).collect();
        if next == assign {
            break; // converged: more iterations would change nothing
        }
        assign = next;
    }
    let fitness = fitness(points, &assign, &centres, r, cfg);
    Clustering { k: centres.len(), assign, centres, fitness }
}

fn fitness(points: &[Vec<f64>], assign: &[usize], centres: &[Vec<f64>], r: f64, cfg: &ClusterConfig) -> f64 {
    let k = centres.len();
    if k < 2 {
        return 0.0;
    }
    let dis_out = (0..k).map(|i| (0..k).filter(|j| *j != i).map(|j| dist(&centres[i], &centres[j])).fold(f64::INFINITY, f64::min)).sum::<f64>() / k as f64;
    let (mut within, mut count) = (vec![0.0; k], vec![0usize; k]);
    for (p, c) in points.iter().zip(assign) {
        within[*c] += dist(p, &centres[*c]);
        count[*c] += 1;
    }
    let used: Vec<usize> = (0..k).filter(|c| count[*c] > 0).collect();
    let dis_in = used.iter().map(|c| within[*c] / count[*c] as f64).sum::<f64>() / used.len().max(1) as f64;
    dis_out / (cfg.fit_a * dis_in + cfg.fit_b * r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn blobs(centres: &[[f64; 3]], per: usize, spread: f64, seed: u64) -> (Vec<Vec<f64>>, Vec<usize>) {
        let mut rng = SplitMix64::new(seed);
        let (mut pts, mut truth) = (Vec::new(), Vec::new());
        for _ in 0..per {
            for (c, ctr) in centres.iter().enumerate() {
                pts.push(ctr.iter().map(|x| x + spread * rng.range(-1.0, 1.0)).collect());
                truth.push(c);
            }
        }
        (pts, truth)
    }

    /// Same partition up to relabelling.
    fn same_partition(a: &[usize], b: &[usize]) -> bool {
        (0..a.len()).all(|i| (0..a.len()).all(|j| (a[i] == a[j]) == (b[i] == b[j])))
    }

    #[test]
    fn recovers_well_separated_blobs_and_picks_their_number() {
        let cfg = ClusterConfig::default();
        for (centres, seed) in [(&[[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [0.0, 5.0, 5.0]][..], 1), (&[[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [4.0, 4.0, 4.0]][..], 2)] {
            let (pts, truth) = blobs(centres, 25, 0.4, seed);
            let c = cluster(&pts, 2, 8, &cfg);
            assert_eq!(c.k, centres.len(), "fitness picks the number of blobs");
            assert!(same_partition(&c.assign, &truth), "every point with its own blob");
        }
    }

    #[test]
    fn an_outlier_neither_seeds_a_cluster_nor_drags_a_centre() {
        let (mut pts, _) = blobs(&[[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]], 20, 0.3, 3);
        pts.push(vec![3.0, 40.0, 0.0]);
        let c = cluster(&pts, 2, 2, &ClusterConfig::default());
        let far = c.assign[pts.len() - 1];
        assert!(c.centres[far][1] < 3.0, "its weight is cut: centre {:?}", c.centres[far]);
        assert!(c.centres.iter().all(|ctr| ctr[1] < 3.0));
    }

    #[test]
    fn deterministic_k_in_range_and_identical_points_make_one_cluster() {
        let cfg = ClusterConfig::default();
        let mut rng = SplitMix64::new(9);
        let pts: Vec<Vec<f64>> = (0..60).map(|_| (0..4).map(|_| rng.unit()).collect()).collect();
        let a = cluster(&pts, 3, 6, &cfg);
        assert_eq!(a, cluster(&pts, 3, 6, &cfg));
        assert!((3..=6).contains(&a.k), "{}", a.k);
        assert!(a.assign.iter().all(|c| *c < a.k));
        let same = vec![vec![1.0, 2.0]; 10];
        let one = cluster(&same, 2, 8, &cfg);
        assert_eq!((one.k, one.assign.clone()), (1, vec![0; 10]));
        assert_eq!(cluster(&[], 2, 8, &cfg).k, 0);
        let mut cols = vec![vec![100.0, 0.5], vec![300.0, 0.5], vec![200.0, 0.5]];
        normalise(&mut cols);
        assert_eq!(cols, [[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]]);
    }
}
