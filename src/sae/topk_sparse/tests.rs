//! The device selections (run on the CPU: generic candle ops) against the host methods, on
//! random batches with ties, zeros, all-negative rows and few positives, at d_sae up to 65536.

use candle_core::Device;

use super::*;
use crate::sae::extract::ForceDevicePath;
use crate::sae::topk::batch_topk_host;
use crate::util::rng::SplitMix64;

/// A test batch `[n, d]`, row-major: `uniform(−1, 1) − shift`, or with `levels > 0` one of
/// `levels` values a quarter apart (many ties); one entry in five is exactly 0 and every
/// fourth row is all negative.
pub(crate) fn matrix(n: usize, d: usize, levels: u64, shift: f32, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    (0..n * d)
        .map(|i| {
            let x = match levels {
                0 => rng.uniform_sym() - shift,
                _ => (rng.below(levels) as f32 - (levels / 2) as f32) / 4.0 - shift,
            };
            match (i / d % 4, rng.below(5)) {
                (3, _) => -x.abs() - 0.25,
                (_, 0) => 0.0,
                _ => x,
            }
        })
        .collect()
}

/// Runs `check` with candle's stable CPU sort, then with the device sort's ties broken towards
/// the higher index (a GPU's sort promises neither).
pub(crate) fn both_tie_orders(check: impl Fn()) {
    check();
    let _reversed = ForceDevicePath::with_reversed_ties();
    check();
}

fn tensor(data: &[f32], n: usize, d: usize) -> Tensor {
    Tensor::from_vec(data.to_vec(), (n, d), &Device::Cpu).unwrap()
}

/// Cases: (n, d, levels, shift). Ties (levels), sparse (shift), wide (16384, 65536).
const CASES: [(usize, usize, u64, f32); 8] = [
    (8, 50, 5, 0.0),
    (6, 64, 3, 0.0),
    (5, 300, 0, 0.0),
    (4, 2500, 9, 0.5),
    (4, 3000, 0, 0.9),
    (3, 16384, 0, 0.99),
    (3, 16384, 40, 0.0),
    (2, 65536, 0, 0.995),
];

#[test]
fn batch_topk_equals_the_host_with_ties() {
    for (case, &(n, d, levels, shift)) in CASES.iter().enumerate() {
        let data = matrix(n, d, levels, shift, case as u64);
        let positives = data.iter().filter(|&&x| x > 0.0).count();
        // Below, at and above the number of positives (k·B > positives keeps them all).
        for k_total in [1, n * 3, positives / 2, positives, positives + 7] {
            let k_total = k_total.clamp(1, n * d);
            let kept = batch_topk_host(data.clone(), k_total);
            let expected = SparseActs::from_dense_host(&kept, d);
            both_tie_orders(|| {
                let got = batch_topk_sparse(&tensor(&data, n, d), k_total).unwrap();
                assert_eq!(got, expected, "n {n} d {d} levels {levels} K {k_total}");
                assert_eq!(got.values.len(), k_total.min(positives));
            });
        }
    }
}

/// The host method's answer: positives among each row's top k, in its (rank) order.
fn host_rows(data: &[f32], d: usize, k: usize) -> SparseActs {
    let (values, columns) = topk_rows_host(data, d, k.min(d));
    positive_rows(&values, &columns, k.min(d), d)
}

#[test]
fn row_topk_equals_the_host_with_ties() {
    for (case, &(n, d, levels, shift)) in CASES.iter().enumerate() {
        let data = matrix(n, d, levels, shift, 100 + case as u64);
        for k in [1, 4, 32, 512, d] {
            let expected = host_rows(&data, d, k);
            both_tie_orders(|| {
                let got = topk_rows_sparse(&tensor(&data, n, d), k).unwrap();
                assert_eq!(got, expected, "n {n} d {d} levels {levels} k {k}");
            });
        }
    }
}

#[test]
fn straddling_ties_are_settled_like_the_host() {
    // Every positive value equal: each row's cut is a tie with entries outside the top k.
    let (n, d, k) = (3, 3000, 8);
    let data: Vec<f32> = (0..n * d)
        .map(|i| if i % 7 == 0 { 1.5 } else { -1.0 })
        .collect();
    let xs = tensor(&data, n, d);
    let (values, _) = topk_rows_blocked(&xs, k).unwrap();
    assert_eq!(straddling_rows(&xs, &values).unwrap(), vec![0, 1, 2]);
    both_tie_orders(|| {
        let got = topk_rows_sparse(&xs, k).unwrap();
        assert_eq!(got, host_rows(&data, d, k));
        // The lowest indices win: row 0 keeps columns 0, 7, 14, …
        assert_eq!(&got.indices[..3], &[0, 7, 14]);
    });
    // Distinct values: no row needs the host.
    let distinct = matrix(n, d, 0, 0.0, 3);
    let xs = tensor(&distinct, n, d);
    let (values, _) = topk_rows_blocked(&xs, k).unwrap();
    assert!(straddling_rows(&xs, &values).unwrap().is_empty());
}

#[test]
fn large_k_on_wide_rows_uses_the_host_method() {
    let (n, d) = (2, 2000);
    let data = matrix(n, d, 0, -0.5, 9); // mostly positive: m = k = 600 > 512
    let got = topk_rows_sparse(&tensor(&data, n, d), 600).unwrap();
    assert_eq!(got, host_rows(&data, d, 600));
}
