//! Just enough PNG decoding to tell a blank screenshot from a page: the share of pixels that
//! are not (near) white. Chromium writes 8-bit RGB or RGBA, non-interlaced.

use std::io::Read;

/// Share of pixels with any channel below 235.
pub fn non_white_share(png: &[u8]) -> f64 {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    let mut data = Vec::new();
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let body = &png[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
                assert_eq!(body[8], 8, "8-bit channels expected");
                assert_eq!(body[12], 0, "non-interlaced expected");
                channels = match body[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("colour type {other} not handled"),
                };
            }
            b"IDAT" => data.extend_from_slice(body),
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&data[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width * channels;
    let mut previous = vec![0u8; stride];
    let mut dark = 0usize;
    for y in 0..height {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let mut row = line[1..].to_vec();
        unfilter(line[0], &mut row, &previous, channels);
        dark += row
            .chunks(channels)
            .filter(|px| px[..3].iter().any(|&c| c < 235))
            .count();
        previous = row;
    }
    dark as f64 / (width * height) as f64
}

fn unfilter(filter: u8, row: &mut [u8], up: &[u8], bpp: usize) {
    for i in 0..row.len() {
        let a = if i >= bpp { row[i - bpp] } else { 0 };
        let b = up[i];
        let c = if i >= bpp { up[i - bpp] } else { 0 };
        let predictor = match filter {
            0 => 0,
            1 => a,
            2 => b,
            3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
            4 => {
                let p = i16::from(a) + i16::from(b) - i16::from(c);
                let (pa, pb, pc) = (
                    (p - i16::from(a)).abs(),
                    (p - i16::from(b)).abs(),
                    (p - i16::from(c)).abs(),
                );
                if pa <= pb && pa <= pc {
                    a
                } else if pb <= pc {
                    b
                } else {
                    c
                }
            }
            other => panic!("PNG filter {other}"),
        };
        row[i] = row[i].wrapping_add(predictor);
    }
}
