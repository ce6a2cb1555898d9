//! The statistics Beloglazov's overload detectors are built on, with the
//! exact conventions CloudSim 3.0.3's `MathUtil` uses (commons-math's
//! default percentile estimate, unweighted least squares over x = 1..n),
//! so thresholds computed here equal the ones behind its published runs.

/// Median of `data` (mean of the two middle values for even lengths).
pub fn median(data: &[f64]) -> f64 {
    percentile(data, 50.0)
}

/// commons-math `Percentile` (legacy estimation): position p·(n+1)/100,
/// linear between the neighbouring order statistics, clamped to the ends.
pub fn percentile(data: &[f64], p: f64) -> f64 {
    if data.is_empty() {
        return f64::NAN;
    }
    let mut s = data.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    let pos = p * (n + 1.0) / 100.0;
    if pos < 1.0 {
        return s[0];
    }
    if pos >= n {
        return s[s.len() - 1];
    }
    let lo = pos.floor();
    let (a, b) = (s[lo as usize - 1], s[lo as usize]);
    a + (pos - lo) * (b - a)
}

/// Interquartile range, Q3 − Q1.
pub fn iqr(data: &[f64]) -> f64 {
    percentile(data, 75.0) - percentile(data, 25.0)
}

/// Median absolute deviation from the median.
pub fn mad(data: &[f64]) -> f64 {
    let m = median(data);
    let dev: Vec<f64> = data.iter().map(|x| (x - m).abs()).collect();
    median(&dev)
}

/// Ordinary least squares of `y` on x = 1..=n: (intercept, slope). CloudSim's
/// "local regression" ends up here: its tricube weights are all positive, so
/// its weighting branch (taken only when ≥ 40 % of weights are zero) never
/// runs, and LR and LRR fit the same line.
pub fn linear_fit(y: &[f64]) -> Option<(f64, f64)> {
    let n = y.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mx = (nf + 1.0) / 2.0;
    let my = y.iter().sum::<f64>() / nf;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        let dx = (i + 1) as f64 - mx;
        sxy += dx * (v - my);
        sxx += dx * dx;
    }
    let slope = sxy / sxx;
    Some((my - slope * mx, slope))
}

/// A line through `y` (x = 1..=n) that outliers pull less: least squares,
/// then once more with Tukey's bisquare weights on the residuals (scale: six
/// median absolute residuals), as robust LOESS does. CloudSim 3.0.3's LRR
/// computes these weights but never applies them, so its LRR equals LR.
pub fn robust_linear_fit(y: &[f64]) -> Option<(f64, f64)> {
    let (a, b) = linear_fit(y)?;
    let res: Vec<f64> = y.iter().enumerate().map(|(i, v)| v - (a + b * (i + 1) as f64)).collect();
    let s = 6.0 * median(&res.iter().map(|r| r.abs()).collect::<Vec<_>>());
    if s <= 1e-12 {
        return Some((a, b));
    }
    let w: Vec<f64> = res.iter().map(|r| (1.0 - (r / s).powi(2)).max(0.0).powi(2)).collect();
    let sw: f64 = w.iter().sum();
    if sw <= 0.0 {
        return Some((a, b));
    }
    let mx = w.iter().enumerate().map(|(i, w)| w * (i + 1) as f64).sum::<f64>() / sw;
    let my = w.iter().zip(y).map(|(w, v)| w * v).sum::<f64>() / sw;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, (wi, v)) in w.iter().zip(y).enumerate() {
        let dx = (i + 1) as f64 - mx;
        sxy += wi * dx * (v - my);
        sxx += wi * dx * dx;
    }
    if sxx <= 1e-12 {
        return Some((a, b));
    }
    let slope = sxy / sxx;
    Some((my - slope * mx, slope))
}

/// Leading entries that are non-zero (histories are newest first; a zero
/// marks where a host's history runs out).
pub fn count_non_zero_beginning(data: &[f64]) -> usize {
    data.iter().take_while(|x| **x != 0.0).count()
}

