//! Image classification data: IDX files (Fashion-MNIST, MNIST, or a user's own), raw or
//! gzipped, checked on the way in, and mini-batches resized on the fly on libtorch.

use std::io::Read;
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use thiserror::Error;

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

fn read_all(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io { path: path.display().to_string(), source };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(io)?;
        Ok(out)
    } else {
        Ok(raw)
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

/// Parses an IDX file of unsigned bytes: magic `0x0000_08_NN` with NN dimensions, the
/// dimensions as big-endian u32, then exactly their product of bytes.
fn parse_idx(
    path: &Path,
    bytes: &[u8],
    dims_expected: usize,
    what: &'static str,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let fail = |reason: String| DataError::Format { path: path.display().to_string(), what, reason };
    if bytes.len() < 4 {
        return Err(fail(format!("it has only {} bytes", bytes.len())));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let expected_magic = 0x0800 + dims_expected as u32;
    if magic != expected_magic {
        return Err(fail(format!("magic number {magic} (0x{magic:08x}), expected {expected_magic}")));
    }
    let header = 4 + 4 * dims_expected;
    if bytes.len() < header {
        return Err(fail(format!("the header is truncated ({} of {header} bytes)", bytes.len())));
    }
    let dims: Vec<usize> = (0..dims_expected)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let size = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| fail(format!("dimensions {dims:?} overflow")))?;
    let payload = &bytes[header..];
    if payload.len() != size {
        let how = if payload.len() < size { "truncated" } else { "longer than its header says" };
        return Err(fail(format!(
            "it is {how}: dimensions {dims:?} need {size} bytes, found {}",
            payload.len()
        )));
    }
    Ok((dims, payload.to_vec()))
}

/// Reads an images file (IDX magic 2051, `[N, H, W]`) and its labels file (magic 2049, `[N]`),
/// checking counts and that every label is below `classes`.
pub fn read_pair(images: &Path, labels: &Path, classes: usize) -> Result<Dataset, DataError> {
    let (dims, pixels) = parse_idx(images, &read_all(images)?, 3, "images")?;
    let (ldims, label_bytes) = parse_idx(labels, &read_all(labels)?, 1, "labels")?;
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
    let images = Tensor::from_slice(&pixels).reshape([n, 1, dims[1] as i64, dims[2] as i64]);
    let labels = Tensor::from_slice(&label_bytes).to_kind(Kind::Int64);
    Ok(Dataset { images, labels })
}

/// Reads an images file alone (IDX magic 2051), for prediction.
pub fn read_images(path: &Path) -> Result<Tensor, DataError> {
    let (dims, pixels) = parse_idx(path, &read_all(path)?, 3, "images")?;
    Ok(Tensor::from_slice(&pixels).reshape([dims[0] as i64, 1, dims[1] as i64, dims[2] as i64]))
}

/// Whether a path names a picture (PNG or JPEG) rather than an IDX file.
pub fn is_picture(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

/// A PNG or JPEG picture as one grey image `[1, 1, H, W]` of bytes. Fashion-MNIST's images are
/// light garments on black; a photo on a light background classifies better inverted.
pub fn read_picture(path: &Path) -> Result<Tensor, DataError> {
    let picture = image::open(path)
        .map_err(|e| DataError::Picture { path: path.display().to_string(), reason: e.to_string() })?;
    let grey = picture.to_luma8();
    let (w, h) = grey.dimensions();
    Ok(Tensor::from_slice(grey.as_raw()).reshape([1, 1, h as i64, w as i64]))
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
    type Item = (Tensor, Tensor);

    fn next(&mut self) -> Option<Self::Item> {
        let n = self.order.size()[0];
        if self.next >= n {
            return None;
        }
        let size = self.batch.min(n - self.next);
        let index = self.order.narrow(0, self.next, size);
        self.next += size;
        let x = self.data.images.index_select(0, &index).to_device(self.device).to_kind(Kind::Float) / 255.0;
        let x = match self.resize {
            Some(s) if x.size()[2] != s || x.size()[3] != s => {
                x.upsample_bilinear2d([s, s], false, None, None)
            }
            _ => x,
        };
        let y = self.data.labels.index_select(0, &index).to_device(self.device);
        Some((x, y))
    }
}
