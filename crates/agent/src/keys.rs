//! Package signing keys (minisign): a key pair for automation (the secret key unencrypted) and
//! signatures of package files, so that users can sign what their agents stage.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("{0} exists already: remove it first, or choose another directory")]
    Exists(PathBuf),
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

/// Writes `ferry-agent.pub` and `ferry-agent.key` (mode 600) into `dir`; refuses to overwrite.
pub fn keygen(dir: &Path) -> Result<KeyFiles, KeyError> {
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let public_key = dir.join("ferry-agent.pub");
    let secret_key = dir.join("ferry-agent.key");
    for p in [&public_key, &secret_key] {
        if p.exists() {
            return Err(KeyError::Exists(p.clone()));
        }
    }
    let (public, secret, line) = generate()?;
    write_private(&secret_key, secret.as_bytes())?;
    std::fs::write(&public_key, public).map_err(|source| KeyError::Write {
        path: public_key.clone(),
        source,
    })?;
    Ok(KeyFiles {
        public_key,
        secret_key,
        public_line: line,
    })
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| KeyError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    f.write_all(data).map_err(|source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The `.minisig` text of `data` signed with the secret key file's text.
pub fn sign_bytes(data: &[u8], secret_key_text: &str, origin: &Path) -> Result<String, KeyError> {
    let bad = |m: String| KeyError::Key {
        path: origin.to_path_buf(),
        message: m,
    };
    let sbox = minisign::SecretKeyBox::from_string(secret_key_text)
        .map_err(|e| bad(format!("not a minisign secret key: {e}")))?;
    let sk = sbox
        .into_unencrypted_secret_key()
        .map_err(|e| bad(format!("not an unencrypted minisign secret key: {e}")))?;
    let sig = minisign::sign(None, &sk, std::io::Cursor::new(data), None, None)
        .map_err(|e| bad(e.to_string()))?;
    Ok(sig.into_string())
}

/// Signs a package file: writes `PACKAGE.minisig` and returns its path.
pub fn sign_file(package: &Path, secret_key: &Path) -> Result<PathBuf, KeyError> {
    let data = std::fs::read(package).map_err(|source| KeyError::Read {
        path: package.to_path_buf(),
        source,
    })?;
    let key = std::fs::read_to_string(secret_key).map_err(|source| KeyError::Read {
        path: secret_key.to_path_buf(),
        source,
    })?;
    let sig = sign_bytes(&data, &key, secret_key)?;
    let mut out = package.as_os_str().to_owned();
    out.push(".minisig");
    let out = PathBuf::from(out);
    std::fs::write(&out, sig).map_err(|source| KeyError::Write {
        path: out.clone(),
        source,
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_their_key_only() {
        let (_, secret, line) = generate().unwrap();
        let (_, _, other) = generate().unwrap();
        let sig = sign_bytes(b"package", &secret, Path::new("k")).unwrap();
        let trust = crate::package::Trust::new(&[line]);
        assert!(trust.verify(b"package", Some(&sig)).is_ok());
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
    }
}
