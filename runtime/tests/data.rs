//! Hostile data files: what `train --data`, `eval --data` and `predict` read is refused with an
//! error naming the file, before it can hang, exhaust memory or reach a libtorch panic: FIFOs
//! and devices, gzip bombs, IDX headers that declare too much or nothing, pictures whose
//! header declares too many pixels.

// The fuzz test's generators; this file uses only their PNG chunk writer.
#[allow(dead_code)]
mod hostile;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hostile::chunk;
use nnc_runtime::data::{self, encode_idx, DataError};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-data-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs `f` on another thread and fails if it takes longer than ten seconds, so that a read
/// that blocks fails the test instead of stalling the suite.
fn within_10s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(f()));
    receive.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("{what} still ran after 10 s"))
}

fn message<T>(result: Result<T, DataError>) -> String {
    result.err().expect("an error").to_string()
}

#[test]
fn images_without_pixels_and_sets_without_images_are_refused_at_load() {
    let dir = tmp("zero");
    let labels = write(&dir, "labels", &encode_idx(2049, &[2], &[1, 2]));
    let cases = [
        ("rows", [2, 0, 28], "holds images of 0×28 pixels; both sides must be at least 1"),
        ("columns", [2, 28, 0], "holds images of 28×0 pixels; both sides must be at least 1"),
        ("none", [0, 28, 28], "holds no images; a data set needs at least one"),
    ];
    for (name, dims, expected) in cases {
        let payload = vec![0; dims.iter().product::<u32>() as usize];
        let images = write(&dir, name, &encode_idx(2051, &dims, &payload));
        let expected = format!("{} {expected}", images.display());
        assert_eq!(message(data::read_pair(&images, &labels, 10)), expected);
        assert_eq!(message(data::read_images(&images)), expected);
    }
    // A folder laid out as Fashion-MNIST's, whose test set is empty.
    let images = write(&dir, "train-images-idx3-ubyte", &encode_idx(2051, &[2, 2, 2], &[0; 8]));
    std::fs::copy(&labels, dir.join("train-labels-idx1-ubyte")).unwrap();
    write(&dir, "t10k-images-idx3-ubyte", &encode_idx(2051, &[0, 2, 2], &[]));
    write(&dir, "t10k-labels-idx1-ubyte", &encode_idx(2049, &[0], &[]));
    assert!(data::read_images(&images).is_ok());
    let err = message(data::load_dir(&dir, 10));
    assert!(err.ends_with("t10k-images-idx3-ubyte holds no images; a data set needs at least one"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Writes deflate's bits, first bit first, as the format packs them.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    len: u32,
}

impl Bits {
    fn put(&mut self, value: u64, len: u32) {
        self.acc |= value << self.len;
        self.len += len;
        while self.len >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.len -= 8;
        }
    }

    /// A Huffman code, which deflate stores from its most significant bit.
    fn code(&mut self, code: u64, len: u32) {
        self.put(code.reverse_bits() >> (64 - len), len);
    }

    /// A literal byte in the fixed code: 8 bits from 0x30 below 144, else 9 bits from 0x190.
    fn literal(&mut self, byte: u8) {
        match byte {
            0..144 => self.code(0x30 + u64::from(byte), 8),
            _ => self.code(0x190 + u64::from(byte - 144), 9),
        }
    }
}

/// A gzip file of `prefix` and then `zeros` zero bytes, in about 13 bits per 258 zeros (one
/// fixed-Huffman block of back-references), cut off before the block ends: a decoder that
/// reads it all fails on the cut, after inflating every zero.
fn gzip_bomb(prefix: &[u8], zeros: u64) -> Vec<u8> {
    let mut bits = Bits { out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff], acc: 0, len: 0 };
    bits.put(1, 1); // the last block
    bits.put(1, 2); // of fixed Huffman codes
    for &byte in prefix {
        bits.literal(byte);
    }
    bits.literal(0);
    for _ in 0..(zeros - 1) / 258 {
        bits.code(0xc0 + 5, 8); // length 258 (symbol 285)
        bits.code(0, 5); // at distance 1
    }
    bits.out
}

