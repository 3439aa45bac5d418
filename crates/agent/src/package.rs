//! Packages: minisign signature checks against the trusted keys, and unpacking a tar archive
//! so that nothing lands outside the slot (no absolute path, no `..`, no link leading out).

use std::io::Cursor;
use std::path::{Component, Path, PathBuf};

/// Why a package is refused (answered with 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn refused(msg: impl Into<String>) -> Refused {
    Refused(msg.into())
}

/// Reads a minisign public key: its base64 line alone, or a `.pub` file's text (comment line
/// and key line). Returns the base64 line.
pub fn parse_public_key(text: &str) -> Result<String, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .ok_or_else(|| "empty".to_string())?;
    public_key(line)?;
    Ok(line.to_string())
}

/// A minisign public key from its base64 line: an Ed25519 key (`Ed`) and its key ID.
fn public_key(line: &str) -> Result<minisign::PublicKey, String> {
    let key = minisign::PublicKey::from_base64(line).map_err(|e| e.to_string())?;
    if !key.to_bytes().starts_with(b"Ed") {
        return Err("not an Ed25519 key (its algorithm is not `Ed`)".into());
    }
    Ok(key)
}

/// The first word of a package signature's trusted comment: the rest names what was signed.
pub const STATEMENT_TAG: &str = "ferry-package";

/// What a package's signature says the package is: the service and the version it was signed
/// for. It is minisign's trusted comment, `ferry-package service=SERVICE version=VERSION`
/// (other `key=value` words may follow), which the signature's global signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub service: String,
    pub version: String,
}

impl Statement {
    /// A statement for `service` and `version`, or why they cannot be signed for.
    pub fn new(service: &str, version: &str) -> Result<Statement, String> {
        if !crate::config::is_plain_name(service) {
            return Err(format!(
                "`{service}` is not a service name (letters, digits, `-`, `_` and `.`)"
            ));
        }
        if version.is_empty() || version.contains(|c: char| c.is_whitespace() || c == '=') {
            return Err(format!(
                "`{version}` cannot be signed for: a package's version has no spaces and no `=`"
            ));
        }
        ferry_model::VendorVersion::parse(version)
            .map_err(|e| format!("`{version}` is not a version: {e}"))?;
        Ok(Statement {
            service: service.to_string(),
            version: version.to_string(),
        })
    }

    /// The trusted comment that states it.
    pub fn comment(&self, timestamp: i64) -> String {
        format!(
            "{STATEMENT_TAG} service={} version={} timestamp={timestamp}",
            self.service, self.version
        )
    }

    /// Reads a trusted comment: `None` when it is no ferry statement (a signature made before
    /// ferry signed statements, or by minisign with its default comment).
    pub fn parse(comment: &str) -> Result<Option<Statement>, String> {
        let mut words = comment.split_whitespace();
        if words.next() != Some(STATEMENT_TAG) {
            return Ok(None);
        }
        let (mut service, mut version) = (None, None);
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                return Err(format!("`{w}` is not KEY=VALUE"));
            };
            let slot = match k {
                "service" => &mut service,
                "version" => &mut version,
                _ => continue,
            };
            if slot.replace(v.to_string()).is_some() {
                return Err(format!("it names `{k}` twice"));
            }
        }
        match (service, version) {
            (Some(s), Some(v)) => Statement::new(&s, &v).map(Some),
            (None, _) => Err("it names no `service`".into()),
            (_, None) => Err("it names no `version`".into()),
        }
    }
}

impl std::fmt::Display for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.service, self.version)
    }
}

/// How to sign a package again, for a refusal's message.
pub const SIGN_AGAIN: &str = "sign it again with `ferry agent sign PACKAGE --key KEY --service SERVICE --version VERSION` (or minisign: `minisign -S -m PACKAGE -t \"ferry-package service=SERVICE version=VERSION\"`)";

/// The keys packages must be signed with.
pub struct Trust {
    keys: Vec<minisign::PublicKey>,
}

impl Trust {
    /// From base64 key lines (as `parse_public_key` returns them); bad ones are skipped.
    pub fn new(lines: &[String]) -> Trust {
        Trust {
            keys: lines.iter().filter_map(|l| public_key(l).ok()).collect(),
        }
    }

