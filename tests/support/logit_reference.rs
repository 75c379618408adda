//! The logit effects by their definition, in f64 with plain loops and no tensor library: the
//! reference both the unit test of `model::unembed` and the integration test of `collect`'s
//! `logit_effects.json` compare with (each includes this file with `#[path]`, so it is written
//! once and shares nothing with the code under test).

/// `(token, value)` pairs, in rank order.
pub type Ranked = Vec<(u32, f64)>;

/// The `k` tokens whose logit `direction` raises most (descending) and lowers most
/// (ascending): `(direction ⊙ (1 + norm)) · w_u[t]`, not centred; ties go to the lower token
/// id. Third: the mean of the logits over the vocabulary (the centring term).
pub fn ranked_logits(
    direction: &[f32],
    norm: &[f32],
    w_u: &[Vec<f32>],
    k: usize,
) -> (Ranked, Ranked, f64) {
    let logits: Vec<f64> = w_u
        .iter()
        .map(|row| {
            (0..direction.len())
                .map(|j| f64::from(direction[j]) * (1.0 + f64::from(norm[j])) * f64::from(row[j]))
                .sum()
        })
        .collect();
    let mean = logits.iter().sum::<f64>() / logits.len() as f64;
    let mut pairs: Ranked = logits
        .iter()
        .enumerate()
        .map(|(t, &l)| (t as u32, l))
        .collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let top = pairs[..k.min(pairs.len())].to_vec();
    pairs.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    (top, pairs[..k.min(pairs.len())].to_vec(), mean)
}
