//! Hook points: where in the Gemma-2 residual stream an activation is read or replaced.
//!
//! Names follow TransformerLens (and therefore SAELens checkpoints): `blocks.12.hook_resid_post`.
//! A [`HookPoint`] is a layer plus a [`HookSite`] inside that layer's block. Parsing checks only
//! the syntax; [`HookPoint::validate`] (or [`HookPoint::parse_for`]) checks the layer against a
//! model's depth, so a name can be parsed before the model is loaded (DESIGN.md §5.3).

use std::fmt;
use std::str::FromStr;

/// A site inside one transformer block, in the order the forward pass reaches them.
///
/// ```text
/// resid_pre ─┬─► input_layernorm ─► attention ─► post_attention_layernorm ─┐
///            └──────────────────────────────────────────────────────────── + ─► resid_mid
/// resid_mid ─┬─► pre_feedforward_layernorm ─► [ln2.hook_normalized] ─► MLP
///            │      ─► post_feedforward_layernorm ─► [hook_mlp_out] ─┐
///            └────────────────────────────────────────────────────── + ─► resid_post
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookSite {
    /// Input of the block (`hook_resid_pre`).
    ResidPre,
    /// Residual stream after the attention branch is added (`hook_resid_mid`).
    ResidMid,
    /// MLP input: output of `pre_feedforward_layernorm` (`ln2.hook_normalized`).
    Ln2Normalized,
    /// MLP branch output after `post_feedforward_layernorm` (`hook_mlp_out`).
    MlpOut,
    /// Output of the block (`hook_resid_post`).
    ResidPost,
}

impl HookSite {
    /// Every site, in forward order.
    pub const ALL: [HookSite; 5] = [
        HookSite::ResidPre,
        HookSite::ResidMid,
        HookSite::Ln2Normalized,
        HookSite::MlpOut,
        HookSite::ResidPost,
    ];

    /// The name after `blocks.L.`.
    pub fn suffix(self) -> &'static str {
        match self {
            HookSite::ResidPre => "hook_resid_pre",
            HookSite::ResidMid => "hook_resid_mid",
            HookSite::Ln2Normalized => "ln2.hook_normalized",
            HookSite::MlpOut => "hook_mlp_out",
            HookSite::ResidPost => "hook_resid_post",
        }
    }

    /// Whether the activation here is the whole residual stream (as opposed to the MLP
    /// branch, which is only meaningful together with the residual it is added to).
    pub fn is_residual(self) -> bool {
        matches!(
            self,
            HookSite::ResidPre | HookSite::ResidMid | HookSite::ResidPost
        )
    }

    /// Position inside the block: 0 (`resid_pre`) to 4 (`resid_post`).
    pub(crate) fn offset(self) -> usize {
        self as usize
    }
}

/// A TransformerLens hook point such as `blocks.12.hook_resid_post`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookPoint {
    /// Zero-based block index.
    pub layer: usize,
    /// Site inside the block.
    pub site: HookSite,
}

/// Why a hook point name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookPointError {
    #[error("unknown hook point `{name}`; valid forms are {forms} (L is a layer index)")]
    Unknown { name: String, forms: String },
    #[error(
        "hook point `{name}` is at layer {layer}, but the model has {n_layers} layers \
         (valid layers are 0..={last})",
        last = n_layers.saturating_sub(1)
    )]
    LayerOutOfRange {
        name: String,
        layer: usize,
        n_layers: usize,
    },
}

impl HookPoint {
    pub fn new(layer: usize, site: HookSite) -> Self {
        Self { layer, site }
    }

    /// Parses `name` and checks its layer against a model with `n_layers` blocks.
    pub fn parse_for(name: &str, n_layers: usize) -> Result<Self, HookPointError> {
        let hook: HookPoint = name.parse()?;
        hook.validate(n_layers)?;
        Ok(hook)
    }

    /// Errors when the layer does not exist in a model with `n_layers` blocks.
    pub fn validate(&self, n_layers: usize) -> Result<(), HookPointError> {
        if self.layer < n_layers {
            Ok(())
        } else {
            Err(HookPointError::LayerOutOfRange {
                name: self.to_string(),
                layer: self.layer,
                n_layers,
            })
        }
    }

    /// How many blocks (0..=layer) a forward pass must run to reach this point.
    pub fn layers_needed(&self) -> usize {
        self.layer + 1
    }

    /// Position in the whole forward pass: 5 sites per block, where `resid_post` of layer L
    /// and `resid_pre` of layer L + 1 are the same tensor and share a position.
    pub(crate) fn position(&self) -> usize {
        4 * self.layer + self.site.offset()
    }

    /// Every valid form, for error messages: `blocks.L.hook_resid_pre, ...`.
    pub fn valid_forms() -> String {
        HookSite::ALL
            .iter()
            .map(|site| format!("`blocks.L.{}`", site.suffix()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blocks.{}.{}", self.layer, self.site.suffix())
    }
}

impl FromStr for HookPoint {
    type Err = HookPointError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let unknown = || HookPointError::Unknown {
            name: name.to_string(),
            forms: HookPoint::valid_forms(),
        };
        let rest = name.trim().strip_prefix("blocks.").ok_or_else(unknown)?;
        let (layer, suffix) = rest.split_once('.').ok_or_else(unknown)?;
        // Only plain decimal digits: `+1` or ` 1` parse as usize but are not TransformerLens names.
        if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unknown());
        }
        let layer: usize = layer.parse().map_err(|_| unknown())?;
        let site = HookSite::ALL
            .into_iter()
            .find(|site| site.suffix() == suffix)
            .ok_or_else(unknown)?;
        Ok(HookPoint { layer, site })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_site() {
        for site in HookSite::ALL {
            for layer in [0, 7, 41] {
                let hook = HookPoint::new(layer, site);
                let parsed: HookPoint = hook.to_string().parse().unwrap();
                assert_eq!(parsed, hook);
            }
        }
        assert_eq!(
            "blocks.12.ln2.hook_normalized"
                .parse::<HookPoint>()
                .unwrap(),
            HookPoint::new(12, HookSite::Ln2Normalized)
        );
    }

    #[test]
    fn unknown_names_list_the_valid_forms() {
        for bad in [
            "",
            "blocks.3",
            "blocks.x.hook_resid_post",
            "blocks.-1.hook_resid_post",
            "blocks.+1.hook_resid_post",
            "blocks.3.hook_attn_out",
            "block.3.hook_resid_post",
            "blocks.99999999999999999999999.hook_resid_post",
        ] {
            let err = bad.parse::<HookPoint>().unwrap_err().to_string();
            assert!(err.contains("blocks.L.hook_resid_post"), "{bad}: {err}");
            assert!(err.contains("blocks.L.ln2.hook_normalized"), "{bad}: {err}");
        }
    }

    #[test]
    fn layers_are_checked_against_the_model() {
        assert!(HookPoint::parse_for("blocks.25.hook_resid_post", 26).is_ok());
        let err = HookPoint::parse_for("blocks.26.hook_resid_post", 26).unwrap_err();
        assert_eq!(
            err.to_string(),
            "hook point `blocks.26.hook_resid_post` is at layer 26, but the model has 26 layers \
             (valid layers are 0..=25)"
        );
    }

    #[test]
    fn positions_follow_the_forward_order() {
        let post = HookPoint::new(2, HookSite::ResidPost);
        let next_pre = HookPoint::new(3, HookSite::ResidPre);
        assert_eq!(post.position(), next_pre.position());
        assert!(HookPoint::new(2, HookSite::MlpOut).position() < post.position());
        assert_eq!(post.layers_needed(), 3);
    }
}