    /// Checks `signature` (a `.minisig` file's text) over `data` with every trusted key, and
    /// returns what it states the package is (the service and version it was signed for).
    pub fn verify(&self, data: &[u8], signature: Option<&str>) -> Result<Statement, Refused> {
        let Some(text) = signature.filter(|s| !s.trim().is_empty()) else {
            return Err(refused("the package has no signature"));
        };
        let sig = minisign::SignatureBox::from_string(text)
            .map_err(|e| refused(format!("the signature cannot be read: {e}")))?;
        let comment = sig.trusted_comment().unwrap_or_default();
        let mut untrusted = true;
        for key in &self.keys {
            // A key that did not make the signature is skipped; one that did, decides.
            if key.keynum() != sig.keynum() {
                continue;
            }
            untrusted = false;
            if minisign::verify(key, &sig, Cursor::new(data), true, false, false).is_ok() {
                return match Statement::parse(&comment) {
                    Ok(Some(s)) => Ok(s),
                    Ok(None) => Err(refused(format!(
                        "the signature does not name the service and version it was signed for (its trusted comment is `{comment}`); {SIGN_AGAIN}"
                    ))),
                    Err(e) => Err(refused(format!(
                        "the signature's statement `{comment}` cannot be read: {e}; {SIGN_AGAIN}"
                    ))),
                };
            }
        }
        Err(refused(if untrusted {
            "the package is signed with a key this agent does not trust"
        } else {
            "the package's signature does not verify (the archive or the signature was altered)"
        }))
    }
}

/// A path inside the archive made of plain names only (`.` allowed), or the reason not.
fn plain_relative(p: &Path, what: &str) -> Result<(), Refused> {
    if p.as_os_str().is_empty() {
        return Err(refused(format!("{what} has an empty path")));
    }
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(refused(format!(
                    "{what} `{}` goes up with `..`: it would land outside the slot",
                    p.display()
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(format!(
                    "{what} `{}` is absolute: it would land outside the slot",
                    p.display()
                )))
            }
        }
    }
    Ok(())
}

