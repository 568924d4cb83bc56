//! Writing a file so that a crash leaves either the old file or the new one, never half of one
//! (the compiler's [`write_atomic`], which every command's output goes through); removing what
//! killed writes left; and the lock that keeps two runs out of one folder.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use nnc_compiler::output::write_atomic;

/// Whether `candidate` is the name of a temporary file of a write of `name`: `.NAME.PID.tmp`
/// as [`write_atomic`] names them, or `.NAME.PID.tmp.EXT` as versions before it did.
fn is_temporary_of(name: &str, candidate: &str) -> bool {
    let Some(rest) = candidate.strip_prefix('.').and_then(|c| c.strip_prefix(name)) else {
        return false;
    };
    let Some((pid, tail)) = rest.strip_prefix('.').and_then(|r| r.split_once('.')) else {
        return false;
    };
    !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && (tail == "tmp" || tail.starts_with("tmp."))
}

/// Removes the temporary files that writes of `path` killed before their rename left beside
/// it, and returns their paths. A temporary file is removed whichever process wrote it, so
/// this is only safe while no other process writes `path`: callers hold the folder's
/// [`lock_folder`] lock.
pub fn remove_stray_temporaries(path: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return Ok(Vec::new()) };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let candidate = entry.file_name();
        if candidate.to_str().is_some_and(|c| is_temporary_of(name, c)) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    removed.sort();
    Ok(removed)
}

/// An exclusive lock on a folder: an OS file lock on a file in it, held until this is dropped.
/// The OS releases it when the process ends, however it ends, so a killed run never leaves the
/// folder locked (a marker file would).
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

/// Takes the exclusive lock of `dir`, held on the file `dir/name` (created if need be, and
/// kept afterwards: removing it would let a third process lock a new file while a second
/// still waits on the old one). A folder another process has locked is an error of kind
/// [`io::ErrorKind::WouldBlock`].
pub fn lock_folder(dir: &Path, name: &str) -> io::Result<FolderLock> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(name))?;
    match file.try_lock() {
        Ok(()) => Ok(FolderLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Checks that files can be created, written and removed in `dir`, which is what
/// [`write_atomic`] needs (an existing lock file opening for writing does not prove it).
pub fn check_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(format!(".nnc-write-check.{}.tmp", std::process::id()));
    let result = File::create(&probe).and_then(|mut f| f.write_all(b"nnc"));
    let removed = fs::remove_file(&probe);
    result.and(removed)
}
