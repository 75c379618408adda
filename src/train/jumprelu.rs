//! JumpReLU training: the learnt per-latent threshold and its straight-through estimators
//! (Rajamanoharan et al. 2024, "Jumping Ahead"; the recipe of Gemma Scope and SAELens).
//!
//! ```text
//! θ = exp(log_threshold)                                   [d_sae], learnt as its logarithm
//! a = z · H(z − θ)           JumpReLU of the pre-activation z = (x − b_dec)·W_enc + b_enc
//! L0 = Σ_f H(z_f − θ_f)      per token
//! loss = MSE(x̂, x) + (λ / d_in) · mean_tokens(L0)
//! ```
//! H has no useful derivative, so θ gets pseudo-derivatives through a rectangle kernel
//! `K(u) = 1 if −½ < u < ½` of bandwidth ε:
//! `∂a/∂θ := −(θ/ε)·K((z − θ)/ε)` and `∂H/∂θ := −(1/ε)·K((z − θ)/ε)`, while `∂a/∂z = H(z − θ)`
//! and the L0 term sends nothing to z (the paper's and SAELens's choice). The log
//! parameterisation adds the factor θ (`∂θ/∂log θ = θ`).
//!
//! Loss scale: saectl's MSE is the mean over tokens *and* dimensions (the original's), SAELens
//! sums over `d_in`. Dividing λ by `d_in` makes saectl's loss exactly SAELens's divided by
//! `d_in`: the same minimiser and, Adam being invariant to the loss's scale (up to its ε), the
//! same trajectory, so `l0_coefficient` values carry over from SAELens and the papers.
//!
//! Sparsity: the pairs that matter are those that fire (`z > θ`) and those just below the
//! threshold, inside the kernel's window (`z > θ − ε/2`): the latter decode to 0 but their
//! output gradient `W_dec[f]·∂x̂` feeds θ. That "support" goes through the same sparse
//! encode/decode kernels as the other kinds. The estimators themselves are written with
//! `detach` on `[support]`-sized vectors, so they run on every device: `θ_s − sg(θ_s)` is 0 in
//! value and has derivative 1, and multiplying it by a constant puts that constant in θ's
//! gradient without changing the forward value.
//!
//! On a GPU the support is found without copying `z` to the host: the mask `(z − θ)/ε > −½`
//! (the same f32 operations as [`in_window`], IEEE on CUDA) goes through `sae::extract`, and
//! the host re-checks every extracted pair with [`in_window`].

use candle_core::{DType, Result, Tensor};

use super::config::TrainConfig;
use super::loss::ActiveSet;
use crate::sae::extract::{as_mask, device_path, extract, scan_rows};

/// Whether `z` lies inside the kernel's window around `theta` (`|z − θ| / ε < ½`, strict),
/// computed as SAELens computes it.
pub(crate) fn in_window(z: f32, theta: f32, bandwidth: f32) -> bool {
    let u = (z - theta) / bandwidth;
    u > -0.5 && u < 0.5
}

/// The pairs a JumpReLU step touches, row-major, with what the estimators need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Support {
    /// Pairs that fire or lie in the window; `values` are their pre-activations `z`.
    pub set: ActiveSet,
    /// `H(z − θ)` per pair: 1 where it fires, 0 in the window below θ.
    pub fires: Vec<f32>,
    /// `K((z − θ)/ε)` per pair.
    pub window: Vec<f32>,
}

impl Support {
    /// The pairs that fire (the SAE's activations), for the metrics and the dead counts.
    pub fn active(&self) -> ActiveSet {
        let set = &self.set;
        let mut out = ActiveSet {
            n: set.n,
            d_sae: set.d_sae,
            ..Default::default()
        };
        for i in (0..set.len()).filter(|&i| self.fires[i] > 0.0) {
            out.rows.push(set.rows[i]);
            out.feats.push(set.feats[i]);
            out.values.push(set.values[i]);
        }
        out
    }
}

/// The support of a batch: pre-activations `pre [n, d_sae]` (detached inside) against the
/// thresholds `theta [d_sae]` (host copy of the f32 values the step uses).
pub fn select(pre: &Tensor, theta: &[f32], bandwidth: f32) -> Result<Support> {
    let (n, d_sae) = pre.dims2()?;
    if theta.len() != d_sae {
        candle_core::bail!("{} thresholds for {d_sae} latents", theta.len());
    }
    let z = pre.detach().to_dtype(DType::F32)?; // [n, d_sae]
                                                // A pair is in the support iff it fires or lies in the window: z > θ makes u > 0, and
                                                // below θ the window's upper edge cannot bind, so the support is `u > −½`.
    let in_support = |f: usize, z: f32| z > theta[f] || in_window(z, theta[f], bandwidth);
    let csr = if device_path(z.device()) {
        // The same f32 arithmetic as `in_window`, on the device: `(z − θ) / ε > −½`.
        let device = z.device();
        let theta_t = Tensor::from_slice(theta, d_sae, device)?;
        let bandwidth_t = Tensor::from_slice(&[bandwidth], 1, device)?;
        let u = z.broadcast_sub(&theta_t)?.broadcast_div(&bandwidth_t)?;
        extract(&as_mask(&u.gt(-0.5f32)?)?, &z, None, &in_support)?
    } else {
        scan_rows(&z.flatten_all()?.to_vec1::<f32>()?, n, d_sae, &in_support)
    };
    let mut support = Support {
        set: ActiveSet {
            n,
            d_sae,
            ..Default::default()
        },
        ..Default::default()
    };
    for (row, pair) in (0u32..).zip(csr.offsets.windows(2)) {
        for j in pair[0]..pair[1] {
            let (f, z) = (csr.indices[j], csr.values[j]);
            let t = theta[f as usize];
            support.set.rows.push(row);
            support.set.feats.push(f);
            support.set.values.push(z);
            support.fires.push(if z > t { 1.0 } else { 0.0 });
            support
                .window
                .push(if in_window(z, t, bandwidth) { 1.0 } else { 0.0 });
        }
    }
    Ok(support)
}

