//! Cache round trip, resume after interruption, and the errors users hit.

use candle_core::{Device, Tensor};

use super::*;

fn spec(dtype: CacheDtype) -> CacheSpec {
    CacheSpec {
        model: "tiny".into(),
        hook_point: "blocks.1.hook_resid_post".into(),
        d_in: 4,
        seq_len: 3,
        dtype,
        special_token_ids: vec![2],
        source: Default::default(),
    }
}

/// Batch `b`: 2 sequences with values encoding (batch, sequence, position, dim).
fn batch(b: usize) -> (Vec<u32>, Tensor) {
    let tokens: Vec<u32> = (0..6).map(|i| (b * 6 + i) as u32).collect();
    let values: Vec<f32> = (0..24).map(|i| (b * 24 + i) as f32 * 0.25).collect();
    (
        tokens,
        Tensor::from_vec(values, (2, 3, 4), &Device::Cpu).unwrap(),
    )
}

fn read_all(dir: &std::path::Path) -> (Vec<u32>, Vec<f32>) {
    let cache = ActivationCache::open(dir).unwrap();
    let mut tokens = Vec::new();
    let mut values = Vec::new();
    for shard in cache.shards() {
        let shard = shard.unwrap();
        tokens.extend(shard.tokens);
        values.extend(
            shard
                .activations
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
    }
    (tokens, values)
}

#[test]
fn rows_of_a_range_cut_across_shard_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache");
    // 8 sequences pushed 2 at a time, a file cut once 3 are pending: files 0..4 and 4..8.
    let mut writer = CacheWriter::create_or_resume(&path, spec(CacheDtype::F32), 3, None).unwrap();
    for b in 0..4 {
        let (tokens, acts) = batch(b);
        writer.push(&tokens, &acts).unwrap();
    }
    writer.finish(true).unwrap();
    let (all_tokens, all_values) = read_all(&path);
    let cache = ActivationCache::open(&path).unwrap();
    let chunks: Vec<CacheRows> = cache.rows(2..7).map(Result::unwrap).collect();
    let firsts: Vec<(usize, u64)> = chunks.iter().map(|c| (c.shard, c.first_sequence)).collect();
    assert_eq!(firsts, vec![(0, 2), (1, 4)]);
    let tokens: Vec<u32> = chunks.iter().flat_map(|c| c.tokens.clone()).collect();
    assert_eq!(tokens, all_tokens[2 * 3..7 * 3]);
    let values: Vec<f32> = chunks
        .iter()
        .flat_map(|c| {
            c.activations
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect();
    assert_eq!(values, all_values[2 * 12..7 * 12]);
    let tail: Vec<CacheRows> = cache.rows(6..20).map(Result::unwrap).collect();
    assert_eq!(
        (tail.len(), tail[0].tokens.len()),
        (1, 2 * 3),
        "clipped to the cache"
    );
    assert_eq!(cache.rows(4..4).count(), 0);
}

#[test]
fn round_trip_in_every_dtype() {
    for dtype in [CacheDtype::F32, CacheDtype::Bf16, CacheDtype::F16] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        let mut writer = CacheWriter::create_or_resume(&path, spec(dtype), 3, None).unwrap();
        for b in 0..4 {
            let (tokens, acts) = batch(b);
            writer.push(&tokens, &acts).unwrap();
        }
        let index = writer.finish(true).unwrap();
        assert_eq!(
            (index.num_sequences, index.num_tokens, index.shards.len()),
            (8, 24, 2)
        );
        let (tokens, values) = read_all(&path);
        assert_eq!(tokens, (0..24).collect::<Vec<u32>>());
        // Multiples of 0.25 below 24 are exact in bf16 and f16.
        assert_eq!(
            values,
            (0..96).map(|i| i as f32 * 0.25).collect::<Vec<f32>>()
        );
    }
}

/// The streamed shard writer gives the safetensors crate's own bytes, in every dtype.
#[test]
fn shards_are_the_bytes_safetensors_serializes() {
    for dtype in [CacheDtype::F32, CacheDtype::Bf16, CacheDtype::F16] {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = CacheWriter::create_or_resume(dir.path(), spec(dtype), 2, None).unwrap();
        let (tokens, acts) = batch(0);
        writer.push(&tokens, &acts).unwrap();
        writer.finish(true).unwrap();
        let shard = dir.path().join("shard_00000.safetensors");
        let stored = candle_core::safetensors::load(&shard, &Device::Cpu).unwrap();
        let expected = safetensors::serialize(
            [
                ("tokens", &stored["tokens"]),
                ("activations", &stored["activations"]),
            ],
            None,
        )
        .unwrap();
        assert_eq!(std::fs::read(&shard).unwrap(), expected, "{dtype:?}");
    }
}

#[test]
fn an_interrupted_cache_resumes_after_its_last_shard() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache");
    let mut writer = CacheWriter::create_or_resume(&path, spec(CacheDtype::F32), 4, None).unwrap();
    for b in 0..3 {
        let (tokens, acts) = batch(b);
        writer.push(&tokens, &acts).unwrap();
    }
    // Killed here: one shard of 4 sequences on disk, 2 sequences pending and lost. A crash
    // during the next shard write leaves only a `.partial` file.
    drop(writer);
    std::fs::write(path.join(".shard_00001.safetensors.partial"), b"half").unwrap();
    let mut writer = CacheWriter::create_or_resume(&path, spec(CacheDtype::F32), 4, None).unwrap();
    assert_eq!(writer.sequences_done(), 4);
    assert!(!path.join(".shard_00001.safetensors.partial").exists());
    for b in 2..4 {
        let (tokens, acts) = batch(b);
        writer.push(&tokens, &acts).unwrap();
    }
    writer.finish(true).unwrap();
    let (tokens, values) = read_all(&path);
    assert_eq!(tokens, (0..24).collect::<Vec<u32>>());
    assert_eq!(values.len(), 96);
    assert_eq!(values[95], 95.0 * 0.25);
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache");
    let mut writer = CacheWriter::create_or_resume(&path, spec(CacheDtype::F32), 4, None).unwrap();
    let wide = Tensor::zeros((2, 3, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(format!("{:#}", writer.push(&[0; 6], &wide).unwrap_err()).contains("[2, 3, 5]"));
    let nan = Tensor::from_vec(vec![f32::NAN; 24], (2, 3, 4), &Device::Cpu).unwrap();
    assert!(
        format!("{:#}", writer.push(&[0; 6], &nan).unwrap_err()).contains("24 activations are NaN")
    );
    writer.finish(false).unwrap();
    // Nothing was stored: opening it is an error, and new settings simply start it afresh.
    let err = ActivationCache::open(&path).unwrap_err();
    assert!(format!("{err:#}").contains("holds no sequences"));
    let mut other = spec(CacheDtype::F32);
    other.hook_point = "blocks.0.hook_resid_post".into();
    let mut writer = CacheWriter::create_or_resume(&path, other, 4, None).unwrap();
    let (tokens, acts) = batch(0);
    writer.push(&tokens, &acts).unwrap();
    writer.finish(false).unwrap();
    // With sequences stored, other settings are refused, in one line naming the field.
    let err = CacheWriter::create_or_resume(&path, spec(CacheDtype::F32), 4, None)
        .err()
        .unwrap();
    let message = format!("{err:#}");
    assert!(
        message.contains("hook_point") && !message.contains('\n'),
        "{message}"
    );
    assert!(ActivationCache::open(&dir.path().join("missing")).is_err());
    std::fs::write(dir.path().join("junk"), b"x").unwrap();
    assert!(CacheWriter::create_or_resume(dir.path(), spec(CacheDtype::F32), 4, None).is_err());
}

/// Damaged or hostile indexes (found by fuzzing, `fuzz/` activation_cache, or by reading the
/// loader): counts that overflow, and shard or tokenizer names that point outside the folder.
#[test]
fn hostile_indexes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache");
    let mut writer = CacheWriter::create_or_resume(&path, spec(CacheDtype::F32), 2, None).unwrap();
    let (tokens, acts) = batch(0);
    writer.push(&tokens, &acts).unwrap();
    writer.finish(true).unwrap();
    let index_path = path.join(CACHE_INDEX_FILE);
    let good: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let error = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut index = good.clone();
        edit(&mut index);
        std::fs::write(&index_path, index.to_string()).unwrap();
        format!("{:#}", ActivationCache::open(&path).unwrap_err())
    };
    let overflow = error(&|i| {
        i["shards"] = serde_json::json!([
            {"file": "shard_00000.safetensors", "num_sequences": usize::MAX},
            {"file": "shard_00000.safetensors", "num_sequences": 3},
        ]);
        i["num_sequences"] = 2.into();
    });
    assert!(
        overflow.contains("do not add up to the index's 2"),
        "{overflow}"
    );
    for name in [
        "/dev/zero",
        "../cache/shard_00000.safetensors",
        "..",
        "",
        "a/b",
    ] {
        let err = error(&|i| i["shards"][0]["file"] = name.into());
        assert!(
            err.contains("is not a file name inside the cache folder"),
            "{name}: {err}"
        );
    }
    let err = error(&|i| i["tokenizer_file"] = "/etc/passwd".into());
    assert!(err.contains("\"/etc/passwd\" is not a file name"), "{err}");
}
