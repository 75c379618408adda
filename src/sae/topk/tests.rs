//! Top-k against a brute-force stable sort, with ties, at d_sae 16384 included.

use super::*;
use crate::util::rng::SplitMix64;

/// Values from a small set when `levels > 0` (many ties), else continuous.
fn data(n: usize, d: usize, levels: u64, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    (0..n * d)
        .map(|_| match levels {
            0 => rng.uniform_sym(),
            _ => (rng.next_u64() % levels) as f32 - (levels / 2) as f32,
        })
        .collect()
}

/// Stable descending sort of each row, cut at k.
fn brute_rows(data: &[f32], d: usize, k: usize) -> (Vec<f32>, Vec<u32>) {
    let (mut values, mut indices) = (Vec::new(), Vec::new());
    for row in data.chunks_exact(d) {
        let mut order: Vec<u32> = (0..d as u32).collect();
        order.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]));
        for &i in &order[..k] {
            values.push(row[i as usize]);
            indices.push(i);
        }
    }
    (values, indices)
}

#[test]
fn host_rows_equal_brute_force_with_ties_and_at_16k() {
    for (n, d, k, levels) in [
        (5, 40, 7, 4),
        (3, 40, 40, 3),
        (4, 16384, 64, 50),
        (4, 16384, 32, 0),
    ] {
        let xs = data(n, d, levels, 7 + d as u64);
        assert_eq!(
            topk_rows_host(&xs, d, k),
            brute_rows(&xs, d, k),
            "n {n} d {d} k {k}"
        );
    }
}

/// Rows drawn from a small pool of special values (both zeros, ±inf, NaNs of both signs and
/// two payloads, subnormals, extremes) and a few ordinary ones: ties everywhere.
fn special_rows(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let pool = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7FC0_0001),
        f32::from_bits(0xFFC0_0002),
        f32::MIN_POSITIVE / 2.0,
        -f32::MIN_POSITIVE / 2.0,
        f32::MAX,
        f32::MIN,
        1.0,
        -1.0,
        0.5,
    ];
    let mut rng = SplitMix64(seed);
    (0..n * d)
        .map(|_| match rng.next_u64() % 4 {
            0 => rng.uniform_sym(),
            _ => pool[(rng.next_u64() % pool.len() as u64) as usize],
        })
        .collect()
}

/// Bit patterns, so that NaNs compare equal to themselves and -0.0 differs from +0.0.
fn bits((values, indices): (Vec<f32>, Vec<u32>)) -> (Vec<u32>, Vec<u32>) {
    (values.iter().map(|v| v.to_bits()).collect(), indices)
}

#[test]
fn scan_equals_select_and_brute_force_bit_for_bit() {
    let mut cases = 0;
    for d in [1, 2, 7, 16, 17, 33, 100, 257, 1000, 4099] {
        let mut ks = vec![1, 2, 3, d / 8, d / 8 + 1, d / 2, d / 2 + 1, d - 1, d];
        ks.retain(|&k| k >= 1 && k <= d);
        ks.dedup();
        for k in ks {
            for (variant, xs) in [
                ("special", special_rows(6, d, 31 * d as u64 + k as u64)),
                ("levels", data(6, d, 3, 17 + d as u64)),
                ("continuous", data(3, d, 0, 5 + k as u64)),
            ] {
                let got = bits(topk_rows_host(&xs, d, k));
                assert_eq!(
                    got,
                    bits(topk_rows_host_select(&xs, d, k)),
                    "{variant} d {d} k {k}"
                );
                assert_eq!(got, bits(brute_rows(&xs, d, k)), "{variant} d {d} k {k}");
                cases += 1;
            }
        }
    }
    assert!(cases > 200);
}

#[test]
fn scan_on_rising_rows_cuts_the_buffer_often() {
    // Ascending rows make every column a candidate: the buffer is cut again and again, and the
    // threshold must rise exactly. Constant rows: nothing after the first k ever passes.
    let (n, d, k) = (3, 3000, 40);
    let rising: Vec<f32> = (0..n * d).map(|i| (i % d) as f32 * 0.25 - 100.0).collect();
    let constant = vec![-0.0f32; n * d];
    let mut mixed = rising.clone();
    mixed[d..2 * d]
        .iter_mut()
        .for_each(|x| *x = (*x * 0.1).floor());
    for xs in [rising, constant, mixed] {
        assert_eq!(bits(topk_rows_host(&xs, d, k)), bits(brute_rows(&xs, d, k)));
    }
}

#[test]
fn scan_key_is_total_cmp_and_f32_key() {
    let mut rng = SplitMix64(3);
    let specials = [
        0u32,
        0x8000_0000,
        0x7F80_0000,
        0xFF80_0000,
        0x7FFF_FFFF,
        u32::MAX,
        1,
    ];
    let randoms: Vec<u32> = (0..10_000).map(|_| rng.next_u64() as u32).collect();
    for b in specials.into_iter().chain(randoms.iter().copied()) {
        let x = f32::from_bits(b);
        assert_eq!(unsigned_key(scan_key(x)), f32_key(x), "{b:#x}");
        let y = f32::from_bits(rng.next_u64() as u32);
        assert_eq!(scan_key(x).cmp(&scan_key(y)), x.total_cmp(&y), "{x} {y}");
    }
}

