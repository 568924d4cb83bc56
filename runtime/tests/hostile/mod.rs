//! Hostile inputs for the runtime's readers, shared by the in-process fuzz test
//! (`runtime/tests/fuzz.rs`) and the end-to-end one of the binary (`torch/tests/fuzz.rs`):
//! random bytes and mutations of valid safetensors, IDX and PNG files, from a deterministic
//! generator, so that every run tries the same inputs and a failure can be reproduced.

use std::io::Write;

use nnc_compiler::rng::SplitMix;
use nnc_runtime::data::encode_idx;

/// SplitMix64 (the compiler's), so that every run tries the same inputs, with the draws the
/// hostile inputs take.
pub struct Rng(SplitMix);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix(seed))
    }

    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Fewer than `max` random bytes.
    pub fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }

    /// A size a parser should treat with care: 0, 1, small, around a power of two, or huge.
    pub fn size(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => 1,
            2 => self.below(64) as u64,
            3 => 28,
            4 => (1 << self.below(32)) as u64,
            5 => u32::MAX as u64,
            6 => (1u64 << self.below(64)).wrapping_sub(1),
            _ => self.next(),
        }
    }
}

/// A generic mutation of `valid`: flipped bits, interesting bytes or words, truncation,
/// random tails, deleted or repeated ranges.
pub fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut b = valid.to_vec();
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        let at = rng.below(b.len());
        match rng.below(7) {
            0 if !b.is_empty() => b[at] ^= 1 << rng.below(8),
            1 if !b.is_empty() => b[at] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)],
            2 if b.len() >= at + 4 => {
                let word: u32 = [0, 1, 0x7fff_ffff, 0xffff_ffff, 1 << rng.below(32)][rng.below(5)];
                let bytes = if rng.below(2) == 0 { word.to_be_bytes() } else { word.to_le_bytes() };
                b[at..at + 4].copy_from_slice(&bytes);
            }
            3 => b.truncate(at),
            4 => b.extend(rng.some_bytes(64)),
            5 => {
                let end = (at + rng.below(64)).min(b.len());
                b.drain(at..end);
            }
            _ => {
                let end = (at + rng.below(64)).min(b.len());
                let copy = b[at..end].to_vec();
                b.splice(at..at, copy);
            }
        }
    }
    b
}

