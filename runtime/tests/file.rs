//! The files around a run: the temporaries killed writes leave are found and removed (and
//! nothing else is), the folder lock refuses a second holder and frees on drop, and a folder
//! that cannot be written is found before any work.

use nnc_runtime::{check_writable, lock_folder, remove_stray_temporaries, write_atomic};

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-file-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn stray_temporaries_are_removed_and_nothing_else() {
    let dir = tmp("stray");
    let target = dir.join("checkpoint.safetensors");
    write_atomic(&target, b"weights").unwrap();
    let strays = [".checkpoint.safetensors.4242.tmp", ".checkpoint.safetensors.17.tmp.safetensors"];
    let kept = [
        "checkpoint.safetensors",
        ".checkpoint.safetensors.tmp",
        ".checkpoint.safetensors.12x.tmp",
        ".metrics.csv.4242.tmp",
        "checkpoint.safetensors.4242.tmp",
        ".checkpoint.safetensors.4242.tmpfile",
    ];
    for name in strays.iter().chain(&kept[1..]) {
        std::fs::write(dir.join(name), b"x").unwrap();
    }
    let removed = remove_stray_temporaries(&target).unwrap();
    let mut expected: Vec<_> = strays.iter().map(|n| dir.join(n)).collect();
    expected.sort();
    assert_eq!(removed, expected);
    for name in kept {
        assert!(dir.join(name).exists(), "{name} must stay");
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"weights");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_locked_folder_refuses_a_second_lock_until_released() {
    let dir = tmp("lock");
    let first = lock_folder(&dir, ".lock").unwrap();
    let err = lock_folder(&dir, ".lock").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock, "{err}");
    drop(first);
    let _again = lock_folder(&dir, ".lock").unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_folder_that_cannot_be_written_is_found() {
    let dir = tmp("writable");
    check_writable(&dir).unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "the probe must not stay");
    // Even root cannot create files in /proc/self, so this holds for every user.
    assert!(check_writable(std::path::Path::new("/proc/self")).is_err());
    assert!(lock_folder(std::path::Path::new("/proc/self"), ".lock").is_err());
    std::fs::remove_dir_all(dir).unwrap();
}
