//! The published Gemma-2 configs parse, and every hook point validates against them.

use saectl::model::{read_config, HookPoint, HookSite, LayerType};

use super::common::fixture_dir;

struct Published {
    name: &'static str,
    shape: [usize; 6], // d_model, layers, heads, kv heads, head_dim, d_mlp
    query_pre_attn_scalar: f64,
}

const MODELS: [Published; 3] = [
    Published {
        name: "gemma-2-2b",
        shape: [2304, 26, 8, 4, 256, 9216],
        query_pre_attn_scalar: 256.0,
    },
    Published {
        name: "gemma-2-9b",
        shape: [3584, 42, 16, 8, 256, 14336],
        query_pre_attn_scalar: 256.0,
    },
    Published {
        name: "gemma-2-27b",
        shape: [4608, 46, 32, 16, 128, 36864],
        query_pre_attn_scalar: 144.0,
    },
];

#[test]
fn published_gemma2_configs_parse() {
    let dir = fixture_dir().join("../gemma2-configs");
    for Published {
        name,
        shape,
        query_pre_attn_scalar: qpas,
    } in MODELS
    {
        let layers = shape[1];
        let config = read_config(&dir.join(format!("{name}.json"))).unwrap();
        let got = [
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
            config.num_key_value_heads,
            config.head_dim,
            config.intermediate_size,
        ];
        assert_eq!(got, shape, "{name}");
        assert_eq!(config.query_pre_attn_scalar, qpas, "{name}");
        assert_eq!(config.attention_scale(), qpas.powf(-0.5));
        assert_eq!(config.vocab_size, 256_000);
        assert_eq!(config.sliding_window, Some(4096));
        assert_eq!(config.attn_logit_softcapping, Some(50.0));
        assert_eq!(config.final_logit_softcapping, Some(30.0));
        assert_eq!(config.rope_theta(), 10_000.0);
        assert_eq!(config.layer_type(0), LayerType::SlidingAttention);
        assert_eq!(config.layer_type(1), LayerType::FullAttention);

        for layer in 0..layers {
            for site in HookSite::ALL {
                let name = HookPoint::new(layer, site).to_string();
                HookPoint::parse_for(&name, layers).unwrap();
            }
        }
        let beyond = format!("blocks.{layers}.hook_resid_post");
        let err = HookPoint::parse_for(&beyond, layers)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("0..={}", layers - 1)), "{err}");
    }
}

#[test]
fn the_tiny_fixture_config_uses_the_transformers_5_layout() {
    let config = read_config(&fixture_dir().join("config.json")).unwrap();
    assert_eq!(config.rope_theta(), 10_000.0); // from rope_parameters
    assert_eq!(config.query_pre_attn_scalar, 24.0);
    assert_eq!(config.sliding_window, Some(8));
    assert!(config.layer_types.is_some());
}
