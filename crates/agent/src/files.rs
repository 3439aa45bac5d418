//! Writing keys, certificates and signatures: never over an existing file unless asked, never
//! through a symbolic link, private keys created with mode 0600 (never inheriting an old
//! file's mode).
//!
//! A set of files is checked whole before any is written, so a refusal changes nothing. A new
//! file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`; a file written over (when asked) is
//! replaced by renaming a new file, made that way beside it, over it, so that the name ends on
//! a new file of the right mode and a link's target is never opened.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a set of files was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "{} exists already: ferry writes over it only when asked (--force), or choose another directory",
        list(.0)
    )]
    Exists(Vec<PathBuf>),
    #[error(
        "{} is a symbolic link: ferry never writes through a link (remove it, or choose another directory)",
        list(.0)
    )]
    Link(Vec<PathBuf>),
    #[error("{} is not a regular file", .0.display())]
    NotAFile(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One file to write.
pub struct NewFile<'a> {
    pub path: PathBuf,
    pub data: &'a [u8],
    /// Mode 0600 (a private key) rather than 0644.
    pub private: bool,
}

/// Whether existing files may be written over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Refuse,
    Replace,
}

/// Checks every destination, then writes each file. Symbolic links are refused whatever
/// `existing` says; existing regular files unless it is `Replace`.
pub fn write_all(files: &[NewFile], existing: Existing) -> Result<(), WriteError> {
    let (mut links, mut present) = (Vec::new(), Vec::new());
    for f in files {
        match std::fs::symlink_metadata(&f.path) {
            Ok(m) if m.file_type().is_symlink() => links.push(f.path.clone()),
            Ok(m) if !m.is_file() => return Err(WriteError::NotAFile(f.path.clone())),
            Ok(_) => present.push(f.path.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(WriteError::Io {
                    path: f.path.clone(),
                    source,
                })
            }
        }
    }
    if !links.is_empty() {
        return Err(WriteError::Link(links));
    }
    if !present.is_empty() && existing == Existing::Refuse {
        return Err(WriteError::Exists(present));
    }
    for f in files {
        if present.contains(&f.path) {
            replace(&f.path, f.data, f.private)?;
        } else {
            create_new(&f.path, f.data, f.private).map_err(|source| match source.kind() {
                // Made between the check and now: refused like any file there.
                std::io::ErrorKind::AlreadyExists => WriteError::Exists(vec![f.path.clone()]),
                _ => WriteError::Io {
                    path: f.path.clone(),
                    source,
                },
            })?;
        }
    }
    Ok(())
}

/// Creates `path`, which must not exist (not even as a link), with the data and the mode.
fn create_new(path: &Path, data: &[u8], private: bool) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Writes a new file beside `path` and renames it over `path` (which replaces the name, a
/// link included, and never opens what it points to).
fn replace(path: &Path, data: &[u8], private: bool) -> Result<(), WriteError> {
    let io = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().map(|n| n.to_string_lossy().to_string());
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut n = 0u32;
    let tmp = loop {
        let tmp = dir.join(format!(
            ".{}.new-{}-{n}",
            name.as_deref().unwrap_or("file"),
            std::process::id()
        ));
        match create_new(&tmp, data, private) {
            Ok(()) => break tmp,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(io(e)),
        }
    };
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_written_never_over_and_never_through_links() {
        let dir = std::env::temp_dir().join(format!("ferry-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.pem");
        let public = dir.join("cert.pem");
        let set = |data: &'static [u8]| {
            vec![
                NewFile {
                    path: key.clone(),
                    data,
                    private: true,
                },
                NewFile {
                    path: public.clone(),
                    data,
                    private: false,
                },
            ]
        };
        write_all(&set(b"one"), Existing::Refuse).unwrap();
        assert_eq!((mode(&key), mode(&public)), (0o600, 0o644));
        let e = write_all(&set(b"two"), Existing::Refuse).unwrap_err();
        assert!(
            matches!(e, WriteError::Exists(ref p) if p.len() == 2),
            "{e}"
        );
        assert_eq!(std::fs::read(&key).unwrap(), b"one");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_all(&set(b"two"), Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"two");
        assert_eq!(mode(&key), 0o600);
        // A link where a file would go: refused, with or without Replace.
        let target = dir.join("elsewhere");
        std::fs::remove_file(&key).unwrap();
        std::os::unix::fs::symlink(&target, &key).unwrap();
        for existing in [Existing::Refuse, Existing::Replace] {
            let e = write_all(&set(b"three"), existing).unwrap_err();
            assert!(matches!(e, WriteError::Link(_)), "{e}");
            assert!(!target.exists());
            assert_eq!(std::fs::read(&public).unwrap(), b"two");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