#[test]
fn tensor_rows_on_cpu_match_host() {
    let xs = data(3, 100, 5, 3);
    let t = Tensor::from_vec(xs.clone(), (3, 100), &Device::Cpu).unwrap();
    let (v, i) = topk_rows(&t, 10).unwrap();
    let (bv, bi) = brute_rows(&xs, 100, 10);
    assert_eq!(v.flatten_all().unwrap().to_vec1::<f32>().unwrap(), bv);
    assert_eq!(i.flatten_all().unwrap().to_vec1::<u32>().unwrap(), bi);
}

#[test]
fn tensor_rows_read_strided_and_offset_tensors_correctly() {
    // A transposed view (not contiguous) and a narrowed one (start offset) of the same data.
    let xs = data(40, 30, 6, 13);
    let t = Tensor::from_vec(xs.clone(), (40, 30), &Device::Cpu).unwrap();
    let transposed = t.t().unwrap(); // [30, 40]
    let plain: Vec<f32> = (0..30)
        .flat_map(|c| (0..40).map(move |r| (r, c)))
        .map(|(r, c)| xs[r * 30 + c])
        .collect();
    let narrowed = t.narrow(0, 7, 20).unwrap(); // rows 7..27
    for (view, expected, d) in [
        (transposed, plain, 40),
        (narrowed, xs[7 * 30..27 * 30].to_vec(), 30),
    ] {
        let (v, i) = topk_rows(&view, 4).unwrap();
        let got = (
            v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            i.flatten_all().unwrap().to_vec1::<u32>().unwrap(),
        );
        assert_eq!(got, brute_rows(&expected, d, 4));
    }
}

#[test]
fn blocked_method_is_exact_on_distinct_values() {
    // Distinct values: the block reduction must equal the brute force exactly (ties aside).
    for (n, d, k) in [(3, 16384, 32), (2, 5000, 100), (2, 1024, 8), (2, 3000, 512)] {
        let xs = data(n, d, 0, d as u64);
        let t = Tensor::from_vec(xs.clone(), (n, d), &Device::Cpu).unwrap();
        let (v, i) = topk_rows_blocked(&t, k).unwrap();
        let (bv, bi) = brute_rows(&xs, d, k);
        assert_eq!(
            v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            bv,
            "d {d}"
        );
        assert_eq!(
            i.flatten_all().unwrap().to_vec1::<u32>().unwrap(),
            bi,
            "d {d}"
        );
    }
}

/// Brute force: stable descending sort of the flattened batch; keep the first k.
fn brute_batch(data: &[f32], k: usize) -> Vec<f32> {
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.sort_by(|&a, &b| data[b].total_cmp(&data[a]));
    let mut out = vec![0.0; data.len()];
    for &i in &order[..k] {
        out[i] = data[i];
    }
    out
}

#[test]
fn host_batch_equals_brute_force_with_ties() {
    for (n, d, k, levels) in [(8, 50, 13, 5), (4, 16384, 4 * 32, 0), (6, 64, 6 * 4, 3)] {
        let xs = data(n, d, levels, 11);
        assert_eq!(batch_topk_host(xs.clone(), k), brute_batch(&xs, k));
    }
}

#[test]
fn bisection_finds_the_exact_cut() {
    // Distinct values: exactly the brute force.
    let xs = data(4, 16384, 0, 5);
    let t = Tensor::from_vec(xs.clone(), (4, 16384), &Device::Cpu).unwrap();
    let got = batch_topk_bisection(&t, 128).unwrap();
    assert_eq!(
        got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        brute_batch(&xs, 128)
    );
    // Ties: every value tied with the k-th is kept, nothing below it.
    let xs = data(6, 64, 7, 9);
    let t = Tensor::from_vec(xs.clone(), (6, 64), &Device::Cpu).unwrap();
    let got = batch_topk_bisection(&t, 20).unwrap().flatten_all().unwrap();
    let got = got.to_vec1::<f32>().unwrap();
    let mut sorted = xs.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let cut = sorted[19];
    let expected: Vec<f32> = xs.iter().map(|&x| if x >= cut { x } else { 0.0 }).collect();
    assert_eq!(got, expected);
}

#[test]
fn float_keys_preserve_order() {
    let xs = [
        f32::NEG_INFINITY,
        -3.5,
        -0.0,
        0.0,
        1e-30,
        2.0,
        f32::INFINITY,
    ];
    for pair in xs.windows(2) {
        assert!(f32_key(pair[0]) < f32_key(pair[1]), "{pair:?}");
    }
    for x in xs {
        assert_eq!(key_f32(f32_key(x)).to_bits(), x.to_bits());
    }
}

#[test]
fn bad_k_is_an_error() {
    let t = Tensor::zeros((2, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(topk_rows(&t, 0).is_err() && topk_rows(&t, 9).is_err());
    assert!(batch_topk(&t, 17).is_err());
}
