//! The device extraction (run on the CPU: generic candle ops) against the host scan: light,
//! heavy and empty rows, the dense fallback, and widths beyond one 1024-column block.

use candle_core::Device;

use super::*;
use crate::sae::topk_sparse::tests::{both_tie_orders, matrix};

/// `extract` with the mask `x > floor` equals the host scan with the same predicate.
fn check(n: usize, d: usize, shift: f32, floor: f32, seed: u64) -> SparseActs {
    let data = matrix(n, d, 0, shift, seed);
    let xs = Tensor::from_vec(data.clone(), (n, d), &Device::Cpu).unwrap();
    let mask = as_mask(&xs.gt(floor).unwrap()).unwrap();
    let keep = |_: usize, v: f32| v > floor;
    let expected = scan_rows(&data, n, d, &keep);
    both_tie_orders(|| {
        let got = extract(&mask, &xs, None, &keep).unwrap();
        assert_eq!(got, expected, "n {n} d {d} shift {shift} floor {floor}");
    });
    expected
}

#[test]
fn light_rows_come_from_the_device_top_m() {
    // ~1% selected at d 3000 (three blocks): every row is light.
    let got = check(6, 3000, 0.98, 0.0, 1);
    let most = got.offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(most > 0 && most <= light_cap(3000));
}

#[test]
fn heavy_rows_are_copied_and_dense_batches_fall_back() {
    // d 40: the cap is 19, so rows with 20+ selected are heavy; a batch of them is copied whole.
    check(8, 40, -0.9, 0.0, 2);
    check(8, 40, 0.7, 0.0, 3);
    // One fully selected row among sparse ones: copied on its own, the others extracted.
    let n = 5;
    let mut data = matrix(n, 2048, 0, 0.99, 4);
    data[2048..4096].iter_mut().for_each(|x| *x = x.abs() + 0.1); // one fully selected row
    let xs = Tensor::from_vec(data.clone(), (n, 2048), &Device::Cpu).unwrap();
    let mask = as_mask(&xs.gt(0f32).unwrap()).unwrap();
    let keep = |_: usize, v: f32| v > 0.0;
    both_tie_orders(|| {
        let got = extract(&mask, &xs, None, &keep).unwrap();
        assert_eq!(got, scan_rows(&data, n, 2048, &keep));
        assert_eq!(got.offsets[2] - got.offsets[1], 2048);
    });
}

#[test]
fn nothing_selected_gives_empty_rows() {
    let got = check(4, 100, 0.0, 5.0, 5);
    assert_eq!(got.offsets, vec![0; 5]);
}

#[test]
fn the_switch_is_per_thread_and_scoped() {
    assert!(!device_path(&Device::Cpu));
    {
        let _forced = ForceDevicePath::new();
        assert!(device_path(&Device::Cpu));
        let other = std::thread::spawn(|| device_path(&Device::Cpu));
        assert!(!other.join().unwrap());
    }
    assert!(!device_path(&Device::Cpu));
}
