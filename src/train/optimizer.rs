//! Adam over candle `Var`s, with state that saves and loads exactly, and global-norm clipping.
//!
//! candle-nn's `AdamW` keeps its moments private, so a resumed run could not continue the
//! same trajectory; this one exposes `m`, `v` and the step count as named tensors
//! (`m.W_enc`, `v.W_enc`, …) that go into the run's optimizer file bit for bit. The update is
//! torch's `Adam` (no weight decay): bias-corrected moments, `ε` added outside the square root.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle_core::{Tensor, Var};

/// Adam's state for a fixed list of named parameters.
pub struct Adam {
    params: Vec<(&'static str, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates taken so far (torch's `state["step"]`).
    step: u64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    pub fn new(params: Vec<(&'static str, Var)>, beta1: f64, beta2: f64, eps: f64) -> Result<Self> {
        let zeros = |p: &Var| p.as_tensor().zeros_like();
        let m = params
            .iter()
            .map(|(_, p)| zeros(p))
            .collect::<candle_core::Result<_>>()?;
        let v = params
            .iter()
            .map(|(_, p)| zeros(p))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            params,
            m,
            v,
            step: 0,
            beta1,
            beta2,
            eps,
        })
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to parameter `i`.
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> candle_core::Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let correction1 = 1.0 - b1.powi(t);
        let correction2 = 1.0 - b2.powi(t);
        for (i, (_, param)) in self.params.iter().enumerate() {
            // Detached: a gradient computed from a `Var` (the decoder's projection) records
            // its op, and a moment built from it would hold that graph — and through the
            // previous moment every earlier step's — alive: ~40 MB a step at d_sae 4096.
            let g = &grads[i].detach();
            let m = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let denom = ((&v / correction2)?.sqrt()? + self.eps)?;
            let update = ((&m / correction1)? / denom)?;
            param.set(&(param.as_tensor().detach() - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments as `(name, tensor)` pairs for the optimizer file.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let named = |prefix: &str, ts: &[Tensor]| -> Vec<(String, Tensor)> {
            self.params
                .iter()
                .zip(ts)
                .map(|((name, _), t)| (format!("{prefix}.{name}"), t.clone()))
                .collect()
        };
        let mut out = named("m", &self.m);
        out.extend(named("v", &self.v));
        out
    }

    /// Restores the moments (from [`Self::state_tensors`]) and the step count.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        for (i, (name, param)) in self.params.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{prefix}.{name}");
                let t = tensors
                    .get(&key)
                    .with_context(|| format!("the optimizer state has no {key}"))?;
                if t.dims() != param.dims() {
                    bail!(
                        "optimizer state {key} is {:?}, the parameter is {:?}",
                        t.dims(),
                        param.dims()
                    );
                }
                *slot = t.to_dtype(param.dtype())?.to_device(param.device())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Scales `grads` so that their global L2 norm is at most `max_norm` (torch's
/// `clip_grad_norm_`, including its `1e-6` guard). Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> candle_core::Result<f64> {
    let mut total = 0f64;
    for g in grads.iter() {
        total += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    let norm = total.sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// Reference values from the closed form of torch.optim.Adam's first two steps on a
    /// scalar: step 1 moves by exactly lr·sign(g) (up to ε); step 2 with the same gradient too.
    #[test]
    fn first_steps_move_by_lr() {
        let p = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![("p", p.clone())], 0.9, 0.99, 1e-8).unwrap();
        let g = Tensor::new(&[0.5f32, -3.0], &Device::Cpu).unwrap();
        adam.step(std::slice::from_ref(&g), 0.1).unwrap();
        let after = p.as_tensor().to_vec1::<f32>().unwrap();
        assert!(
            (after[0] - 0.9).abs() < 1e-6 && (after[1] + 1.9).abs() < 1e-6,
            "{after:?}"
        );
        adam.step(&[g], 0.1).unwrap();
        let after = p.as_tensor().to_vec1::<f32>().unwrap();
        assert!(
            (after[0] - 0.8).abs() < 1e-6 && (after[1] + 1.8).abs() < 1e-6,
            "{after:?}"
        );
    }

    /// The moments hold values, not graphs: a gradient that records its ops (one computed
    /// from a `Var`) leaves no op in the state, so nothing of a step outlives it.
    #[test]
    fn moments_keep_no_graph() {
        let p = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let mut adam = Adam::new(vec![("p", p.clone())], 0.9, 0.99, 1e-8).unwrap();
        for _ in 0..3 {
            let g = (p.as_tensor() * 0.5).unwrap(); // tracked: p is a variable
            assert!(g.track_op());
            adam.step(&[g], 0.1).unwrap();
            assert!(adam.m.iter().chain(&adam.v).all(|t| !t.track_op()));
        }
    }

    #[test]
    fn state_round_trips_exactly() {
        let dev = Device::Cpu;
        let make = || Var::new(&[1.0f32, 2.0, 3.0], &dev).unwrap();
        let (a, b) = (make(), make());
        let mut first = Adam::new(vec![("p", a.clone())], 0.9, 0.99, 1e-8).unwrap();
        let mut second = Adam::new(vec![("p", b.clone())], 0.9, 0.99, 1e-8).unwrap();
        let g = Tensor::new(&[0.3f32, -0.1, 0.7], &dev).unwrap();
        first.step(std::slice::from_ref(&g), 0.01).unwrap();
        b.set(a.as_tensor()).unwrap();
        let state: HashMap<_, _> = first.state_tensors().into_iter().collect();
        second.load_state(&state, first.step_count()).unwrap();
        first.step(std::slice::from_ref(&g), 0.01).unwrap();
        second.step(&[g], 0.01).unwrap();
        assert_eq!(
            a.as_tensor().to_vec1::<f32>().unwrap(),
            b.as_tensor().to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let dev = Device::Cpu;
        let mut grads = vec![
            Tensor::new(&[3.0f32], &dev).unwrap(),
            Tensor::new(&[4.0f32], &dev).unwrap(),
        ];
        let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-9);
        let a = grads[0].to_vec1::<f32>().unwrap()[0];
        assert!((a - 0.6).abs() < 1e-5, "{a}");
        let before = grads[1].to_vec1::<f32>().unwrap();
        clip_grad_norm(&mut grads, 10.0).unwrap();
        assert_eq!(grads[1].to_vec1::<f32>().unwrap(), before);
    }
}
