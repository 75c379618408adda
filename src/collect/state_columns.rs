//! The columns of the collector's state file: numbers as safetensors tensors, each integer
//! column in the narrowest unsigned type that holds its largest value.
//!
//! Most columns hold small numbers (positions below 256, a handful of samples per stratum,
//! token ids below 65,536 for many vocabularies), so `u8`/`u16` columns cut the file by 2–8×
//! where a fixed `u32`/`u64` would pad; readers take any unsigned type and check every value
//! against what it may be. Every read checks its column's type and shape against the file
//! before allocating: the sizes come from the file, whose length safetensors has checked.

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// One tensor ready to serialize.
struct Column {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// The tensors of a state file being written.
#[derive(Default)]
pub(super) struct ColumnWriter {
    columns: Vec<Column>,
}

impl ColumnWriter {
    /// Unsigned integers, stored as `u8`, `u16`, `u32` or `u64`: the narrowest that holds
    /// the largest.
    pub(super) fn uints(&mut self, name: &str, shape: Vec<usize>, values: &[u64]) {
        let max = values.iter().copied().max().unwrap_or(0);
        let (dtype, bytes): (Dtype, Vec<u8>) = if max <= u64::from(u8::MAX) {
            (Dtype::U8, values.iter().map(|&v| v as u8).collect())
        } else if max <= u64::from(u16::MAX) {
            (
                Dtype::U16,
                values
                    .iter()
                    .flat_map(|&v| (v as u16).to_le_bytes())
                    .collect(),
            )
        } else if max <= u64::from(u32::MAX) {
            (
                Dtype::U32,
                values
                    .iter()
                    .flat_map(|&v| (v as u32).to_le_bytes())
                    .collect(),
            )
        } else {
            (
                Dtype::U64,
                values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
            )
        };
        self.push(name, dtype, shape, bytes);
    }

    /// [`uints`](Self::uints) of `u32` values.
    pub(super) fn u32s(&mut self, name: &str, shape: Vec<usize>, values: &[u32]) {
        let wide: Vec<u64> = values.iter().map(|&v| u64::from(v)).collect();
        self.uints(name, shape, &wide);
    }

    pub(super) fn f32s(&mut self, name: &str, shape: Vec<usize>, values: &[f32]) {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push(name, Dtype::F32, shape, bytes);
    }

    pub(super) fn f64s(&mut self, name: &str, shape: Vec<usize>, values: &[f64]) {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push(name, Dtype::F64, shape, bytes);
    }

    fn push(&mut self, name: &str, dtype: Dtype, shape: Vec<usize>, bytes: Vec<u8>) {
        self.columns.push(Column {
            name: name.to_string(),
            dtype,
            shape,
            bytes,
        });
    }

