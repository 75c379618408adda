//! The SAE's tensors under SAELens's names, their shape checks, and a seeded initialisation.
//!
//! Initialisation draws from our own splitmix64 stream on the host and then moves the tensors
//! to the device: `Device::set_seed` errors on the CPU (DESIGN §6.4), and a host stream gives
//! the same weights on every device for a given seed.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

use super::config::SaeConfig;
use crate::util::rng::SplitMix64;

/// `W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_in]`, `b_dec [d_in]` and, for the
/// threshold architectures, `threshold [d_sae]`.
#[derive(Clone, Debug)]
pub struct SaeWeights {
    pub w_enc: Tensor,
    pub b_enc: Tensor,
    pub w_dec: Tensor,
    pub b_dec: Tensor,
    pub threshold: Option<Tensor>,
}

impl SaeWeights {
    /// The tensors as `(SAELens name, tensor)` pairs, in file order.
    pub fn named(&self) -> Vec<(&'static str, &Tensor)> {
        let mut named = vec![
            ("W_enc", &self.w_enc),
            ("W_dec", &self.w_dec),
            ("b_enc", &self.b_enc),
            ("b_dec", &self.b_dec),
        ];
        if let Some(threshold) = &self.threshold {
            named.push(("threshold", threshold));
        }
        named
    }

    /// Checks every shape against `cfg`; errors name the tensor and both shapes.
    pub fn check(&self, cfg: &SaeConfig) -> Result<()> {
        let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
        let expected: [(&str, &Tensor, Vec<usize>); 4] = [
            ("W_enc", &self.w_enc, vec![d_in, d_sae]),
            ("W_dec", &self.w_dec, vec![d_sae, d_in]),
            ("b_enc", &self.b_enc, vec![d_sae]),
            ("b_dec", &self.b_dec, vec![d_in]),
        ];
        for (name, tensor, shape) in expected {
            check_shape(name, tensor, &shape)?;
        }
        match (&self.threshold, cfg.kind.has_threshold()) {
            (Some(threshold), true) => check_shape("threshold", threshold, &[d_sae]),
            (None, true) => bail!("a {} SAE needs a threshold [{d_sae}] tensor", cfg.kind),
            (Some(_), false) => bail!("a {} SAE has no threshold, but one was given", cfg.kind),
            (None, false) => Ok(()),
        }
    }

    /// Converts every tensor to `dtype` on `device`.
    pub fn to(&self, dtype: DType, device: &Device) -> candle_core::Result<Self> {
        let convert = |t: &Tensor| t.to_device(device)?.to_dtype(dtype);
        Ok(Self {
            w_enc: convert(&self.w_enc)?,
            b_enc: convert(&self.b_enc)?,
            w_dec: convert(&self.w_dec)?,
            b_dec: convert(&self.b_dec)?,
            threshold: self.threshold.as_ref().map(convert).transpose()?,
        })
    }

    /// Seeded initialisation (the original's): `W_dec` rows uniform then scaled to unit norm,
    /// `W_enc = W_decᵀ`, biases zero, threshold zero where the architecture has one.
    pub fn init(cfg: &SaeConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
        let mut rng = SplitMix64(seed);
        let mut rows = vec![0f32; d_sae * d_in];
        for row in rows.chunks_mut(d_in) {
            for x in row.iter_mut() {
                *x = rng.uniform_sym();
            }
            let norm = row
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::MIN_POSITIVE);
            row.iter_mut().for_each(|x| *x /= norm);
        }
        let dtype = cfg.dtype;
        let w_dec = Tensor::from_vec(rows, (d_sae, d_in), device)?; // [d_sae, d_in]
        let w_enc = w_dec.t()?.contiguous()?; // [d_in, d_sae]
        let zeros = |n: usize| Tensor::zeros(n, dtype, device);
        Ok(Self {
            w_enc: w_enc.to_dtype(dtype)?,
            b_enc: zeros(d_sae)?,
            w_dec: w_dec.to_dtype(dtype)?,
            b_dec: zeros(d_in)?,
            threshold: cfg.kind.has_threshold().then(|| zeros(d_sae)).transpose()?,
        })
    }
}

fn check_shape(name: &str, tensor: &Tensor, expected: &[usize]) -> Result<()> {
    if tensor.dims() != expected {
        bail!(
            "tensor {name} has shape {:?}, expected {expected:?}",
            tensor.dims()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sae::config::SaeKind;

    #[test]
    fn init_is_seeded_unit_norm_and_tied() {
        let cfg = SaeConfig::new(SaeKind::BatchTopK, 8, 32, Some(4));
        let a = SaeWeights::init(&cfg, 49, &Device::Cpu).unwrap();
        let b = SaeWeights::init(&cfg, 49, &Device::Cpu).unwrap();
        let c = SaeWeights::init(&cfg, 50, &Device::Cpu).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&a.w_dec), flat(&b.w_dec));
        assert_ne!(flat(&a.w_dec), flat(&c.w_dec));
        let norms = a
            .w_dec
            .sqr()
            .unwrap()
            .sum(1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
        assert_eq!(flat(&a.w_enc.t().unwrap()), flat(&a.w_dec));
        assert_eq!(a.threshold.as_ref().unwrap().dims(), &[32]);
        a.check(&cfg).unwrap();
    }

    #[test]
    fn shape_errors_name_tensor_and_shapes() {
        let cfg = SaeConfig::new(SaeKind::TopK, 8, 32, Some(4));
        let mut w = SaeWeights::init(&cfg, 1, &Device::Cpu).unwrap();
        w.b_dec = Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap();
        let msg = w.check(&cfg).unwrap_err().to_string();
        assert!(
            msg.contains("b_dec") && msg.contains("[7]") && msg.contains("[8]"),
            "{msg}"
        );
        w.b_dec = Tensor::zeros(8, DType::F32, &Device::Cpu).unwrap();
        w.threshold = Some(Tensor::zeros(32, DType::F32, &Device::Cpu).unwrap());
        assert!(w
            .check(&cfg)
            .unwrap_err()
            .to_string()
            .contains("has no threshold"));
        let jump = SaeConfig::new(SaeKind::JumpRelu, 8, 32, None);
        w.threshold = None;
        assert!(w
            .check(&jump)
            .unwrap_err()
            .to_string()
            .contains("needs a threshold"));
    }
}
