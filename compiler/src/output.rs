//! Writing output files so that no crash leaves half of one and no path makes nnc destroy
//! something that is not a file of its own: the bytes go to a temporary file beside the
//! target, synced and renamed over it, then the folder is synced, so that the rename is durable.
//! Only ever a regular file is replaced: a symbolic link is followed, so that its target gets
//! the new contents and the link stays; a path that names a FIFO, a device, a socket or a
//! folder is refused, as the renaming would replace `/dev/null` by a file, or a FIFO a reader
//! waits on. Every command that writes a file writes it through here (`nnc fmt`, `snapshot`,
//! `graph`, `emit --target onnx`, and the runtime's weights, metrics and plots).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::input::kind_of;

/// Symbolic links followed before a path is taken as looping, as Linux's `ELOOP` limit.
const MAX_LINKS: usize = 40;

/// Writes `bytes` to `path` atomically (see the module's notes). A file already there keeps
/// its permissions. A failure before the rename removes the temporary file and leaves `path`
/// as it was; a folder whose sync is not supported (some network file systems) is not one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let path = regular_target(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(temporary_name(&name));
    let mut file = match create_new(&tmp) {
        // The name holds this process's id, so a file there was left by a process that had
        // the same id and died before its rename (ids come round again in containers).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(&tmp)?;
            create_new(&tmp)?
        }
        created => created?,
    };
    let mut write = || -> io::Result<()> {
        file.write_all(bytes)?;
        file.sync_all()?;
        match fs::metadata(&path) {
            Ok(meta) => fs::set_permissions(&tmp, meta.permissions())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename made durable. The file is in place whatever this gives.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        match File::open(dir).and_then(|d| d.sync_all()) {
            Err(e) if matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported) => {}
            synced => synced?,
        }
    }
    Ok(())
}

fn create_new(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new().write(true).create_new(true).open(path)
}

/// The temporary file of a write of the file `name` by this process: `.NAME.PID.tmp`, hidden,
/// beside it (the runtime's `remove_stray_temporaries` removes those that killed writes left).
fn temporary_name(name: &str) -> String {
    format!(".{name}.{}.tmp", std::process::id())
}

/// The file a write of `path` replaces: `path` itself, or the end of the chain of symbolic
/// links it starts; an error of kind [`io::ErrorKind::InvalidInput`] if that is there and is
/// not a regular file, or if the chain goes through `/proc` (`/dev/stdout`, `/dev/fd/N`: an
/// open file's link, whose text is no path to it, and a file the shell may have opened to
/// append to, which a rename would replace).
fn regular_target(path: &Path) -> io::Result<PathBuf> {
    let mut target = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match fs::symlink_metadata(&target) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(target),
            Err(e) => return Err(e),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let folder = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if fs::canonicalize(folder).is_ok_and(|f| f.starts_with("/proc")) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "`{}` is an open file's link (under /proc), not a file: nnc writes only regular files by name; leave the option out to write to standard output where the command can",
                        path.display()
                    ),
                ));
            }
            let to = fs::read_link(&target)?;
            // A relative link is relative to the folder that holds it.
            target = match target.parent() {
                Some(dir) if to.is_relative() => dir.join(to),
                _ => to,
            };
            continue;
        }
        if kind.is_file() {
            return Ok(target);
        }
        let what = if kind.is_dir() { "a folder" } else { kind_of(&kind) };
        let through = match target.as_path() == path {
            true => String::new(),
            false => format!(" (`{}` links to it)", path.display()),
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` is {what}, not a regular file{through}: nnc writes only regular files",
                target.display()
            ),
        ));
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("`{}`: more than {MAX_LINKS} symbolic links in a row", path.display()),
    ))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nnc-output-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_temporary_file_a_dead_process_of_the_same_id_left_is_replaced() {
        let dir = dir("stale");
        let path = dir.join("a.txt");
        fs::write(dir.join(temporary_name("a.txt")), "stale").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replaces_a_file_and_keeps_its_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir("file");
        let path = dir.join("a.txt");
        write_atomic(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        // Nothing left beside it.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_through_symbolic_links() {
        let dir = dir("link");
        fs::create_dir(dir.join("real")).unwrap();
        fs::write(dir.join("real/target.txt"), "old").unwrap();
        // A relative link, to a relative link, and a dangling one.
        std::os::unix::fs::symlink("real/target.txt", dir.join("first")).unwrap();
        std::os::unix::fs::symlink("first", dir.join("second")).unwrap();
        std::os::unix::fs::symlink("real/new.txt", dir.join("dangling")).unwrap();
        write_atomic(&dir.join("second"), b"new").unwrap();
        assert_eq!(fs::read(dir.join("real/target.txt")).unwrap(), b"new");
        assert!(fs::symlink_metadata(dir.join("second")).unwrap().file_type().is_symlink());
        assert!(fs::symlink_metadata(dir.join("first")).unwrap().file_type().is_symlink());
        write_atomic(&dir.join("dangling"), b"made").unwrap();
        assert_eq!(fs::read(dir.join("real/new.txt")).unwrap(), b"made");
        assert!(fs::symlink_metadata(dir.join("dangling")).unwrap().file_type().is_symlink());
        std::os::unix::fs::symlink("loop", dir.join("loop")).unwrap();
        let looping = write_atomic(&dir.join("loop"), b"x").unwrap_err();
        assert!(looping.to_string().contains("symbolic links in a row"), "{looping}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let dir = dir("special");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let e = write_atomic(&fifo, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("is a FIFO (named pipe), not a regular file"), "{e}");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        let e = write_atomic(&dir, b"x").unwrap_err();
        assert!(e.to_string().contains("is a folder, not a regular file"), "{e}");
        // A device, through a link: refused, naming both.
        std::os::unix::fs::symlink("/dev/null", dir.join("null")).unwrap();
        let e = write_atomic(&dir.join("null"), b"x").unwrap_err();
        assert!(e.to_string().contains("`/dev/null` is a character device"), "{e}");
        assert!(e.to_string().contains("links to it"), "{e}");
        assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        // An open file's link, whatever the test's standard output is (a pipe, a file opened to
        // append to): refused, never renamed over.
        for fd in ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"] {
            let e = write_atomic(Path::new(fd), b"x").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{fd}: {e}");
            assert!(e.to_string().contains("is an open file's link (under /proc)"), "{fd}: {e}");
        }
        // Nothing was left beside them.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
