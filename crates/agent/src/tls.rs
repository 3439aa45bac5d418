//! TLS with rustls and the `ring` provider: the agent's server configuration, and client
//! certificates verified against the configured client CA on every request.
//!
//! A client certificate is optional at the handshake (token-only clients connect too): the
//! handshake checks that the client holds the key of the certificate it presents, and each
//! request then checks that certificate's chain against the client CA
//! (`WebPkiClientVerifier`, built with `allow_unauthenticated`). A certificate from another CA
//! thus gets `401` like a wrong token, rather than a failed handshake.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
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

pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |m: String| TlsError::File {
        path: path.display().to_string(),
        message: m,
    };
    let data = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    certs_from_pem(&data).map_err(bad)
}

pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(certs)
}

pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bad = |m: String| TlsError::File {
        path: path.display().to_string(),
        message: m,
    };
    let data = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    key_from_pem(&data).map_err(bad)
}

pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| format!("not a PEM private key: {e}"))?
        .ok_or_else(|| "no private key in the file".to_string())
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
