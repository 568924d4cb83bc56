//! Files as the protocol names them: `file://` URIs of paths, percent-encoded, and the
//! standard library's modules, which are compiled into nnc and written, for an editor to open,
//! to a cache folder (`$XDG_CACHE_HOME/nnc/std-VERSION/resnet.net`, else under `~/.cache` or
//! the temporary folder).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use lsp_types::Uri;
use nnc_compiler::STD_MODULES;

/// The `file://` URI of an absolute path.
pub fn from_path(path: &Path) -> Option<Uri> {
    if !path.is_absolute() {
        return None;
    }
    let mut text = String::from("file://");
    for &byte in path.as_os_str().as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                text.push(byte as char)
            }
            _ => text.push_str(&format!("%{byte:02X}")),
        }
    }
    Uri::from_str(&text).ok()
}

/// The path a `file:` URI names (with an empty or `localhost` authority).
pub fn to_path(uri: &Uri) -> Option<PathBuf> {
    let rest = uri.as_str().strip_prefix("file://")?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Some(PathBuf::from(OsString::from_vec(out)))
}

/// The last segment of a URI's path, for a document that is no file (`untitled:Untitled-1`).
pub fn file_name(uri: &Uri) -> String {
    let name = uri.as_str().rsplit(['/', ':']).next().unwrap_or("");
    if name.is_empty() {
        "untitled.net".to_string()
    } else {
        name.to_string()
    }
}

/// The folder the standard library's modules were written to, once per process; `None` if no
/// folder could be written.
fn std_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let version = format!("std-{}", env!("CARGO_PKG_VERSION"));
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")));
        let candidates =
            cache.into_iter().chain([std::env::temp_dir()]).map(|base| base.join("nnc").join(&version));
        candidates.into_iter().find(|dir| write_std(dir).is_ok())
    })
    .as_deref()
}

/// Writes every module to `dir`, leaving a file that already holds its text alone.
fn write_std(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in STD_MODULES {
        let path = dir.join(std_file_name(name));
        if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
            // Renamed into place, so that a reader never sees half a module.
            nnc_compiler::output::write_atomic(&path, text.as_bytes())?;
        }
    }
    Ok(())
}

/// `std.resnet` → `resnet.net`.
fn std_file_name(module: &str) -> String {
    format!("{}.net", module.strip_prefix("std.").unwrap_or(module))
}

/// The path of a standard module's copy, for an editor to open.
pub fn std_path(module: &str) -> Option<PathBuf> {
    STD_MODULES.iter().any(|(name, _)| *name == module).then_some(())?;
    Some(std_dir()?.join(std_file_name(module)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        for path in ["/a/b c/ré sumé#1.net", "/tmp/x%y.net", "/plain/models/lenet.net"] {
            let uri = from_path(Path::new(path)).unwrap();
            assert_eq!(to_path(&uri).unwrap(), Path::new(path), "{}", uri.as_str());
        }
        assert_eq!(from_path(Path::new("/a b")).unwrap().as_str(), "file:///a%20b");
        let vscode = Uri::from_str("file:///c%3A/x.net").unwrap();
        assert_eq!(to_path(&vscode).unwrap(), Path::new("/c:/x.net"));
        assert_eq!(to_path(&Uri::from_str("untitled:Untitled-1").unwrap()), None);
    }
}
