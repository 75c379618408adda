#!/usr/bin/env bash
# Writes fuzz/fixtures/: the smallest real files of every folder the fuzz targets read (a cache,
# a training run's config and checkpoint, a samples folder), made by the real `saectl` on the
# test fixtures (tiny Gemma-2, d_model 64). The fuzz targets compile them in as the folder's
# other files, and scripts/fuzz.sh seeds the corpora with them. Rerun after a format change.
#
#   scripts/fuzz-fixtures.sh [path/to/saectl]     (default: target/debug/saectl, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/saectl}
[[ -x $bin ]] || cargo build --bin saectl
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fixtures=tests/fixtures
model=(--model "$fixtures/tiny-gemma2" --tokenizer "$fixtures/tokenizer/tokenizer.json")

# 2 sequences of 16 tokens in one shard: 8 KiB of activations.
"$bin" cache "${model[@]}" --hook blocks.2.hook_resid_post --dataset "$fixtures/corpus/tiny.jsonl" \
    --num-tokens 32 --seq-len 16 --model-batch-size 2 --sequences-per-shard 2 --device cpu \
    --out "$work/cache"
# A JumpReLU-free TopK run of 2 steps with sample collection: d_sae 8, k 2.
"$bin" train --activations "$work/cache" --sae-type topk --dict-size 8 --top-k 2 --top-k-aux 4 \
    --batch-size 16 --num-tokens 32 --checkpoint-freq 2 --log-freq 1 --eval-sequences 0 \
    --save-activation-samples true --sample-collection-freq 1 --device cpu --out "$work/run"
checkpoint=$(cat "$work/run/latest_checkpoint")
# A collection with the model at hand (logit effects), 4 samples per feature.
"$bin" collect --checkpoint "$work/run/$checkpoint" --activations "$work/cache" "${model[@]}" \
    --max-samples-per-feature 4 --samples-per-feature-to-save 4 --top-features-to-save 8 \
    --sample-activation-threshold 0 --device cpu --out "$work/samples"

out=fuzz/fixtures
rm -rf "$out"
mkdir -p "$out"/{cache,run,samples}
cp "$work/cache/cache_index.json" "$work/cache/shard_00000.safetensors" "$out/cache/"
cp "$work/run/train_config.json" "$work/run/$checkpoint"/{trainer_state.json,optimizer.safetensors,saectl.json,cfg.json,sae_weights.safetensors} "$out/run/"
cp "$work/samples"/{collection_summary.json,logit_effects.json,collector_state.safetensors} "$out/samples/"
# One feature file, renamed to feature 3 (the name the samples_folder target writes it under).
feature=$(ls "$work/samples" | grep -m1 '^feature_.*_samples.json$')
index=$((10#$(echo "$feature" | tr -dc 0-9)))
sed "s/\"feature_idx\": $index,/\"feature_idx\": 3,/" "$work/samples/$feature" \
    > "$out/samples/feature_00003_samples.json"
du -ab "$out"
