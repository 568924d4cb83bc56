//! Image classification data: IDX files (Fashion-MNIST, MNIST, or a user's own), raw or
//! gzipped, checked on the way in, and mini-batches resized on the fly on libtorch.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use nnc_compiler::back::report::thousands;
use nnc_compiler::input::{self, InputError};
use tch::{Device, Kind, Tensor};
use thiserror::Error;

/// The most bytes an IDX file may hold once decompressed, header aside: 2 GiB, 45 times
/// Fashion-MNIST's training images. Checked against the size its header declares, before
/// anything else is read; the data set is held in memory, as bytes and then as a tensor.
pub const MAX_IDX_BYTES: u64 = 2 << 30;

/// The most pixels a picture given to `predict` may have: 64 Mi (8192×8192), more than any
/// camera's photo. Checked against the size its header declares, before decoding: decoding
/// takes memory for every pixel, and the model sees the picture shrunk to its input anyway.
pub const MAX_PICTURE_PIXELS: u64 = 1 << 26;

/// The most bytes a picture file may have: 256 MiB, about what 64 Mi pixels take uncompressed.
pub const MAX_PICTURE_BYTES: u64 = 256 << 20;

/// Where `nnc train` looks for Fashion-MNIST when no `--data` is given, in order: the folder
/// Debian's `dataset-fashion-mnist` installs, then the cache `scripts/setup-data.sh` unpacks
/// the package into when apt cannot install it.
pub fn default_data_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/share/datasets/fashion-mnist")];
    let cache = std::env::var_os("NNC_CACHE").map(PathBuf::from).or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(|d| PathBuf::from(d).join("nnc"))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/nnc")))
    });
    if let Some(cache) = cache {
        dirs.push(cache.join("fashion-mnist/usr/share/datasets/fashion-mnist"));
    }
    dirs
}

/// The ten classes of Fashion-MNIST, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

#[derive(Debug, Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not an IDX {what} file: {reason}")]
    Format { path: String, what: &'static str, reason: String },
    #[error("{images} has {n_images} images but {labels} has {n_labels} labels")]
    CountMismatch { images: String, n_images: usize, labels: String, n_labels: usize },
    #[error("{path}: label {label} at index {index} is outside 0..{classes}")]
    Label { path: String, label: u8, index: usize, classes: usize },
    #[error("cannot read the picture {path}: {reason}")]
    Picture { path: String, reason: String },
    #[error("no {what} in {dir}: expected {expected}")]
    Missing { dir: String, what: &'static str, expected: String },
    /// A FIFO, a device, a directory, or a file over a limit.
    #[error("{path} {source}")]
    Input { path: String, source: InputError },
    #[error("{path} is too large: {reason}")]
    TooLarge { path: String, reason: String },
    #[error("cannot hold {path} in memory: {source}")]
    Memory { path: String, source: tch::TchError },
    #[error("{path} holds no images; a data set needs at least one")]
    NoImages { path: String },
    #[error("{path} holds images of {height}×{width} pixels; both sides must be at least 1")]
    EmptyImages { path: String, height: usize, width: usize },
}

impl DataError {
    fn input(path: &Path, error: InputError) -> DataError {
        let path = path.display().to_string();
        match error {
            InputError::Io(source) => DataError::Io { path, source },
            source => DataError::Input { path, source },
        }
    }
}

/// Images as bytes `[N, 1, H, W]` and labels `[N]`, on the CPU.
pub struct Dataset {
    pub images: Tensor,
    pub labels: Tensor,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Height and width of the images.
    pub fn image_size(&self) -> (i64, i64) {
        let s = self.images.size();
        (s[2], s[3])
    }
}

/// The IDX encoding of `payload` with these dimensions and magic number (2051 for images,
/// 2049 for labels), for writing a dataset nnc can read.
pub fn encode_idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(payload);
    out
}