    /// The file: every column, and `metadata` in the header.
    pub(super) fn serialize(
        &self,
        metadata: std::collections::HashMap<String, String>,
    ) -> Result<Vec<u8>> {
        let views: Vec<(&str, TensorView<'_>)> = self
            .columns
            .iter()
            .map(|c| {
                Ok((
                    c.name.as_str(),
                    TensorView::new(c.dtype, c.shape.clone(), &c.bytes)?,
                ))
            })
            .collect::<Result<_, safetensors::SafeTensorError>>()?;
        Ok(safetensors::serialize(views, Some(metadata))?)
    }
}

/// The tensors of a state file being read.
pub(super) struct ColumnReader<'a> {
    tensors: SafeTensors<'a>,
}

impl<'a> ColumnReader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Result<Self> {
        Ok(Self {
            tensors: SafeTensors::deserialize(bytes)?,
        })
    }

    fn tensor(&self, name: &str) -> Result<TensorView<'a>> {
        self.tensors
            .tensor(name)
            .with_context(|| format!("tensor {name} is missing"))
    }

    /// The shape of column `name`.
    pub(super) fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.tensor(name)?.shape().to_vec())
    }

    /// The length of a one-dimensional column.
    pub(super) fn len(&self, name: &str) -> Result<usize> {
        match self.shape(name)?[..] {
            [n] => Ok(n),
            ref shape => bail!("tensor {name} has shape {shape:?}, expected one dimension"),
        }
    }

    /// An unsigned column of shape `shape` whose values are at most `max`.
    pub(super) fn uints(&self, name: &str, shape: &[usize], max: u64) -> Result<Vec<u64>> {
        let view = self.tensor(name)?;
        check_shape(name, &view, shape)?;
        let data = view.data();
        let values: Vec<u64> = match view.dtype() {
            Dtype::U8 => data.iter().map(|&b| u64::from(b)).collect(),
            Dtype::U16 => data
                .chunks_exact(2)
                .map(|c| u64::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::U32 => data
                .chunks_exact(4)
                .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Dtype::U64 => data
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            other => bail!("tensor {name} is {other:?}, expected an unsigned integer type"),
        };
        if let Some(bad) = values.iter().find(|&&v| v > max) {
            bail!("tensor {name} holds {bad}, above its largest possible value {max}");
        }
        Ok(values)
    }

    /// [`uints`](Self::uints) of a column whose values fit `u32` (refused as `u64`, so a
    /// column costs at most 4 bytes of memory per byte of file).
    pub(super) fn u32s(&self, name: &str, shape: &[usize], max: u32) -> Result<Vec<u32>> {
        if self.tensor(name)?.dtype() == Dtype::U64 {
            bail!("tensor {name} is U64, expected at most U32");
        }
        Ok(self
            .uints(name, shape, u64::from(max))?
            .into_iter()
            .map(|v| v as u32)
            .collect())
    }

    pub(super) fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let view = self.float(name, shape, Dtype::F32)?;
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    pub(super) fn f64s(&self, name: &str, shape: &[usize]) -> Result<Vec<f64>> {
        let view = self.float(name, shape, Dtype::F64)?;
        Ok(view
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }

    fn float(&self, name: &str, shape: &[usize], dtype: Dtype) -> Result<TensorView<'a>> {
        let view = self.tensor(name)?;
        if view.dtype() != dtype {
            bail!("tensor {name} is {:?}, expected {dtype:?}", view.dtype());
        }
        check_shape(name, &view, shape)?;
        Ok(view)
    }
}

fn check_shape(name: &str, view: &TensorView<'_>, shape: &[usize]) -> Result<()> {
    if view.shape() != shape {
        bail!(
            "tensor {name} has shape {:?}, expected {shape:?}",
            view.shape()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_columns_take_the_narrowest_type_and_read_back() {
        let mut writer = ColumnWriter::default();
        writer.uints("small", vec![3], &[0, 7, 255]);
        writer.uints("medium", vec![2], &[256, 3]);
        writer.u32s("large", vec![1], &[70_000]);
        writer.uints("huge", vec![1], &[1 << 40]);
        let bytes = writer.serialize(Default::default()).unwrap();
        let reader = ColumnReader::new(&bytes).unwrap();
        let dtype = |name: &str| reader.tensor(name).unwrap().dtype();
        assert_eq!(
            [
                dtype("small"),
                dtype("medium"),
                dtype("large"),
                dtype("huge")
            ],
            [Dtype::U8, Dtype::U16, Dtype::U32, Dtype::U64]
        );
        assert_eq!(reader.uints("small", &[3], 255).unwrap(), vec![0, 7, 255]);
        assert_eq!(reader.u32s("large", &[1], u32::MAX).unwrap(), vec![70_000]);
        assert_eq!(reader.uints("huge", &[1], u64::MAX).unwrap(), vec![1 << 40]);
        assert!(reader.u32s("huge", &[1], u32::MAX).is_err());
        let err = reader.uints("small", &[3], 100).unwrap_err().to_string();
        assert!(err.contains("holds 255"), "{err}");
        assert!(reader.uints("small", &[4], 255).is_err());
    }
}
