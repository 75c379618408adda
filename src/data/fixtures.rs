//! Tiny test fixtures made with the same crates saectl reads them with: a Gemma-shaped BPE
//! tokenizer and parquet files of string columns.
//!
//! `examples/make_fixtures.rs` uses these to (re)write `tests/fixtures/`; tests use them to
//! build files in temporary folders. saectl's commands never call them. The tokenizer copies
//! the parts of Gemma's layout that matter to saectl: special ids `<pad>`=0, `<eos>`=1,
//! `<bos>`=2, `<unk>`=3, a post-processor that adds `<bos>` (as Gemma's does), SentencePiece-
//! style `▁` word boundaries, and a vocabulary of at most 512 ids so that a tiny model with
//! `vocab_size` 512 accepts every id.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper};
use tokenizers::{PreTokenizerWrapper, Tokenizer, TokenizerBuilder};

/// Special tokens in Gemma's order: their ids are their positions.
pub const SPECIAL_TOKENS: [&str; 4] = ["<pad>", "<eos>", "<bos>", "<unk>"];

/// The largest vocabulary the tiny tokenizer may have.
pub const TINY_VOCAB_SIZE: usize = 512;

/// Trains the tiny BPE tokenizer on `texts` (deterministic for the same texts).
pub fn tiny_tokenizer<S: AsRef<str> + Sync>(texts: &[S]) -> Result<Tokenizer> {
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(TINY_VOCAB_SIZE)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(
            SPECIAL_TOKENS
                .iter()
                .map(|name| AddedToken::from(*name, true))
                .collect(),
        )
        .build();
    let model = BPE::builder()
        .unk_token("<unk>".to_owned())
        .build()
        .map_err(|err| anyhow!("failed to build the BPE model: {err}"))?;
    let mut tokenizer = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::default()
    .with_model(model)
    .with_pre_tokenizer(Some(
        Metaspace::new('▁', PrependScheme::Always, true).into(),
    ))
    .with_decoder(Some(
        MetaspaceDecoder::new('▁', PrependScheme::Always, true).into(),
    ))
    .with_post_processor(Some(bos_template()?.into()))
    .build()
    .map_err(|err| anyhow!("failed to build the tokenizer: {err}"))?;
    tokenizer
        .train(&mut trainer, texts.iter().map(AsRef::as_ref))
        .map_err(|err| anyhow!("failed to train the tokenizer: {err}"))?;
    Ok(Tokenizer::from(tokenizer))
}

fn write_row_group(
    writer: &mut SerializedFileWriter<File>,
    columns: &[StringColumn],
    rows: std::ops::Range<usize>,
) -> Result<()> {
    let mut group = writer.next_row_group()?;
    for column in columns {
        let values = &column.values[rows.clone()];
        let levels: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
        let present: Vec<ByteArray> = values.iter().flatten().map(|v| (*v).into()).collect();
        let mut writer = group
            .next_column()?
            .ok_or_else(|| anyhow!("parquet schema has fewer columns than given"))?;
        writer
            .typed::<ByteArrayType>()
            .write_batch(&present, Some(&levels), None)?;
        writer.close()?;
    }
    group.close()?;
    Ok(())
}

/// Gemma's post-processor: `<bos>` before the text when special tokens are asked for.
fn bos_template() -> Result<TemplateProcessing> {
    TemplateProcessing::builder()
        .try_single("<bos> $A")
        .map_err(|err| anyhow!("bad template: {err}"))?
        .special_tokens(vec![("<bos>", 2)])
        .build()
        .map_err(|err| anyhow!("failed to build the post-processor: {err}"))
}

/// One nullable string column of a parquet fixture.
pub struct StringColumn<'a> {
    pub name: &'a str,
    pub values: &'a [Option<&'a str>],
}

/// Writes `columns` (all of one length) to `path`, `rows_per_group` rows per row group.
pub fn write_string_parquet(
    path: &Path,
    columns: &[StringColumn],
    rows_per_group: usize,
    compression: Compression,
) -> Result<()> {
    let fields: String = columns
        .iter()
        .map(|c| format!("OPTIONAL BYTE_ARRAY {} (UTF8); ", c.name))
        .collect();
    let schema = Arc::new(parse_message_type(&format!(
        "message schema {{ {fields}}}"
    ))?);
    let properties = Arc::new(
        WriterProperties::builder()
            .set_compression(compression)
            .build(),
    );
    let file =
        File::create(path).with_context(|| format!("failed to create {}", path.display()))?;
    let mut writer = SerializedFileWriter::new(file, schema, properties)?;
    let rows = columns.first().map_or(0, |c| c.values.len());
    let step = rows_per_group.max(1);
    for start in (0..rows).step_by(step) {
        write_row_group(&mut writer, columns, start..(start + step).min(rows))?;
    }
    writer.close()?;
    Ok(())
}