/// Reads an IDX file of unsigned bytes, raw or gzipped: magic `0x0000_08_NN` with NN
/// dimensions, the dimensions as big-endian u32, then exactly their product of bytes. Only a
/// regular file is read, and only as much as its header declares (plus one byte, to tell a
/// longer file), after that size has been checked against [`MAX_IDX_BYTES`]: a gzip bomb is
/// refused after decompressing no more than its header promised.
fn read_idx(
    path: &Path,
    dims_expected: usize,
    what: &'static str,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let fail = |reason: String| DataError::Format { path: path.display().to_string(), what, reason };
    let io = |source| DataError::Io { path: path.display().to_string(), source };
    let (file, file_size) = input::open_regular(path).map_err(|e| DataError::input(path, e))?;
    let mut raw = BufReader::new(file);
    let gzipped = raw.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> =
        if gzipped { Box::new(flate2::read::GzDecoder::new(raw)) } else { Box::new(raw) };

    let header_len = 4 + 4 * dims_expected;
    let mut header = Vec::with_capacity(header_len);
    reader.by_ref().take(header_len as u64).read_to_end(&mut header).map_err(io)?;
    if header.len() < 4 {
        return Err(fail(format!("it has only {} bytes", header.len())));
    }
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let expected_magic = 0x0800 + dims_expected as u32;
    if magic != expected_magic {
        return Err(fail(format!("magic number {magic} (0x{magic:08x}), expected {expected_magic}")));
    }
    if header.len() < header_len {
        return Err(fail(format!("the header is truncated ({} of {header_len} bytes)", header.len())));
    }
    let dims: Vec<usize> =
        header[4..].chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let size = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .ok_or_else(|| fail(format!("dimensions {dims:?} overflow")))?;
    if size > MAX_IDX_BYTES {
        return Err(DataError::TooLarge {
            path: path.display().to_string(),
            reason: format!(
                "its header declares dimensions {dims:?}, {} bytes, over the limit of {} bytes",
                thousands(size),
                thousands(MAX_IDX_BYTES)
            ),
        });
    }
    let truncated =
        |found: u64| fail(format!("it is truncated: dimensions {dims:?} need {size} bytes, found {found}"));
    // A raw file's length is known without reading it.
    if !gzipped {
        let found = file_size.saturating_sub(header_len as u64);
        if found > size {
            return Err(fail(format!(
                "it is longer than its header says: dimensions {dims:?} need {size} bytes, found {found}"
            )));
        }
        if found < size {
            return Err(truncated(found));
        }
    }
    let payload = match input::read_to_limit(reader, size, size) {
        Ok(payload) if (payload.len() as u64) < size => return Err(truncated(payload.len() as u64)),
        Ok(payload) => payload,
        Err(InputError::TooLarge { .. }) => {
            return Err(fail(format!(
                "it is longer than its header says: dimensions {dims:?} need {size} bytes, and it \
                 decompresses to more (decompression stopped there)"
            )))
        }
        Err(e) => return Err(DataError::input(path, e)),
    };
    Ok((dims, payload))
}

/// Reads an IDX images file, `[N, H, W]`, refusing one without images or with images of no
/// pixels (which nothing could train on or resize).
fn read_idx_images(path: &Path) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let (dims, pixels) = read_idx(path, 3, "images")?;
    let name = || path.display().to_string();
    if dims[0] == 0 {
        return Err(DataError::NoImages { path: name() });
    }
    if dims[1] == 0 || dims[2] == 0 {
        return Err(DataError::EmptyImages { path: name(), height: dims[1], width: dims[2] });
    }
    Ok((dims, pixels))
}

/// The bytes read from `path` as a tensor of `shape`; libtorch's refusal of the memory is an
/// error naming the file, not a panic.
fn tensor(path: &Path, bytes: &[u8], shape: &[i64]) -> Result<Tensor, DataError> {
    Tensor::f_from_slice(bytes)
        .and_then(|t| t.f_reshape(shape))
        .map_err(|source| DataError::Memory { path: path.display().to_string(), source })
}

/// Reads an images file (IDX magic 2051, `[N, H, W]`) and its labels file (magic 2049, `[N]`),
/// checking counts and that every label is below `classes`.
pub fn read_pair(images: &Path, labels: &Path, classes: usize) -> Result<Dataset, DataError> {
    let (dims, pixels) = read_idx_images(images)?;
    let (ldims, label_bytes) = read_idx(labels, 1, "labels")?;
    if dims[0] != ldims[0] {
        return Err(DataError::CountMismatch {
            images: images.display().to_string(),
            n_images: dims[0],
            labels: labels.display().to_string(),
            n_labels: ldims[0],
        });
    }
    if let Some((index, &label)) = label_bytes.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
        return Err(DataError::Label { path: labels.display().to_string(), label, index, classes });
    }
    let n = dims[0] as i64;
    let images = tensor(images, &pixels, &[n, 1, dims[1] as i64, dims[2] as i64])?;
    let labels = tensor(labels, &label_bytes, &[ldims[0] as i64])?
        .f_to_kind(Kind::Int64)
        .map_err(|source| DataError::Memory { path: labels.display().to_string(), source })?;
    Ok(Dataset { images, labels })
}

/// Reads an images file alone (IDX magic 2051), for prediction.
pub fn read_images(path: &Path) -> Result<Tensor, DataError> {
    let (dims, pixels) = read_idx_images(path)?;
    tensor(path, &pixels, &[dims[0] as i64, 1, dims[1] as i64, dims[2] as i64])
}

