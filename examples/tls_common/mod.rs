//! Certificates for the TLS examples, made at run time with rcgen: a throw-away CA and a
//! server certificate for `localhost` and `127.0.0.1`, written to a fresh temporary
//! directory (so a client, `openssl s_client -CAfile` or Python can trust the CA). Nothing
//! is ever committed.

#![allow(dead_code)]

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use twistor::tls::ServerOptions;

/// The server's options and where the CA certificate was written.
pub struct ExampleCerts {
    pub server: ServerOptions,
    pub ca_path: PathBuf,
}

/// Makes the CA and the server certificate; the CA goes to `DIR/ca.pem` in a new temporary
/// directory.
pub fn make_certs(tag: &str) -> Result<ExampleCerts, String> {
    let err = |e: rcgen::Error| format!("cannot make the certificates: {e}");
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "twistor example CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(err)?;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).map_err(err)?;
    let dir = std::env::temp_dir().join(format!("twistor-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).map_err(|e| format!("{}: {e}", ca_path.display()))?;
    let server = ServerOptions::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(ExampleCerts { server, ca_path })
}

/// The port argument at `index` (default `default`), or exits 2 with a usage line.
pub fn port_arg(index: usize, default: u16, usage: &str) -> u16 {
    match std::env::args().nth(index).map(|p| p.parse::<u16>()) {
        None => default,
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("usage: {usage}: {e}");
            std::process::exit(2);
        }
    }
}
