//! TLS for the public listener: PEM files into a rustls server configuration that offers
//! HTTP/2 and HTTP/1.1 by ALPN. Loaded with the rest of the settings, so a reload picks up a
//! renewed certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Which of the two files a TLS error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// `server.tls.cert`
    Cert,
    /// `server.tls.key`
    Key,
}

/// Reads the chain and key and builds the acceptor configuration.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, (TlsFile, String)> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            (
                TlsFile::Cert,
                format!("cannot read certificate chain {}: {e}", cert.display()),
            )
        })?;
    if chain.is_empty() {
        return Err((
            TlsFile::Cert,
            format!("{} holds no PEM certificate", cert.display()),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        (
            TlsFile::Key,
            format!("cannot read private key {}: {e}", key.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| (TlsFile::Cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| {
            (
                TlsFile::Key,
                format!("certificate and key do not form a usable pair: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
