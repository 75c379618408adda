//! `saectl steer`: what a feature does when pushed — the model continues each prompt without
//! and with the features raised (or clamped) at the SAE's hook, and both are shown.
//! The work is `probe::steer`; this file parses, validates and prints.

use std::str::FromStr;

use anyhow::{bail, Result};
use clap::Args;

use super::output::print_stdout;
use super::probe_args::ProbeArgs;
use super::progress::count_bar;
use crate::model::{GenerateConfig, Sampling};
use crate::probe::{steer, FeatureEdit, SteerConfig, SteerMode};

const EXAMPLES: &str = "\
Examples (without --model: the embedded demo model):
  saectl steer --checkpoint saectl-demo/run --feature 322:8 \"alice saw a\"
  saectl steer --checkpoint saectl-demo/run --feature 322:8 --feature 9:-4 --file prompts.txt
  saectl steer --checkpoint saectl-demo/run --feature 322 --strength 8 --temperature 1 \"the\"
  saectl steer --checkpoint saectl-demo/run --clamp --feature 322:12 \"bob ate\"

Add (the default) raises the feature's activation by S on every position, prompt and generated
tokens alike: the residual gains S × its decoder row (× the SAE's input scale, if it
normalizes). --clamp sets the activation to S instead. See docs/probe.md.";

#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub struct SteerArgs {
    /// A feature to steer, with its strength: F:S (e.g. 12:8 or 40:-4), or F with --strength.
    /// Repeat for several features.
    #[arg(long = "feature", value_name = "F[:S]", required = true)]
    pub features: Vec<FeatureSpec>,

    /// Strength of the features given without one.
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub strength: Option<f32>,

    /// Set each feature's activation to S instead of adding S to it.
    #[arg(long)]
    pub clamp: bool,

    /// Tokens generated per prompt (generation also stops at a special token).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub max_new_tokens: usize,

    /// 0: greedy; above 0: sample from softmax(logits / T), the same draws for both runs.
    #[arg(
        long,
        value_name = "T",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub temperature: f64,

    /// Sample only among the K most likely tokens (0: all).
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub top_k: usize,

    /// Seed of the sampling.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// `F` or `F:S` as given to `--feature`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureSpec {
    pub feature: u32,
    pub value: Option<f32>,
}

impl FromStr for FeatureSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (feature, value) = match text.split_once(':') {
            Some((feature, value)) => (feature, Some(value)),
            None => (text, None),
        };
        let feature = feature
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("`{text}`: the feature must be an index, as in 12 or 12:8"))?;
        let value = match value {
            None => None,
            Some(v) => match v.trim().parse::<f32>() {
                Ok(v) if v.is_finite() => Some(v),
                _ => {
                    return Err(format!(
                        "`{text}`: the strength must be a number, as in 12:8 or 12:-4"
                    ))
                }
            },
        };
        Ok(Self { feature, value })
    }
}

impl SteerArgs {
    fn resolve(&self) -> Result<SteerConfig> {
        let edits = self
            .features
            .iter()
            .map(|spec| match (spec.value, self.strength) {
                (Some(value), _) | (None, Some(value)) => Ok(FeatureEdit {
                    feature: spec.feature,
                    value,
                }),
                (None, None) => bail!(
                    "feature {} has no strength: write {}:S or give --strength",
                    spec.feature,
                    spec.feature
                ),
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(s) = self.strength.filter(|s| !s.is_finite()) {
            bail!("--strength must be a number, not {s}");
        }
        if self.max_new_tokens == 0 {
            bail!("--max-new-tokens must be at least 1");
        }
        let sampling = match self.temperature {
            0.0 => Sampling::Greedy,
            t if t > 0.0 && t.is_finite() => Sampling::Sample {
                temperature: t,
                top_k: self.top_k,
                seed: self.seed,
            },
            t => bail!("--temperature must be 0 (greedy) or positive, not {t}"),
        };
        Ok(SteerConfig {
            mode: if self.clamp {
                SteerMode::Clamp
            } else {
                SteerMode::Add
            },
            edits,
            generate: GenerateConfig {
                max_new_tokens: self.max_new_tokens,
                sampling,
                stop_tokens: Vec::new(),
            },
        })
    }
}

pub fn run(args: SteerArgs) -> Result<()> {
    let config = args.resolve()?;
    let prompts = args.probe.texts()?;
    let probe = args.probe.open(true)?;
    let bar = count_bar(prompts.len() as u64, "steer", "prompts");
    let result = steer(&probe, &prompts, &config, &mut |_| bar.inc(1))?;
    bar.finish_and_clear();
    let output = if args.probe.json {
        serde_json::to_string_pretty(&result)? + "\n"
    } else {
        result.render_text()
    };
    print_stdout(&output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_specs_parse_with_and_without_a_strength() {
        let parse = |s: &str| s.parse::<FeatureSpec>();
        assert_eq!(
            parse("12:8").unwrap(),
            FeatureSpec {
                feature: 12,
                value: Some(8.0)
            }
        );
        assert_eq!(parse("40:-4.5").unwrap().value, Some(-4.5));
        assert_eq!(
            parse("7").unwrap(),
            FeatureSpec {
                feature: 7,
                value: None
            }
        );
        for bad in ["", "x:1", "-1:2", "3:", "3:abc", "3:inf", "3:NaN"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
