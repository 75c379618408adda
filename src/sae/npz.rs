//! Reading `.npz` files (numpy's zip of `.npy` arrays; Gemma Scope's `params.npz`), with every
//! size a file claims checked against the bytes it holds before anything is allocated.
//!
//! candle's `Tensor::read_npz` allocates what an array's header claims (its shape's product)
//! before it reads a byte of data, and a version-2 header's own length (up to 4 GiB) likewise:
//! a 1 KB file could ask for 400 GB and abort the process. Here each entry is read first — at
//! most its declared size, into a buffer that grows with the bytes actually there, so a stored
//! entry costs no more than the file and a deflated one no more than deflate's 1032:1 — and
//! the header's shape must then account for exactly the bytes that follow it.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Every array of the `.npz` at `path`, by name (the entry name without `.npy`), in file order.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .with_context(|| format!("{} is not an npz (zip) file", path.display()))?;
    let mut arrays = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .with_context(|| format!("failed to read entry {i} of {}", path.display()))?;
        let name = entry
            .name()
            .map(|name| name.strip_suffix(".npy").unwrap_or(&name).to_owned())
            .with_context(|| format!("entry {i} of {} has no readable name", path.display()))?;
        let mut bytes = Vec::new();
        let declared = entry.size();
        (&mut entry)
            .take(declared)
            .read_to_end(&mut bytes)
            .with_context(|| format!("failed to read {name} in {}", path.display()))?;
        let tensor = parse_npy(&bytes)
            .with_context(|| format!("array {name} in {} is not valid", path.display()))?;
        arrays.push((name, tensor));
    }
    Ok(arrays)
}

/// One `.npy` array: a little-endian float array in C order (what SAE weights are).
pub fn parse_npy(bytes: &[u8]) -> Result<Tensor> {
    let rest = bytes.strip_prefix(MAGIC).context("no .npy magic string")?;
    let (header_len, rest) = match rest {
        [1, _, a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]) as usize, rest),
        [2 | 3, _, a, b, c, d, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]) as usize, rest),
        [major, ..] => bail!("unsupported .npy version {major}"),
        [] => bail!("the .npy header is cut short"),
    };
    if header_len > rest.len() {
        bail!(
            "the header claims {header_len} bytes, but only {} follow",
            rest.len()
        );
    }
    let (header, data) = rest.split_at(header_len);
    let header = std::str::from_utf8(header).context("the header is not text")?;
    let (dtype, shape) = parse_header(header)?;
    let elements = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .context("the shape's element count overflows")?;
    if elements.checked_mul(dtype.size_in_bytes()) != Some(data.len()) {
        bail!(
            "shape {shape:?} of {dtype:?} needs {elements} × {} bytes, but the array holds {} bytes",
            dtype.size_in_bytes(),
            data.len()
        );
    }
    Ok(Tensor::from_raw_buffer(data, dtype, &shape, &Device::Cpu)?)
}

/// `{'descr': '<f4', 'fortran_order': False, 'shape': (16384, 2304), }` → (F32, shape).
fn parse_header(header: &str) -> Result<(DType, Vec<usize>)> {
    let descr = value_after(header, "'descr':")?;
    let descr = descr
        .trim_start()
        .strip_prefix('\'')
        .and_then(|s| s.split('\'').next())
        .context("descr is not a quoted string")?;
    let dtype = match descr {
        "<f4" => DType::F32,
        "<f2" => DType::F16,
        "<f8" => DType::F64,
        other => bail!(
            "dtype {other:?} is not supported (SAE weights are little-endian f16, f32 or f64)"
        ),
    };
    let fortran = value_after(header, "'fortran_order':")?.trim_start();
    if !fortran.starts_with("False") {
        bail!("Fortran-ordered arrays are not supported");
    }
    let shape = value_after(header, "'shape':")?
        .trim_start()
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .context("shape is not a tuple")?;
    let shape = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<usize>()
                .with_context(|| format!("bad dimension {d:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((dtype, shape))
}

fn value_after<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let at = header
        .find(key)
        .with_context(|| format!("the header has no {key}"))?;
    Ok(&header[at + key.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// An `.npy` file: `header` padded as numpy does, then `data`.
    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        let mut header = header.to_string();
        while (MAGIC.len() + 4 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        out.extend([1, 0]);
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    fn npz(entries: &[(&str, Vec<u8>)]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut zip = zip::ZipWriter::new(file.reopen().unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        file
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn reads_what_numpy_writes() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let scalar = "{'descr': '<f8', 'fortran_order': False, 'shape': (), }";
        let file = npz(&[
            (
                "W_enc.npy",
                npy(header, &f32_bytes(&[1., 2., 3., 4., 5., 6.])),
            ),
            ("b.npy", npy(scalar, &2.5f64.to_le_bytes())),
        ]);
        let arrays = read_npz(file.path()).unwrap();
        assert_eq!(arrays[0].0, "W_enc");
        assert_eq!(
            arrays[0].1.to_vec2::<f32>().unwrap(),
            [[1., 2., 3.], [4., 5., 6.]]
        );
        assert_eq!(arrays[1].0, "b");
        assert_eq!(arrays[1].1.to_scalar::<f64>().unwrap(), 2.5);
    }

    /// A header asking for 4 × 10^11 bytes with 8 bytes of data is an error, not an allocation.
    #[test]
    fn a_shape_larger_than_the_data_is_refused() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000,), }";
        let err = format!("{:#}", parse_npy(&npy(header, &[0; 8])).unwrap_err());
        assert!(err.contains("holds 8 bytes"), "{err}");
        let header =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }";
        let err = format!("{:#}", parse_npy(&npy(header, &[])).unwrap_err());
        assert!(err.contains("overflows"), "{err}");
    }

    #[test]
    fn a_header_longer_than_the_file_is_refused() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend([2, 0]);
        bytes.extend(u32::MAX.to_le_bytes());
        bytes.extend(b"{'descr'");
        let err = parse_npy(&bytes).unwrap_err().to_string();
        assert!(err.contains("4294967295 bytes, but only 8 follow"), "{err}");
    }

    #[test]
    fn unsupported_arrays_are_named() {
        let cases = [
            (
                "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }",
                "\"<i4\"",
            ),
            (
                "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                "\">f4\"",
            ),
            (
                "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
                "Fortran",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }",
                "dimension",
            ),
            ("{'fortran_order': False, 'shape': (1,), }", "descr"),
        ];
        for (header, needle) in cases {
            let err = format!("{:#}", parse_npy(&npy(header, &[0; 4])).unwrap_err());
            assert!(err.contains(needle), "{header}: {err}");
        }
        assert!(parse_npy(b"\x93NUMPY").is_err());
        assert!(parse_npy(b"PK\x03\x04").is_err());
    }

    #[test]
    fn a_file_that_is_not_a_zip_is_named() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), b"not a zip").unwrap();
        let err = format!("{:#}", read_npz(file.path()).unwrap_err());
        assert!(err.contains("is not an npz (zip) file"), "{err}");
    }
}
