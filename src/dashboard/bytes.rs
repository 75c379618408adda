//! The byte-level pieces of the dashboard's data blocks: a little-endian writer with LEB128
//! varints, gzip, and base64 — each the exact inverse of what the page's script reads
//! (`assets/dashboard/dashboard.js`, section "Data blocks").

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

/// A growing byte buffer of varints, bytes and f32s.
#[derive(Default)]
pub struct ByteWriter {
    pub bytes: Vec<u8>,
}

impl ByteWriter {
    /// Unsigned LEB128: 7 bits per byte, high bit set on all but the last.
    pub fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    pub fn usize(&mut self, value: usize) {
        self.varint(value as u64);
    }

    pub fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub fn f32(&mut self, value: f32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// An optional number as f32, NaN for none.
    pub fn opt_f32(&mut self, value: Option<f64>) {
        self.f32(value.map_or(f32::NAN, |v| v as f32));
    }
}

/// gzip at the default level (6), for the JSON blocks (the index): level 9 made the synthetic
/// 16k dashboard only 1.6% smaller (2,233 against 2,268 bytes per feature), level 1 makes its
/// index 19% larger.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    gzip_at(bytes, Compression::default())
}

/// gzip at level 1, for the binary shards: mostly varints and f32s, which no level compresses
/// much. On the synthetic 16k folder's shards level 1 is 4.3 times as fast as level 6
/// (miniz_oxide, 0.18 against 0.77 s for 8.3 MB) for output 2% larger (84.6% of the raw
/// size against 82.9%).
pub fn gzip_fast(bytes: &[u8]) -> Vec<u8> {
    gzip_at(bytes, Compression::fast())
}

fn gzip_at(bytes: &[u8], level: Compression) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len()), level);
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (what the browser's `atob` reads).
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_leb128() {
        let mut w = ByteWriter::default();
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX)] {
            w.varint(v);
        }
        assert_eq!(
            w.bytes,
            [
                0x00, 0x01, 0x7f, 0x80, 0x01, 0xac, 0x02, 0xff, 0x7f, 0x80, 0x80, 0x01, 0xff, 0xff,
                0xff, 0xff, 0x0f
            ]
        );
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (raw, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn gzip_round_trips() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for packed in [gzip(&data), gzip_fast(&data)] {
            assert!(packed.len() < data.len() / 4);
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut out)
                .unwrap();
            assert_eq!(out, data);
        }
    }
}
