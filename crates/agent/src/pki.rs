//! Certificates for a lab or a test bench (rcgen, `ring`): a CA, agents' server certificates
//! for their host names and addresses, and client certificates. Production agents use
//! certificates from the site's own CA; these are for trying ferry and for its tests.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

use crate::files::{self, Existing, NewFile, WriteError};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// A certificate (PEM) and its key (PEM).
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority that exists in memory (its key is never written by `lab`).
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Result<Ca, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Ca { issuer })
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for these host names and addresses (`127.0.0.1`, `localhost`).
    pub fn server(&self, name: &str, hosts: &[String]) -> Result<Issued, PkiError> {
        self.issue(name, hosts, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (mutual TLS).
    pub fn client(&self, name: &str) -> Result<Issued, PkiError> {
        self.issue(name, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(
        &self,
        name: &str,
        hosts: &[String],
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes `ca.pem`, `NAME.pem` and `NAME-key.pem` for every agent name (valid for `hosts`),
/// and `client.pem`, `client-key.pem` into `dir`; the keys mode 0600. Nothing is written when
/// one of them exists (unless `existing` is `Replace`) or is a symbolic link. Returns the
/// files written.
pub fn lab(
    dir: &Path,
    names: &[String],
    hosts: &[String],
    existing: Existing,
) -> Result<Vec<PathBuf>, PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| WriteError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca = Ca::new("ferry lab CA")?;
    let mut texts: Vec<(String, String, bool)> = vec![("ca.pem".into(), ca.cert_pem(), false)];
    for n in names {
        let mut h = hosts.to_vec();
        if !h.contains(n) {
            h.push(n.clone());
        }
        let s = ca.server(n, &h)?;
        texts.push((format!("{n}.pem"), s.cert_pem, false));
        texts.push((format!("{n}-key.pem"), s.key_pem, true));
    }
    let c = ca.client("ferry")?;
    texts.push(("client.pem".into(), c.cert_pem, false));
    texts.push(("client-key.pem".into(), c.key_pem, true));
    let new: Vec<NewFile> = texts
        .iter()
        .map(|(f, text, private)| NewFile {
            path: dir.join(f),
            data: text.as_bytes(),
            private: *private,
        })
        .collect();
    files::write_all(&new, existing)?;
    Ok(new.into_iter().map(|f| f.path).collect())
}