/// R² of regressing `y` on the columns `xs` (with an intercept), by the
/// normal equations; `None` when the system is singular or under-determined.
/// The maximum-correlation VM selection ranks VMs by it.
pub fn r_squared(y: &[f64], xs: &[&[f64]]) -> Option<f64> {
    let n = y.len();
    let k = xs.len() + 1;
    if n <= k || xs.iter().any(|x| x.len() != n) {
        return None;
    }
    // Build XᵀX and Xᵀy with a leading column of ones.
    let col = |j: usize, i: usize| if j == 0 { 1.0 } else { xs[j - 1][i] };
    let mut a = vec![vec![0.0; k + 1]; k];
    for r in 0..k {
        for c in 0..k {
            a[r][c] = (0..n).map(|i| col(r, i) * col(c, i)).sum();
        }
        a[r][k] = (0..n).map(|i| col(r, i) * y[i]).sum();
    }
    // Gaussian elimination with partial pivoting.
    for p in 0..k {
        let best = (p..k).max_by(|x, y| a[*x][p].abs().total_cmp(&a[*y][p].abs()))?;
        if a[best][p].abs() < 1e-12 {
            return None;
        }
        a.swap(p, best);
        for r in 0..k {
            if r != p {
                let f = a[r][p] / a[p][p];
                for c in p..=k {
                    a[r][c] -= f * a[p][c];
                }
            }
        }
    }
    let beta: Vec<f64> = (0..k).map(|r| a[r][k] / a[r][r]).collect();
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for i in 0..n {
        let fit: f64 = (0..k).map(|j| beta[j] * col(j, i)).sum();
        ss_res += (y[i] - fit).powi(2);
        ss_tot += (y[i] - my).powi(2);
    }
    if ss_tot <= 0.0 { None } else { Some(1.0 - ss_res / ss_tot) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_commons_math() {
        let d = [1.0, 2.0, 3.0, 4.0];
        // Positions 1.25 and 3.75 over the sorted values.
        assert!((percentile(&d, 25.0) - 1.25).abs() < 1e-12);
        assert!((percentile(&d, 75.0) - 3.75).abs() < 1e-12);
        assert!((iqr(&d) - 2.5).abs() < 1e-12);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(percentile(&[7.0], 25.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
        // |x − 3| = 2, 1, 0, 1, 7 → median 1.
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 10.0]), 1.0);
    }

    #[test]
    fn a_line_is_fitted_exactly_and_predicts_ahead() {
        let y: Vec<f64> = (1..=10).map(|x| 0.1 + 0.05 * x as f64).collect();
        let (a, b) = linear_fit(&y).unwrap();
        assert!((a - 0.1).abs() < 1e-12 && (b - 0.05).abs() < 1e-12);
        assert!(linear_fit(&[1.0]).is_none());
        // One wild sample drags least squares but hardly the robust line.
        let mut spiky = y.clone();
        spiky[4] = 3.0;
        let (_, ls) = linear_fit(&spiky).unwrap();
        let (_, rb) = robust_linear_fit(&spiky).unwrap();
        assert!((rb - 0.05).abs() < (ls - 0.05).abs() / 2.0, "robust {rb} vs least squares {ls}");
        assert_eq!(count_non_zero_beginning(&[0.3, 0.2, 0.0, 0.5]), 2);
    }

    #[test]
    fn r_squared_is_one_for_a_combination_and_low_for_noise() {
        let x1 = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let x2 = [2.0, 1.0, 4.0, 3.0, 6.0, 5.0];
        let y: Vec<f64> = (0..6).map(|i| 3.0 + 2.0 * x1[i] - x2[i]).collect();
        assert!((r_squared(&y, &[&x1, &x2]).unwrap() - 1.0).abs() < 1e-9);
        let noise = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0];
        assert!(r_squared(&noise, &[&x1]).unwrap() < 0.2);
        assert!(r_squared(&y[..2], &[&x1[..2], &x2[..2]]).is_none(), "fewer samples than coefficients");
    }
}
