//! TLS to the database, as libpq's `sslmode` asks for it (PostgreSQL
//! manual, "SSL Support", table "SSL Mode Descriptions"): `disable` never
//! encrypts; `prefer` (the default) and `require` encrypt without checking
//! who answers (`require` refuses a server without TLS); `verify-ca` also
//! checks the server's certificate against the root certificates in
//! `sslrootcert` (default `~/.postgresql/root.crt`, as libpq); `verify-full`
//! also checks that the certificate names the host connected to.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`: the URL is
//! handed to it with `verify-*` read as `require` and `sslrootcert` taken
//! out, and the checks are made here, by rustls (its `ring` provider).

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing (`disable`, `prefer`, `require`).
    Nothing,
    /// The chain up to a root of `sslrootcert` (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    ChainAndName,
}

/// Why TLS to the database cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sslmode {0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    Mode(String),
    #[error("cannot read the root certificates {}: {source}", path.display())]
    RootCert {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("no usable root certificate in {}", .0.display())]
    NoRoots(PathBuf),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// The URL as tokio-postgres takes it, with what [`connector`] needs:
/// `sslmode=verify-*` read as `require`, `sslrootcert` taken out (URL
/// `?key=value&...` or `key=value ...` form).
pub fn take_tls(url: &str) -> Result<(String, Verify, Option<PathBuf>), TlsError> {
    let (mut verify, mut root) = (Verify::Nothing, None);
    let mut take = |key: &str, value: &str| -> Result<Option<String>, TlsError> {
        match key {
            "sslmode" => {
                verify = match value {
                    "disable" | "prefer" | "require" => return Ok(Some(value.into())),
                    "verify-ca" => Verify::Chain,
                    "verify-full" => Verify::ChainAndName,
                    other => return Err(TlsError::Mode(other.into())),
                };
                Ok(Some("require".into()))
            }
            "sslrootcert" => {
                root = Some(PathBuf::from(value));
                Ok(None)
            }
            _ => Ok(Some(value.into())),
        }
    };
    let rewritten = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if let Some(value) = take(key, &percent_decoded(value))? {
                        kept.push(if key.starts_with("ssl") {
                            format!("{key}={value}")
                        } else {
                            pair.to_string()
                        });
                    }
                }
                format!("{base}?{}", kept.join("&"))
            }
            None => url.to_string(),
        }
    } else {
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if let Some(value) = take(key, value)? {
                kept.push(format!("{key}={value}"));
            }
        }
        kept.join(" ")
    };
    Ok((rewritten, verify, root))
}

/// `%XX` escapes of a URL component decoded (a path such as `%2Fetc`).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls connector for `verify`, its roots read from `root` (or
/// `~/.postgresql/root.crt`) when it checks certificates.
pub fn connector(verify: Verify, root: Option<PathBuf>) -> Result<MakeRustlsConnect, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(Lenient {
            chain: None,
            algorithms,
        }),
        Verify::Chain | Verify::ChainAndName => {
            let path = root.unwrap_or_else(default_root);
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(&path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|source| TlsError::RootCert {
                    path: path.clone(),
                    source,
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::NoRoots(path));
            }
            let chain =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            if verify == Verify::Chain {
                Arc::new(Lenient {
                    chain: Some(chain),
                    algorithms,
                })
            } else {
                chain
            }
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// libpq's default `sslrootcert`.
fn default_root() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".postgresql/root.crt")
}

/// The checks libpq makes and rustls's own verifier does not: for
/// `require` none (`chain` is `None`), for `verify-ca` the chain but not
/// the name. The handshake's signatures are checked either way, so the
/// session is encrypted with the key of the certificate shown.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_are_taken_out_of_both_url_forms() {
        let (url, verify, root) = take_tls(
            "postgresql://u@db.example/q?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgresql://u@db.example/q?sslmode=require&application_name=x"
        );
        assert_eq!(verify, Verify::ChainAndName);
        assert_eq!(root, Some(PathBuf::from("/etc/ca.pem")));
        let (url, verify, root) =
            take_tls("host=db user=u sslmode=verify-ca sslrootcert=/ca.pem").unwrap();
        assert_eq!(url, "host=db user=u sslmode=require");
        assert_eq!((verify, root), (Verify::Chain, Some("/ca.pem".into())));
        let (url, verify, _) = take_tls("postgresql://u@/q?host=/run/pg").unwrap();
        assert_eq!(
            (url.as_str(), verify),
            ("postgresql://u@/q?host=/run/pg", Verify::Nothing)
        );
        assert!(matches!(
            take_tls("host=x sslmode=allow"),
            Err(TlsError::Mode(_))
        ));
    }

    #[test]
    fn a_missing_root_certificate_file_is_an_error_naming_it() {
        let Err(err) = connector(Verify::ChainAndName, Some("/nonexistent/ca.pem".into())) else {
            panic!("a missing root certificate file is an error");
        };
        let err = err.to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(connector(Verify::Nothing, None).is_ok());
    }
}