#[test]
fn a_gzip_bomb_is_refused_after_inflating_what_its_header_declares() {
    let dir = tmp("bomb");
    let labels = write(&dir, "labels", &encode_idx(2049, &[1], &[1]));
    // 7 MB that inflate to 1 GiB, behind a header that declares one 28×28 image.
    let bomb = gzip_bomb(&encode_idx(2051, &[1, 28, 28], &[]), 1 << 30);
    assert!(bomb.len() < 7 << 20, "{} bytes", bomb.len());
    let images = write(&dir, "bomb.gz", &bomb);
    let expected = format!(
        "{} is not an IDX images file: it is longer than its header says: dimensions [1, 28, 28] need \
         784 bytes, and it decompresses to more (decompression stopped there)",
        images.display()
    );
    let path = images.clone();
    assert_eq!(within_10s("reading the bomb", move || message(data::read_images(&path))), expected);
    assert_eq!(message(data::read_pair(&images, &labels, 10)), expected);
    // A header that declares more than the limit is refused before any payload is inflated.
    let bomb = gzip_bomb(&encode_idx(2051, &[60_000, 20_000, 20_000], &[]), 1 << 20);
    let images = write(&dir, "huge.gz", &bomb);
    assert_eq!(
        message(data::read_images(&images)),
        format!(
            "{} is too large: its header declares dimensions [60000, 20000, 20000], \
             24,000,000,000,000 bytes, over the limit of 2,147,483,648 bytes",
            images.display()
        )
    );
    // The same holds for a raw file: the header is checked before the payload is read.
    let raw = write(&dir, "huge", &encode_idx(2051, &[60_000, 20_000, 20_000], &[0; 16]));
    assert!(message(data::read_images(&raw)).contains("over the limit of 2,147,483,648 bytes"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_unread() {
    let dir = tmp("special");
    let fifo = dir.join("pipe-idx3-ubyte");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let picture = dir.join("pipe.png");
    assert!(std::process::Command::new("mkfifo").arg(&picture).status().unwrap().success());
    let labels = write(&dir, "labels", &encode_idx(2049, &[1], &[1]));
    let zero = Path::new("/dev/zero");
    let cases = [
        (fifo.clone(), "is a FIFO (named pipe), not a regular file"),
        (picture.clone(), "is a FIFO (named pipe), not a regular file"),
        (zero.to_path_buf(), "is a character device, not a regular file"),
        (dir.clone(), "is a directory, not a regular file"),
    ];
    for (path, reason) in cases {
        let expected = format!("{} {reason}", path.display());
        let (p, l) = (path.clone(), labels.clone());
        let got = within_10s("reading a special file", move || {
            let read = if data::is_picture(&p) {
                message(data::read_picture(&p))
            } else {
                message(data::read_images(&p))
            };
            (read, message(data::read_pair(&p, &l, 10)), message(data::read_picture(&p)))
        });
        assert_eq!(got, (expected.clone(), expected.clone(), expected), "{}", path.display());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A PNG that declares `width`×`height` grey pixels and holds none of them.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit grey, deflate, no filter method, not interlaced
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[]));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn pictures_over_the_pixel_limit_are_refused_before_decoding() {
    let dir = tmp("huge-picture");
    let path = write(&dir, "huge.png", &png_header(20_000, 20_000));
    assert_eq!(
        message(data::read_picture(&path)),
        format!(
            "{} is too large: it is 20000×20000 pixels (400,000,000), over the limit of 67,108,864 \
             pixels (8192×8192)",
            path.display()
        )
    );
    // At the limit, the header passes, and the decoder finds the pixels missing.
    let path = write(&dir, "empty.png", &png_header(8192, 8192));
    let err = message(data::read_picture(&path));
    assert!(err.starts_with(&format!("cannot read the picture {}", path.display())), "{err}");
    // A file over the byte limit is refused unread (sparse: nothing on disk).
    let path = dir.join("large.png");
    std::fs::File::create(&path).unwrap().set_len(data::MAX_PICTURE_BYTES + 1).unwrap();
    assert_eq!(
        message(data::read_picture(&path)),
        format!("{} is 268435457 bytes, over the limit of 268435456", path.display())
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A JPEG cut short inside its image data is refused (the lenient decoder would fill the rest
/// with grey), and the whole file, or one with bytes after its end, is read.
#[test]
fn a_truncated_jpeg_is_refused() {
    let dir = tmp("truncated-jpeg");
    let pixels: Vec<u8> = (0..64 * 48).map(|i| (i * 7 % 251) as u8).collect();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode(&pixels, 64, 48, image::ExtendedColorType::L8)
        .unwrap();
    let whole = write(&dir, "whole.jpg", &jpeg);
    assert_eq!(data::read_picture(&whole).unwrap().size(), [1, 1, 48, 64]);
    let mut trailing = jpeg.clone();
    trailing.extend(b"trailing bytes");
    assert!(data::read_picture(&write(&dir, "trailing.jpg", &trailing)).is_ok());
    let cut = write(&dir, "cut.jpg", &jpeg[..jpeg.len() * 2 / 3]);
    let err = message(data::read_picture(&cut));
    assert!(err.contains("the file is cut short"), "{err}");
    assert!(err.contains(&cut.display().to_string()), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
