//! Opening input files so that no input can hang nnc or make it read without end: only regular
//! files are read, and never more than a limit, which is enforced while reading (a file's
//! size can change between the look and the read). The model loader reads `.net` files
//! through it, and the runtime its data and pictures.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;

/// Why an input file was not read.
#[derive(Debug)]
pub enum InputError {
    Directory,
    /// Neither a regular file nor a directory: `kind` says what it is (`"a FIFO (named pipe)"`).
    /// Reading a FIFO blocks until something writes to it, and a device such as `/dev/zero`
    /// never ends.
    NotRegular {
        kind: &'static str,
    },
    /// Over `max` bytes: `size` is the size the file system gave, or `None` when the file
    /// grew past the limit while it was read.
    TooLarge {
        size: Option<u64>,
        max: u64,
    },
    Io(io::Error),
}

impl fmt::Display for InputError {
    /// The reason, to follow the path: "`x.net` is a FIFO (named pipe), not a regular file".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Directory => write!(f, "is a directory, not a regular file"),
            InputError::NotRegular { kind } => write!(f, "is {kind}, not a regular file"),
            InputError::TooLarge { size: Some(size), max } => {
                write!(f, "is {size} bytes, over the limit of {max}")
            }
            InputError::TooLarge { size: None, max } => write!(f, "is over the limit of {max} bytes"),
            InputError::Io(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

impl std::error::Error for InputError {}

/// Whether `meta` is a regular file's; if not, what it is.
fn check_regular(meta: &Metadata) -> Result<(), InputError> {
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    if t.is_dir() {
        return Err(InputError::Directory);
    }
    Err(InputError::NotRegular { kind: kind_of(&t) })
}

/// What a file that is neither regular nor a directory is, in words.
pub(crate) fn kind_of(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

/// Opens `path` for reading if it is a regular file (after symbolic links), and returns it with
/// its size. Nothing else is opened: opening a FIFO blocks until a writer comes, and opening a
/// device can have effects of its own.
pub fn open_regular(path: &Path) -> Result<(File, u64), InputError> {
    check_regular(&std::fs::metadata(path).map_err(InputError::Io)?)?;
    // The file may be replaced between the look above and the open: open without blocking,
    // so that a FIFO put there in the meantime cannot hang the open, and check again what was
    // opened, which is what will be read.
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(InputError::Io)?;
    let meta = file.metadata().map_err(InputError::Io)?;
    check_regular(&meta)?;
    Ok((file, meta.len()))
}

/// Reads the whole of `reader`, but never more than `max` bytes: one byte more is an error.
/// `expected` is the size to make room for at once (at most `max`); room that cannot be had is
/// an error, not an abort.
pub fn read_to_limit(mut reader: impl Read, max: u64, expected: u64) -> Result<Vec<u8>, InputError> {
    let room = usize::try_from(expected.min(max)).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(room).map_err(|_| {
        InputError::Io(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("cannot allocate {room} bytes to read it"),
        ))
    })?;
    reader.by_ref().take(max).read_to_end(&mut bytes).map_err(InputError::Io)?;
    // A read that ended short of the limit met the end of the input: what a writer appends
    // after it is not this read's, and is no reason to call the input too large.
    if (bytes.len() as u64) < max {
        return Ok(bytes);
    }
    // Read the byte past the limit apart, so that a full buffer of exactly `max` bytes is
    // never grown for it.
    let mut more = Vec::new();
    reader.take(1).read_to_end(&mut more).map_err(InputError::Io)?;
    if !more.is_empty() {
        return Err(InputError::TooLarge { size: None, max });
    }
    Ok(bytes)
}

/// A file's bytes without the byte-order mark some Windows editors put first in a UTF-8 file,
/// which is no character of its text: spans then count from the character after it, as
/// editors count columns.
pub fn without_bom(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    bytes
}

/// Reads the regular file `path`, of at most `max` bytes: a larger size is refused before
/// reading, and a file that grows past `max` while it is read is refused at that point.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, InputError> {
    let (file, size) = open_regular(path)?;
    if size > max {
        return Err(InputError::TooLarge { size: Some(size), max });
    }
    read_to_limit(file, max, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("nnc-input-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = tmp("limit");
        let path = dir.join("a.net");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_regular(&path, 5).unwrap(), b"12345");
        let err = read_regular(&path, 4).unwrap_err();
        assert!(matches!(err, InputError::TooLarge { size: Some(5), max: 4 }), "{err:?}");
        assert_eq!(err.to_string(), "is 5 bytes, over the limit of 4");
        // A stream longer than it said stops one byte past the limit.
        let err = read_to_limit(io::repeat(0), 1000, 0).unwrap_err();
        assert_eq!(err.to_string(), "is over the limit of 1000 bytes");
        let err = read_regular(&dir, 4).unwrap_err();
        assert_eq!(err.to_string(), "is a directory, not a regular file");
        std::fs::remove_dir_all(dir).unwrap();
        // A file that grows after its end was read is what was read, not "too large".
        struct Growing(Vec<&'static [u8]>);
        impl Read for Growing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let next = if self.0.is_empty() { &b""[..] } else { self.0.remove(0) };
                buf[..next.len()].copy_from_slice(next);
                Ok(next.len())
            }
        }
        let grown = Growing(vec![b"abc", b"", b"d"]);
        assert_eq!(read_to_limit(grown, 1000, 3).unwrap(), b"abc");
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_fifos_are_refused_unread() {
        let err = read_regular(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(err.to_string(), "is a character device, not a regular file");
        let dir = tmp("fifo");
        let fifo = dir.join("pipe.net");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Opening a FIFO with no writer would block forever; this returns at once.
            let err = read_regular(&fifo, 1 << 20).unwrap_err();
            assert_eq!(err.to_string(), "is a FIFO (named pipe), not a regular file");
        } else {
            eprintln!("skipped the FIFO: `mkfifo` did not run");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