/// Where a symbolic link at `entry` pointing to `target` leads, relative to the slot, when it
/// stays inside (lexically).
fn link_inside(entry: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: Vec<&std::ffi::OsStr> = Vec::new();
    let parent = entry.parent().unwrap_or(Path::new(""));
    for c in parent.components().chain(target.components()) {
        match c {
            Component::Normal(n) => depth.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Checks every entry of a tar archive before anything is written.
pub fn check_archive(data: &[u8]) -> Result<usize, Refused> {
    let mut archive = tar::Archive::new(Cursor::new(data));
    let entries = archive
        .entries()
        .map_err(|e| refused(format!("the archive cannot be read: {e}")))?;
    let mut n = 0;
    for entry in entries {
        let entry = entry.map_err(|e| refused(format!("the archive cannot be read: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| refused(format!("an entry's path cannot be read: {e}")))?
            .into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        plain_relative(&path, "entry")?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {}
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| refused(format!("a link's target cannot be read: {e}")))?
                    .ok_or_else(|| refused(format!("link `{}` has no target", path.display())))?;
                if !link_inside(&path, &target) {
                    return Err(refused(format!(
                        "link `{}` leads out of the slot (to `{}`)",
                        path.display(),
                        target.display()
                    )));
                }
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| refused(format!("a link's target cannot be read: {e}")))?
                    .ok_or_else(|| refused(format!("link `{}` has no target", path.display())))?;
                plain_relative(&target, "hard link target")?;
            }
            other => {
                return Err(refused(format!(
                    "entry `{}` is a {:?}: only files, directories and links may be packaged",
                    path.display(),
                    other
                )))
            }
        }
        n += 1;
    }
    if n == 0 {
        return Err(refused("the archive is empty"));
    }
    Ok(n)
}

/// Unpacks a checked archive into `dest` (created, empty), then checks that every symbolic
/// link resolves inside it. On refusal `dest` is removed.
pub fn unpack(data: &[u8], dest: &Path) -> Result<(), Refused> {
    check_archive(data)?;
    let result = unpack_checked(data, dest);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    result
}

fn unpack_checked(data: &[u8], dest: &Path) -> Result<(), Refused> {
    std::fs::create_dir_all(dest)
        .map_err(|e| refused(format!("cannot create {}: {e}", dest.display())))?;
    let mut archive = tar::Archive::new(Cursor::new(data));
    archive.set_preserve_permissions(false);
    archive.set_preserve_ownerships(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let entries = archive
        .entries()
        .map_err(|e| refused(format!("the archive cannot be read: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| refused(format!("the archive cannot be read: {e}")))?;
        if entry.header().entry_type().is_pax_global_extensions() {
            continue;
        }
        let path = entry.path().map(|p| p.into_owned()).unwrap_or_default();
        match entry.unpack_in(dest) {
            Ok(true) => {}
            Ok(false) => {
                return Err(refused(format!(
                    "entry `{}` would land outside the slot",
                    path.display()
                )))
            }
            Err(e) => {
                return Err(refused(format!(
                    "entry `{}` cannot be unpacked: {e}",
                    path.display()
                )))
            }
        }
    }
    let root = dest
        .canonicalize()
        .map_err(|e| refused(format!("cannot read {}: {e}", dest.display())))?;
    check_links(&root, &root)
}

/// Every symbolic link under `dir` must resolve to something inside `root`.
fn check_links(root: &Path, dir: &Path) -> Result<(), Refused> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| refused(format!("cannot read {}: {e}", dir.display())))?;
    for e in rd {
        let e = e.map_err(|e| refused(format!("cannot read {}: {e}", dir.display())))?;
        let path = e.path();
        let ft = e
            .file_type()
            .map_err(|e| refused(format!("cannot read {}: {e}", path.display())))?;
        let rel = || -> PathBuf { path.strip_prefix(root).unwrap_or(&path).to_path_buf() };
        if ft.is_symlink() {
            match path.canonicalize() {
                Ok(to) if to.starts_with(root) => {}
                Ok(_) => {
                    return Err(refused(format!(
                        "link `{}` leads out of the slot",
                        rel().display()
                    )))
                }
                Err(_) => {
                    return Err(refused(format!(
                        "link `{}` leads nowhere inside the package",
                        rel().display()
                    )))
                }
            }
        } else if ft.is_dir() {
            check_links(root, &path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Public keys: a `.pub` file's text or its base64 line; only Ed25519 keys (`Ed`).
    #[test]
    fn public_keys() {
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut key = b"Ed".to_vec();
        key.extend([7u8; 8 + 32]);
        let line = b64(&key);
        let file = format!("untrusted comment: minisign public key\n{line}\n");
        for (text, ok) in [
            (line.as_str(), true),
            (file.as_str(), true),
            ("", false),
            ("not base64", false),
        ] {
            assert_eq!(parse_public_key(text).is_ok(), ok, "{text}");
        }
        key[..2].copy_from_slice(b"XX");
        let e = parse_public_key(&b64(&key)).expect_err("not Ed25519");
        assert!(e.contains("Ed25519"), "{e}");
    }

    fn tar_with(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, body) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    // Bypass the builder's own path checks to write hostile names.
                    let name = h.as_old_mut();
                    name.name[..path.len()].copy_from_slice(path.as_bytes());
                    name.linkname[..body.len()].copy_from_slice(body.as_bytes());
                    h.set_cksum();
                    b.append(&h, std::io::empty()).unwrap();
                }
                _ => {
                    h.set_size(body.len() as u64);
                    let name = h.as_old_mut();
                    name.name[..path.len()].copy_from_slice(path.as_bytes());
                    h.set_cksum();
                    b.append(&h, body.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn check(entries: &[(&str, tar::EntryType, &str)], expected: Result<(), &str>) {
        let data = tar_with(entries);
        let dir = std::env::temp_dir().join(format!(
            "ferry-agent-unpack-{}-{}",
            std::process::id(),
            entries.len() * 1000 + entries.first().map(|e| e.0.len()).unwrap_or(0)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let got = unpack(&data, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(want)) => assert!(e.0.contains(want), "{entries:?}: {e} lacks {want}"),
            (got, want) => panic!("{entries:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn archives() {
        use tar::EntryType::*;
        check(
            &[("bin/app", Regular, "x"), ("VERSION", Regular, "1")],
            Ok(()),
        );
        check(
            &[
                ("lib", Directory, ""),
                ("lib/a.so", Regular, "x"),
                ("l", Symlink, "lib/a.so"),
            ],
            Ok(()),
        );
        check(&[("../evil", Regular, "x")], Err("goes up with `..`"));
        check(&[("a/../../evil", Regular, "x")], Err("goes up with `..`"));
        check(&[("/etc/evil", Regular, "x")], Err("is absolute"));
        check(&[("out", Symlink, "/etc")], Err("leads out of the slot"));
        check(
            &[("a/out", Symlink, "../../etc")],
            Err("leads out of the slot"),
        );
        check(
            &[
                ("dir", Directory, ""),
                ("dir/y", Symlink, "."),
                ("dir/z", Symlink, "y/../.."),
            ],
            Err("leads out of the slot"),
        );
        check(
            &[("x", Regular, "1"), ("h", Link, "../x")],
            Err("goes up with `..`"),
        );
        check(&[("dangling", Symlink, "nothing")], Err("leads nowhere"));
        check(
            &[("fifo", Fifo, "")],
            Err("only files, directories and links"),
        );
        check(&[], Err("empty"));
    }

    #[test]
    fn links_inside() {
        for (entry, target, inside) in [
            ("a", "b", true),
            ("d/a", "../b", true),
            ("d/a", "../../b", false),
            ("a", "/b", false),
            ("d/e/a", "../../x/./y", true),
        ] {
            assert_eq!(
                link_inside(Path::new(entry), Path::new(target)),
                inside,
                "{entry} -> {target}"
            );
        }
    }
}