/// The safetensors header as JSON, and the data after it, of a well-formed file.
fn split_safetensors(bytes: &[u8]) -> (serde_json::Map<String, serde_json::Value>, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn join_safetensors(header: &serde_json::Map<String, serde_json::Value>, data: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(data);
    out
}

/// A structural mutation of a safetensors file: another dtype, shape or offsets for one
/// tensor, a tensor dropped or renamed, or a header length that lies.
fn mutate_safetensors(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let (mut header, data) = split_safetensors(valid);
    let names: Vec<String> = header.keys().filter(|k| *k != "__metadata__").cloned().collect();
    let name = names[rng.below(names.len())].clone();
    match rng.below(6) {
        0 => {
            let dtypes = [
                "BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64",
                "X",
            ];
            header[&name]["dtype"] = dtypes[rng.below(dtypes.len())].into();
        }
        1 => {
            let rank = rng.below(6);
            header[&name]["shape"] = (0..rank).map(|_| rng.size()).collect::<Vec<u64>>().into();
        }
        2 => header[&name]["data_offsets"] = vec![rng.size(), rng.size()].into(),
        3 => {
            header.remove(&name);
        }
        4 => {
            let value = header.remove(&name).unwrap();
            header.insert(format!("{name}{}", rng.below(3)), value);
        }
        _ => {
            let mut out = join_safetensors(&header, &data);
            out[..8].copy_from_slice(&rng.size().to_le_bytes());
            return out;
        }
    }
    join_safetensors(&header, &data)
}

/// Input `i` of a weights file, from `valid`: random bytes, or `valid` mutated as bytes or in
/// its header.
pub fn weights_file(rng: &mut Rng, i: usize, valid: &[u8]) -> (&'static str, Vec<u8>) {
    match i % 4 {
        0 => ("random bytes", rng.some_bytes(512)),
        1 => ("bytes mutated", mutate(rng, valid)),
        _ => ("header mutated", mutate_safetensors(rng, valid)),
    }
}

/// An IDX images file and its labels: `n` images of `h`×`w` grey pixels.
fn idx_pair(rng: &mut Rng, n: u32, h: u32, w: u32) -> (Vec<u8>, Vec<u8>) {
    let pixels = rng.bytes((n * h * w) as usize);
    let labels: Vec<u8> = (0..n).map(|_| rng.below(10) as u8).collect();
    (encode_idx(2051, &[n, h, w], &pixels), encode_idx(2049, &[n], &labels))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A structural mutation of an IDX file: other dimensions (the payload kept, or made to
/// match them when small), another magic number.
fn mutate_idx(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let rank = (valid[3] as usize).min(3);
    let mut out = valid.to_vec();
    match rng.below(3) {
        0 => {
            let at = 4 + 4 * rng.below(rank.max(1));
            out[at..at + 4].copy_from_slice(&(rng.size() as u32).to_be_bytes());
        }
        1 => {
            let dims: Vec<u32> = (0..rank).map(|_| [0, 1, 2, 3, 28, 29, 57][rng.below(7)]).collect();
            let size: usize = dims.iter().map(|&d| d as usize).product();
            out = encode_idx(u32::from_be_bytes(valid[..4].try_into().unwrap()), &dims, &rng.bytes(size));
        }
        _ => out[2..4].copy_from_slice(&[[8, 9, 0x0d, 0][rng.below(4)], rng.below(5) as u8]),
    }
    out
}

/// Input `i` of an IDX images file and its labels file: a few small valid images, then random
/// bytes, or the images or labels mutated as bytes or in their header, raw or gzipped.
pub fn idx_files(rng: &mut Rng, i: usize) -> (&'static str, Vec<u8>, Vec<u8>) {
    let (n, h, w) = ([1, 3, 17][rng.below(3)], [28, 14, 1, 30][rng.below(4)], [28, 14, 1, 30][rng.below(4)]);
    let (valid_images, valid_labels) = idx_pair(rng, n, h, w);
    let (how, mut image_bytes, mut label_bytes) = match i % 4 {
        0 => ("random bytes", rng.some_bytes(64), valid_labels),
        1 => ("images mutated", mutate(rng, &valid_images), valid_labels),
        2 => ("image header mutated", mutate_idx(rng, &valid_images), valid_labels),
        _ => ("labels mutated", valid_images, mutate_idx(rng, &valid_labels)),
    };
    if rng.below(4) == 0 {
        // Gzipped, as Fashion-MNIST ships, and sometimes the compressed stream mutated.
        image_bytes = gzip(&image_bytes);
        label_bytes = gzip(&label_bytes);
        if rng.below(2) == 0 {
            image_bytes = mutate(rng, &image_bytes);
        }
    }
    (how, image_bytes, label_bytes)
}

/// A PNG chunk with its CRC, so that a mutated header is read rather than refused for its
/// checksum.
pub fn chunk(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(body);
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(body);
    out.extend(crc.sum().to_be_bytes());
    out
}

/// The filtered rows (filter type 0, none) of a `w`-wide grey image, as a PNG compresses them.
fn rows(pixels: &[u8], w: u32) -> Vec<u8> {
    pixels.chunks(w.max(1) as usize).flat_map(|row| std::iter::once(0).chain(row.iter().copied())).collect()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

/// A PNG whose header says `w`×`h`, bit depth and colour type as given, whatever `idat`, its
/// compressed pixel data, holds.
fn png(w: u32, h: u32, depth: u8, colour: u8, idat: &[u8]) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([depth, colour, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(b"IDAT", idat));
    out.extend(chunk(b"IEND", &[]));
    out
}

/// Input `i` of a PNG picture: random bytes after the signature, a valid grey picture mutated
/// as bytes, in its compressed data or its rows (with the chunks' checksums right, so that the
/// decoder reads what was mutated), or with a header whose dimensions or pixel format lie.
pub fn png_file(rng: &mut Rng, i: usize) -> (&'static str, Vec<u8>) {
    let (w0, h0) = ([28, 5, 64][rng.below(3)], [28, 7, 64][rng.below(3)]);
    let raw = rows(&rng.bytes((w0 * h0) as usize), w0);
    let idat = zlib(&raw);
    let valid = png(w0, h0, 8, 0, &idat);
    match i % 8 {
        0 | 4 => ("random bytes", [&valid[..8], &rng.some_bytes(128)[..]].concat()),
        1 => ("bytes mutated", mutate(rng, &valid)),
        // With the chunks' checksums right, so that the decoder reads what was mutated.
        5 => ("compressed data mutated", png(w0, h0, 8, 0, &mutate(rng, &idat))),
        2 => ("rows mutated", png(w0, h0, 8, 0, &zlib(&mutate(rng, &raw)))),
        // Dimensions that lie, up to 2¹⁶ a side (larger ones only take longer to refuse).
        3 | 6 => {
            let side = |rng: &mut Rng| [0, 1, w0, 3 * w0, 1 << rng.below(17)][rng.below(5)];
            ("dimensions mutated", png(side(rng), side(rng), 8, 0, &idat))
        }
        _ => {
            let (depth, colour) = ([1, 2, 4, 8, 16, 3][rng.below(6)], [0, 2, 3, 4, 6, 7][rng.below(6)]);
            ("pixel format mutated", png(w0, h0, depth, colour, &idat))
        }
    }
}
