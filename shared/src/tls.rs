//! The TLS stack of every client Herald builds for the open internet (platforms, tenant URLs):
//! rustls with ring, the only one compiled in. AWS's clients trust their own roots (`aws.rs`).

/// Installs ring as rustls's process-wide provider (the only TLS stack compiled in); every
/// reqwest client needs it. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// rustls with ring, trusting the Mozilla root program's CAs (`webpki-roots`).
pub(crate) fn config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
