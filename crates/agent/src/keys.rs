//! Package signing keys (minisign): a key pair for automation (the secret key unencrypted) and
//! signatures of package files, each stating the service and version it signs the package
//! for (minisign's trusted comment), so that users can sign what their agents stage.

use std::path::{Path, PathBuf};

use crate::files::{self, Existing, NewFile, WriteError};
use crate::package::Statement;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("{0}")]
    Statement(String),
    #[error("minisign: {0}")]
    Minisign(String),
}

/// The files `keygen` writes.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub public_key: PathBuf,
    pub secret_key: PathBuf,
    /// The public key's base64 line (for `[agent.trust] public_keys`).
    pub public_line: String,
}

/// A new key pair as (public key file text, secret key file text, public base64 line).
pub fn generate() -> Result<(String, String, String), KeyError> {
    let kp = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| KeyError::Minisign(e.to_string()))?;
    let public = kp
        .pk
        .to_box()
        .map_err(|e| KeyError::Minisign(e.to_string()))?
        .into_string();
    let secret = kp
        .sk
        .to_box(None)
        .map_err(|e| KeyError::Minisign(e.to_string()))?
        .into_string();
    Ok((public, secret, kp.pk.to_base64()))
}

/// Writes `ferry-agent.pub` and `ferry-agent.key` (mode 600) into `dir`. Existing files are
/// written over only with `Existing::Replace`; a symbolic link in their place is refused.
pub fn keygen(dir: &Path, existing: Existing) -> Result<KeyFiles, KeyError> {
    std::fs::create_dir_all(dir).map_err(|source| WriteError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let public_key = dir.join("ferry-agent.pub");
    let secret_key = dir.join("ferry-agent.key");
    let (public, secret, line) = generate()?;
    files::write_all(
        &[
            NewFile {
                path: secret_key.clone(),
                data: secret.as_bytes(),
                private: true,
            },
            NewFile {
                path: public_key.clone(),
                data: public.as_bytes(),
                private: false,
            },
        ],
        existing,
    )?;
    Ok(KeyFiles {
        public_key,
        secret_key,
        public_line: line,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The `.minisig` text of `data` signed with the secret key file's text, its trusted comment
/// stating the service and version it is signed for.
pub fn sign_bytes(
    data: &[u8],
    secret_key_text: &str,
    origin: &Path,
    statement: &Statement,
) -> Result<String, KeyError> {
    let bad = |m: String| KeyError::Key {
        path: origin.to_path_buf(),
        message: m,
    };
    let sbox = minisign::SecretKeyBox::from_string(secret_key_text)
        .map_err(|e| bad(format!("not a minisign secret key: {e}")))?;
    let sk = sbox
        .into_unencrypted_secret_key()
        .map_err(|e| bad(format!("not an unencrypted minisign secret key: {e}")))?;
    let comment = statement.comment(now());
    let untrusted = format!("signature from ferry agent sign: {statement}");
    let sig = minisign::sign(
        None,
        &sk,
        std::io::Cursor::new(data),
        Some(&comment),
        Some(&untrusted),
    )
    .map_err(|e| bad(e.to_string()))?;
    Ok(sig.into_string())
}

/// What a package file is signed for: the service and version given, the ones missing taken
/// from its name, `SERVICE-VERSION.tar` (the version starts at the first `-` followed by a
/// digit, or after the given service's name).
pub fn statement_for(
    package: &Path,
    service: Option<&str>,
    version: Option<&str>,
) -> Result<Statement, KeyError> {
    let stem = package
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar"));
    let from_name = || -> Option<(String, String)> {
        let stem = stem?;
        match (service, version) {
            (Some(s), None) => Some((
                s.to_string(),
                stem.strip_prefix(s)?.strip_prefix('-')?.to_string(),
            )),
            (None, Some(v)) => Some((
                stem.strip_suffix(v)?.strip_suffix('-')?.to_string(),
                v.to_string(),
            )),
            _ => {
                let at = stem
                    .char_indices()
                    .find(|&(i, c)| {
                        c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit())
                    })?
                    .0;
                Some((stem[..at].to_string(), stem[at + 1..].to_string()))
            }
        }
    };
    let (s, v) = match (service, version) {
        (Some(s), Some(v)) => (s.to_string(), v.to_string()),
        _ => from_name().filter(|(s, v)| !s.is_empty() && !v.is_empty()).ok_or_else(|| {
            KeyError::Statement(format!(
                "cannot tell the service and version {} is for from its name (SERVICE-VERSION.tar): give --service and --version",
                package.display()
            ))
        })?,
    };
    Statement::new(&s, &v).map_err(|e| KeyError::Statement(format!("{}: {e}", package.display())))
}

/// Signs a package file for `statement`: writes `PACKAGE.minisig` (over an old one, never
/// through a link) and returns its path.
pub fn sign_file(
    package: &Path,
    secret_key: &Path,
    statement: &Statement,
) -> Result<PathBuf, KeyError> {
    let data = std::fs::read(package).map_err(|source| KeyError::Read {
        path: package.to_path_buf(),
        source,
    })?;
    let key = std::fs::read_to_string(secret_key).map_err(|source| KeyError::Read {
        path: secret_key.to_path_buf(),
        source,
    })?;
    let sig = sign_bytes(&data, &key, secret_key, statement)?;
    let mut out = package.as_os_str().to_owned();
    out.push(".minisig");
    let out = PathBuf::from(out);
    files::write_all(
        &[NewFile {
            path: out.clone(),
            data: sig.as_bytes(),
            private: false,
        }],
        Existing::Replace,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(version: &str) -> Statement {
        Statement::new("kv", version).unwrap()
    }

    #[test]
    fn signatures_verify_with_their_key_only_and_state_what_they_sign() {
        let (_, secret, line) = generate().unwrap();
        let (_, _, other) = generate().unwrap();
        let sig = sign_bytes(b"package", &secret, Path::new("k"), &kv("1.0.0")).unwrap();
        let trust = crate::package::Trust::new(std::slice::from_ref(&line));
        assert_eq!(trust.verify(b"package", Some(&sig)), Ok(kv("1.0.0")));
        let err = trust.verify(b"packagf", Some(&sig)).unwrap_err();
        assert!(err.0.contains("does not verify"), "{err}");
        let untrusted = crate::package::Trust::new(&[other]);
        let err = untrusted.verify(b"package", Some(&sig)).unwrap_err();
        assert!(err.0.contains("does not trust"), "{err}");
        assert!(trust
            .verify(b"package", None)
            .unwrap_err()
            .0
            .contains("no signature"));
        // The statement is covered by the signature: edited, it no longer verifies.
        let edited = sig.replace("version=1.0.0", "version=9.9.9");
        assert_ne!(edited, sig);
        let err = trust.verify(b"package", Some(&edited)).unwrap_err();
        assert!(err.0.contains("does not verify"), "{err}");
    }

    /// Signatures whose trusted comment is not a ferry statement (made before ferry signed
    /// one, or by minisign with its default comment) are refused, saying how to sign again.
    #[test]
    fn signatures_without_a_statement_are_refused() {
        let (_, secret, line) = generate().unwrap();
        let sk = minisign::SecretKeyBox::from_string(&secret)
            .unwrap()
            .into_unencrypted_secret_key()
            .unwrap();
        let trust = crate::package::Trust::new(&[line]);
        let check = |comment: Option<&str>, expected: &str| {
            let sig = minisign::sign(None, &sk, std::io::Cursor::new(b"package"), comment, None)
                .unwrap()
                .into_string();
            let err = trust.verify(b"package", Some(&sig)).unwrap_err();
            assert!(err.0.contains(expected), "{comment:?}: {err}");
            assert!(err.0.contains("ferry agent sign"), "{comment:?}: {err}");
        };
        check(None, "does not name the service and version");
        check(
            Some("timestamp:1796515200\tfile:kv-1.0.0.tar\thashed"),
            "does not name the service and version",
        );
        check(Some("ferry-package version=1.0.0"), "names no `service`");
        check(Some("ferry-package service=kv"), "names no `version`");
        check(
            Some("ferry-package service=kv version=1.0.0 version=9.9.9"),
            "names `version` twice",
        );
        check(
            Some("ferry-package service=../kv version=1.0.0"),
            "not a service name",
        );
    }

    #[test]
    fn statements_from_file_names() {
        let check = |file: &str,
                     service: Option<&str>,
                     version: Option<&str>,
                     expected: Result<(&str, &str), &str>| {
            let got = statement_for(Path::new(file), service, version);
            match (got, expected) {
                (Ok(s), Ok((svc, v))) => {
                    assert_eq!((s.service.as_str(), s.version.as_str()), (svc, v), "{file}")
                }
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{file}: {e}"),
                (got, want) => panic!("{file}: got {got:?}, expected {want:?}"),
            }
        };
        check("packages/kv-2.1.0.tar", None, None, Ok(("kv", "2.1.0")));
        check(
            "my-kv-2.0.1-broken.tar",
            None,
            None,
            Ok(("my-kv", "2.0.1-broken")),
        );
        check(
            "ucm-14.0.1.13900-155.tar",
            None,
            None,
            Ok(("ucm", "14.0.1.13900-155")),
        );
        check("kv-2-3.0.0.tar", Some("kv-2"), None, Ok(("kv-2", "3.0.0")));
        check(
            "my-kv-2.1.0.tar",
            None,
            Some("2.1.0"),
            Ok(("my-kv", "2.1.0")),
        );
        check(
            "anything.bin",
            Some("db"),
            Some("1.0.0"),
            Ok(("db", "1.0.0")),
        );
        check("kv.tar", None, None, Err("give --service and --version"));
        check(
            "kv-2.1.0.tar.gz",
            None,
            None,
            Err("give --service and --version"),
        );
        check(
            "kv-2.1.0.tar",
            Some("db"),
            None,
            Err("give --service and --version"),
        );
        check("x.tar", Some("kv"), Some("1 0"), Err("no spaces"));
    }
}
