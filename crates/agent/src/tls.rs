//! TLS with rustls and the `ring` provider: the agent's server configuration, and client
//! certificates verified against the configured client CA on every request.
//!
//! A client certificate is optional at the handshake (token-only clients connect too): the
//! handshake checks that the client holds the key of the certificate it presents, and each
//! request then checks that certificate's chain against the client CA
//! (`WebPkiClientVerifier`, built with `allow_unauthenticated`). A certificate from another CA
//! thus gets `401` like a wrong token, rather than a failed handshake.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Config(String),
}

/// The `ring` crypto provider (the only one ferry builds with).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(path: &Path, e: pem::Error) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: match e {
            pem::Error::Io(e) => e.to_string(),
            e => format!("not PEM: {e}"),
        },
    }
}

/// The certificates of a PEM file (`CertificateDer::pem_file_iter`).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::File {
            path: path.display().to_string(),
            message: NO_CERTIFICATE.into(),
        });
    }
    Ok(certs)
}

const NO_CERTIFICATE: &str = "no certificate in the file";
const NO_KEY: &str = "no private key in the file";

/// The certificates of PEM text (`CertificateDer::pem_slice_iter`).
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(NO_CERTIFICATE.into());
    }
    Ok(certs)
}

/// The first private key of a PEM file (`PrivateKeyDer::from_pem_file`: PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::File {
            path: path.display().to_string(),
            message: NO_KEY.into(),
        },
        e => file_error(path, e),
    })
}

/// The first private key of PEM text.
pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => NO_KEY.to_string(),
        e => format!("not a PEM private key: {e}"),
    })
}

pub fn root_store(certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    Ok(roots)
}

/// Checks client certificates against the client CA.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientAuth {
    /// Whether a presented chain is signed by the client CA and valid now.
    pub fn verify(&self, chain: &[CertificateDer<'static>]) -> bool {
        match chain.split_first() {
            Some((end, rest)) => self
                .inner
                .verify_client_cert(end, rest, UnixTime::now())
                .is_ok(),
            None => false,
        }
    }
}

/// Asks for a client certificate without requiring one, and checks at the handshake only that
/// the client holds its key; the chain is checked per request (`ClientAuth::verify`).
#[derive(Debug)]
struct OptionalClientCert {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The server's TLS configuration and, with a client CA, the per-request certificate check.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<(Arc<ServerConfig>, Option<ClientAuth>), TlsError> {
    let certs = read_certs(cert)?;
    let key = read_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let (config, auth) = match client_ca {
        Some(ca) => {
            let roots = root_store(read_certs(ca)?).map_err(|m| TlsError::File {
                path: ca.display().to_string(),
                message: m,
            })?;
            let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(format!("client CA: {e}")))?;
            let cfg = builder
                .with_client_cert_verifier(Arc::new(OptionalClientCert {
                    inner: inner.clone(),
                }))
                .with_single_cert(certs, key)
                .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
            (cfg, Some(ClientAuth { inner }))
        }
        None => (
            builder
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?,
            None,
        ),
    };
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), auth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Ca;

    /// PEM through `rustls-pki-types`: a chain and a PKCS#8 key read, other text refused with
    /// a message that says what is missing.
    #[test]
    fn pem_texts() {
        let ca = Ca::new("ferry test CA").expect("ca");
        let server = ca.server("kv-a", &["127.0.0.1".into()]).expect("server");
        let chain = format!("{}{}", server.cert_pem, ca.cert_pem());
        assert_eq!(certs_from_pem(chain.as_bytes()).map(|c| c.len()), Ok(2));
        assert!(key_from_pem(server.key_pem.as_bytes()).is_ok());
        assert_eq!(
            certs_from_pem(server.key_pem.as_bytes()).err().as_deref(),
            Some(NO_CERTIFICATE)
        );
        assert_eq!(
            key_from_pem(server.cert_pem.as_bytes()).err().as_deref(),
            Some(NO_KEY)
        );
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        let e = certs_from_pem(broken.as_bytes()).expect_err("no end marker");
        assert!(e.starts_with("not PEM certificates"), "{e}");
    }

    #[test]
    fn pem_files() {
        let dir = std::env::temp_dir().join(format!("ferry-tls-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = Ca::new("ferry test CA").expect("ca");
        let client = ca.client("ops").expect("client");
        let (cert, key, missing) = (dir.join("c.pem"), dir.join("k.pem"), dir.join("none.pem"));
        std::fs::write(&cert, &client.cert_pem).expect("write");
        std::fs::write(&key, &client.key_pem).expect("write");
        assert_eq!(read_certs(&cert).map(|c| c.len()).ok(), Some(1));
        assert!(read_key(&key).is_ok());
        let e = read_key(&cert)
            .expect_err("a certificate is no key")
            .to_string();
        assert!(e.ends_with(NO_KEY), "{e}");
        let e = read_certs(&key)
            .expect_err("a key is no certificate")
            .to_string();
        assert!(e.ends_with(NO_CERTIFICATE), "{e}");
        let e = read_certs(&missing).expect_err("no file").to_string();
        assert!(
            e.starts_with(&format!("cannot read {}", missing.display())),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