/// Whether a path names a picture (PNG or JPEG) rather than an IDX file.
pub fn is_picture(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

/// A PNG or JPEG picture as one grey image `[1, 1, H, W]` of bytes. Fashion-MNIST's images are
/// light garments on black; a photo on a light background classifies better inverted.
///
/// Only a regular file of at most [`MAX_PICTURE_BYTES`] is read, and its size in pixels, from
/// its header, is checked against [`MAX_PICTURE_PIXELS`] before it is decoded.
pub fn read_picture(path: &Path) -> Result<Tensor, DataError> {
    let picture_error =
        |e: image::ImageError| DataError::Picture { path: path.display().to_string(), reason: e.to_string() };
    let bytes = input::read_regular(path, MAX_PICTURE_BYTES).map_err(|e| DataError::input(path, e))?;
    // The format from the content, else from the extension (for the decoder's own error).
    let reader = || -> Result<image::ImageReader<std::io::Cursor<&[u8]>>, DataError> {
        let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| picture_error(e.into()))?;
        if reader.format().is_none() {
            if let Ok(format) = image::ImageFormat::from_path(path) {
                reader.set_format(format);
            }
        }
        Ok(reader)
    };
    let header = reader()?;
    let format = header.format();
    let (w, h) = header.into_dimensions().map_err(picture_error)?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels == 0 {
        return Err(DataError::Picture {
            path: path.display().to_string(),
            reason: format!("it is {w}×{h} pixels"),
        });
    }
    if pixels > MAX_PICTURE_PIXELS {
        return Err(DataError::TooLarge {
            path: path.display().to_string(),
            reason: format!(
                "it is {w}×{h} pixels ({}), over the limit of {} pixels (8192×8192)",
                thousands(pixels),
                thousands(MAX_PICTURE_PIXELS)
            ),
        });
    }
    if format == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(&bytes) {
        return Err(DataError::Picture {
            path: path.display().to_string(),
            reason: "it ends inside its image data (no end-of-image marker after its last scan): the file is cut short"
                .into(),
        });
    }
    let grey = reader()?.decode().map_err(picture_error)?.to_luma8();
    tensor(path, grey.as_raw(), &[1, 1, i64::from(h), i64::from(w)])
}

/// Whether a JPEG's last scan is whole: its end-of-image marker (FF D9) comes after its last
/// start-of-scan marker (FF DA). `image` runs zune-jpeg leniently, which fills a scan cut short
/// with grey and says nothing, so a truncated download would be classified as a picture. The
/// compressed data cannot hold either pair (a data byte FF is written FF 00), so the last FF DA
/// is the last scan's, after any thumbnail's, and the FF D9 after it is its end.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    matches!((last(0xDA), last(0xD9)), (Some(scan), Some(end)) if end > scan)
}

/// Finds `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stem: &str, what: &'static str) -> Result<PathBuf, DataError> {
    [stem.to_string(), format!("{stem}.gz")]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::Missing {
            dir: dir.display().to_string(),
            what,
            expected: format!("{stem} or {stem}.gz"),
        })
}

/// The training and test sets of a folder laid out as (Fashion-)MNIST is.
pub fn load_dir(dir: &Path, classes: usize) -> Result<(Dataset, Dataset), DataError> {
    let train = read_pair(
        &find(dir, "train-images-idx3-ubyte", "training images")?,
        &find(dir, "train-labels-idx1-ubyte", "training labels")?,
        classes,
    )?;
    let test = read_pair(
        &find(dir, "t10k-images-idx3-ubyte", "test images")?,
        &find(dir, "t10k-labels-idx1-ubyte", "test labels")?,
        classes,
    )?;
    Ok((train, test))
}

/// Mini-batches of a dataset: floats in [0, 1] on `device`, resized (bilinear, as
/// torchvision's `Resize`) to `resize` pixels when given, in a shuffled or fixed order.
pub struct Batches<'d> {
    data: &'d Dataset,
    order: Tensor,
    batch: i64,
    next: i64,
    resize: Option<i64>,
    device: Device,
}

impl<'d> Batches<'d> {
    /// Shuffles with the global generator (seed it first for a reproducible order).
    pub fn new(data: &'d Dataset, batch: i64, shuffle: bool, resize: Option<i64>, device: Device) -> Self {
        let n = data.len() as i64;
        let order = if shuffle {
            Tensor::randperm(n, (Kind::Int64, Device::Cpu))
        } else {
            Tensor::arange(n, (Kind::Int64, Device::Cpu))
        };
        Batches { data, order, batch, next: 0, resize, device }
    }

    pub fn len(&self) -> usize {
        (self.data.len() as i64 + self.batch - 1) as usize / self.batch as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Iterator for Batches<'_> {
    /// A batch, or libtorch's error (a refused allocation) while making it.
    type Item = Result<(Tensor, Tensor), tch::TchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let n = self.order.size()[0];
        if self.next >= n {
            return None;
        }
        let size = self.batch.min(n - self.next);
        let index = self.order.narrow(0, self.next, size);
        self.next += size;
        Some(self.make(&index))
    }
}

impl Batches<'_> {
    /// The batch of the examples `index`, as floats in [0, 1] at the model's size. Through
    /// libtorch's fallible calls: the batch's size is the user's to choose.
    fn make(&self, index: &Tensor) -> Result<(Tensor, Tensor), tch::TchError> {
        let images = self.data.images.f_index_select(0, index)?.f_to_device(self.device)?;
        let x = images.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?;
        let x = match self.resize {
            Some(s) if x.size()[2] != s || x.size()[3] != s => {
                x.f_upsample_bilinear2d([s, s], false, None, None)?
            }
            _ => x,
        };
        let y = self.data.labels.f_index_select(0, index)?.f_to_device(self.device)?;
        Ok((x, y))
    }
}