/// `θ_s − sg(θ_s)`: zero in value, derivative one with respect to `θ_s`.
fn straight_through(theta_s: &Tensor) -> Result<Tensor> {
    theta_s - theta_s.detach()
}

/// The JumpReLU activations of the support, `[len]`: `z · H` in value, with
/// `∂/∂z = H` and `∂/∂θ = −(θ/ε)·K`. `z` are the support's differentiable pre-activations and
/// `theta_s` the thresholds gathered per pair (differentiable in the log-threshold).
pub fn activations(
    z: &Tensor,
    theta_s: &Tensor,
    support: &Support,
    bandwidth: f64,
) -> Result<Tensor> {
    let device = z.device();
    let len = support.set.len();
    let fires = Tensor::from_slice(&support.fires, len, device)?;
    let window = Tensor::from_slice(&support.window, len, device)?;
    // −(θ/ε)·K, a constant of the backward pass.
    let slope = (theta_s.detach() * window)?.affine(-1.0 / bandwidth, 0.0)?;
    (z * fires)? + (straight_through(theta_s)? * slope)?
}

/// The L0 penalty `coefficient · Σ H / n`, `[]`, with `∂/∂θ = −(coefficient/n)·K/ε` per pair
/// and nothing for z. `coefficient` is the per-token weight (λ/d_in, warmed up).
pub fn l0_penalty(
    theta_s: &Tensor,
    support: &Support,
    bandwidth: f64,
    coefficient: f64,
) -> Result<Tensor> {
    let n = support.set.n.max(1) as f64;
    let len = support.set.len();
    let firing = support.fires.iter().sum::<f32>() as f64;
    let window = Tensor::from_slice(&support.window, len, theta_s.device())?;
    let slope = window.affine(-1.0 / bandwidth, 0.0)?;
    let surrogate = (straight_through(theta_s)? * slope)?.sum_all()?; // 0 in value
    ((surrogate + firing)? * (coefficient / n))?.to_dtype(DType::F32)
}

/// λ at `step` (0-based) per token and per input dimension: `l0_coefficient / d_in`, rising
/// linearly from 0 over `l0_warm_up_steps` (SAELens's schedule: 0 at step 0).
pub fn coefficient(cfg: &TrainConfig, step: u64, d_in: usize) -> f64 {
    let warm = cfg.l0_warm_up_steps;
    let ramp = if warm == 0 {
        1.0
    } else {
        (step as f64 / warm as f64).min(1.0)
    };
    cfg.l0_coefficient * ramp / d_in as f64
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn window_is_strict_and_centred() {
        assert!(in_window(1.0, 1.0, 0.1));
        assert!(in_window(1.049, 1.0, 0.1) && in_window(0.951, 1.0, 0.1));
        assert!(!in_window(1.06, 1.0, 0.1) && !in_window(0.94, 1.0, 0.1));
    }

    #[test]
    fn warm_up_is_linear_from_zero() {
        let cfg = TrainConfig {
            l0_coefficient: 8.0,
            l0_warm_up_steps: 4,
            ..TrainConfig::default()
        };
        let at = |step| coefficient(&cfg, step, 2);
        assert_eq!([at(0), at(1), at(4), at(100)], [0.0, 1.0, 4.0, 4.0]);
        let none = TrainConfig {
            l0_warm_up_steps: 0,
            ..cfg
        };
        assert_eq!(coefficient(&none, 0, 2), 4.0);
    }

    /// Values and pseudo-derivatives of the two estimators on hand-picked pairs.
    #[test]
    fn estimators_have_the_papers_values_and_derivatives() {
        let device = Device::Cpu;
        // One token, three latents: fires in the window, below θ in the window, far below.
        let pre = Tensor::new(&[[1.02f32, 0.97, 0.2]], &device).unwrap();
        let theta = [1.0f32, 1.0, 1.0];
        let support = select(&pre, &theta, 0.1).unwrap();
        assert_eq!(support.set.feats, vec![0, 1]);
        assert_eq!(
            (support.fires.clone(), support.window.clone()),
            (vec![1.0, 0.0], vec![1.0, 1.0])
        );
        assert_eq!(support.active().feats, vec![0]);
        let z = Var::new(&[1.02f32, 0.97], &device).unwrap();
        let theta_s = Var::new(&[1.0f32, 1.0], &device).unwrap();
        let a = activations(z.as_tensor(), theta_s.as_tensor(), &support, 0.1).unwrap();
        assert_eq!(a.to_vec1::<f32>().unwrap(), vec![1.02, 0.0]);
        let grads = a.sum_all().unwrap().backward().unwrap();
        let grad = |v: &Var| grads.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(grad(&z), vec![1.0, 0.0]);
        assert_eq!(grad(&theta_s), vec![-10.0, -10.0]); // −θ/ε
        let l0 = l0_penalty(theta_s.as_tensor(), &support, 0.1, 0.5).unwrap();
        assert_eq!(l0.to_scalar::<f32>().unwrap(), 0.5);
        let grads = l0.backward().unwrap();
        let g = grads
            .get(theta_s.as_tensor())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(g, vec![-5.0, -5.0]); // −coefficient/(n ε)
        assert!(grads.get(z.as_tensor()).is_none());
    }
}
