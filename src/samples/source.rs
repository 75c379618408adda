//! [`CollectionSource`]: where a collection's activations came from, as
//! `collection_summary.json` records it under `source`.
//!
//! Which keys are set depends on the producer: `collect` from a cache records the cache and the
//! model and hook it was made with; `collect` live records the model, hook, dataset, text field
//! and sequence length; a training run records itself and its checkpoint. A collection resumes
//! only from the same source, and `merge` takes only shards of one (their `shard` aside).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A collection's provenance. The fields are in alphabetical order: the untyped map this
/// replaced wrote its keys sorted, and folders written since must not change byte for byte.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectionSource {
    /// The activation cache read (`collect --activations`, or a training run's cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activations: Option<String>,
    /// The SAE checkpoint, as given (`collect`), or the training checkpoint that wrote the
    /// folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_sae: Option<u64>,
    /// The text read live (`--dataset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_point: Option<String>,
    /// The model the activations come from (for a cache: the one it was made with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sae_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_len: Option<u64>,
    /// `I/N` of a `collect --shard` run (`merge` drops it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_field: Option<String>,
    /// The `--tokenizer` given to `collect` (absolute): `merge` decodes with it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// The training run that collected the folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_run: Option<String>,
    /// Keys other producers recorded, kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl CollectionSource {
    /// The same source without the shard: what the shards of one collection share.
    pub fn without_shard(&self) -> Self {
        Self {
            shard: None,
            ..self.clone()
        }
    }

    /// The first key whose value differs between `self` and `other`, with both values as
    /// JSON (`nothing` when absent), or `None` when they are equal.
    pub fn first_difference(&self, other: &Self) -> Option<(String, String, String)> {
        let (a, b) = (self.to_map(), other.to_map());
        let show = |v: Option<&serde_json::Value>| v.map_or("nothing".into(), |v| v.to_string());
        a.keys()
            .chain(b.keys())
            .find(|key| a.get(*key) != b.get(*key))
            .map(|key| (key.clone(), show(a.get(key)), show(b.get(key))))
    }

    /// Every key set, as JSON, sorted by name (what the summary shows).
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => unreachable!("a struct of strings and numbers serializes to an object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_keys_sorted_as_the_map_did_and_keeps_unknown_ones() {
        let source = CollectionSource {
            tokenizer: Some("/t/tokenizer.json".into()),
            checkpoint: Some("runs/a".into()),
            d_sae: Some(64),
            activations: Some("cache".into()),
            ..CollectionSource::default()
        };
        let text = serde_json::to_string(&source).unwrap();
        assert_eq!(
            text,
            r#"{"activations":"cache","checkpoint":"runs/a","d_sae":64,"tokenizer":"/t/tokenizer.json"}"#
        );
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(
            serde_json::to_string(&map).unwrap(),
            text,
            "the map's order"
        );
        let read: CollectionSource =
            serde_json::from_str(r#"{"model": "m", "producer": "elsewhere", "seed": 3}"#).unwrap();
        assert_eq!(read.model.as_deref(), Some("m"));
        assert_eq!(read.other["seed"], 3);
        let again: CollectionSource =
            serde_json::from_str(&serde_json::to_string(&read).unwrap()).unwrap();
        assert_eq!(again, read);
    }

    #[test]
    fn names_the_first_difference_and_ignores_the_shard() {
        let a = CollectionSource {
            model: Some("m".into()),
            shard: Some("0/2".into()),
            ..CollectionSource::default()
        };
        let b = CollectionSource {
            shard: Some("1/2".into()),
            seq_len: Some(16),
            ..a.clone()
        };
        assert_eq!(a.without_shard().first_difference(&a.without_shard()), None);
        assert_eq!(
            a.without_shard().first_difference(&b.without_shard()),
            Some(("seq_len".into(), "nothing".into(), "16".into()))
        );
    }
}
