//! Client certificates: verifying the chain a client presents against the trust store, and the
//! `x509:<subject>` identity it then carries (ZooKeeper's `X509AuthenticationProvider`: the
//! leaf's subject as Java's `X500Principal.getName()` prints it, RFC 2253).
//!
//! The verifier is our own rather than webpki's because Java accepts X.509 v1 certificates
//! (no extensions), which is what kazoo's test harness and many hand-made PKIs issue, and
//! webpki refuses them. The rules: every certificate in the path is within its validity
//! period; each is signed by the next; the path ends at a certificate of the trust store (by
//! subject and signature); intermediates must be CAs (basicConstraints cA, or v1 as Java
//! treats them); a leaf with an extended key usage must allow client authentication.

use std::sync::Arc;

use arbor_proto::Id;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate, X509Version};

/// Certificates a client may present above its leaf.
const INTERMEDIATES_MAX: usize = 8;

/// ZooKeeper's identity scheme for certificate subjects.
pub(crate) const X509_SCHEME: &str = "x509";

/// Verifies client certificates against a trust store; see the module documentation.
#[derive(Debug)]
pub(crate) struct ClientVerifier {
    roots: Vec<CertificateDer<'static>>,
    hints: Vec<DistinguishedName>,
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    /// A verifier trusting `roots` (certificates whose DER must parse). `mandatory`: a client
    /// without a certificate is refused (ZooKeeper's `ssl.clientAuth=need`), else admitted
    /// without an x509 identity (`want`).
    pub(crate) fn new(
        roots: Vec<CertificateDer<'static>>,
        mandatory: bool,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Result<ClientVerifier, String> {
        let mut hints = Vec::new();
        for root in &roots {
            let (_, parsed) = X509Certificate::from_der(root)
                .map_err(|error| format!("a trusted certificate does not parse: {error}"))?;
            hints.push(DistinguishedName::from(parsed.subject().as_raw().to_vec()));
        }
        Ok(ClientVerifier {
            roots,
            hints,
            mandatory,
            algorithms,
        })
    }
}

/// What a verified certificate is for (its extended key usage must allow it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// A client's (or a dialing peer's) certificate.
    ClientAuth,
    /// A server's (or an accepting peer's) certificate.
    ServerAuth,
}

/// Checks a presented chain against `roots`; see the module documentation for the rules.
fn verify_chain(
    roots: &[CertificateDer<'static>],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: ASN1Time,
    purpose: Purpose,
) -> Result<(), String> {
    if intermediates.len() > INTERMEDIATES_MAX {
        return Err("too many intermediate certificates".into());
    }
    let leaf = parse(end_entity)?;
    if let Ok(Some(usage)) = leaf.extended_key_usage() {
        let allowed = usage.value.any
            || match purpose {
                Purpose::ClientAuth => usage.value.client_auth,
                Purpose::ServerAuth => usage.value.server_auth,
            };
        if !allowed {
            return Err(format!(
                "the certificate's extended key usage excludes {purpose:?}"
            ));
        }
    }
    let intermediates: Vec<X509Certificate<'_>> = intermediates
        .iter()
        .map(|der| parse(der))
        .collect::<Result<_, _>>()?;
    let roots: Vec<X509Certificate<'_>> = roots
        .iter()
        .map(|der| parse(der))
        .collect::<Result<_, _>>()?;
    let mut current = &leaf;
    for _ in 0..=intermediates.len() {
        if !current.validity().is_valid_at(now) {
            return Err(format!(
                "certificate {} is outside its validity period",
                current.subject()
            ));
        }
        let signed_by = |issuer: &X509Certificate<'_>| {
            issuer.subject().as_raw() == current.issuer().as_raw()
                && current.verify_signature(Some(issuer.public_key())).is_ok()
        };
        if roots.iter().any(signed_by) {
            return Ok(());
        }
        let next = intermediates.iter().find(|candidate| {
            let is_ca = candidate.version() == X509Version::V1 || candidate.is_ca();
            is_ca && signed_by(candidate)
        });
        match next {
            Some(next) => current = next,
            None => break,
        }
    }
    Err("the certificate does not chain to the trust store".into())
}

/// rustls' time as x509-parser's.
fn asn1_now(now: UnixTime) -> Result<ASN1Time, rustls::Error> {
    let seconds = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    ASN1Time::from_timestamp(seconds)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))
}

/// A refused chain as rustls' error, logged.
fn refused(reason: String, purpose: Purpose) -> rustls::Error {
    tracing::warn!(%reason, ?purpose, "certificate refused");
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(VerifyError(reason)),
    )))
}

impl ClientCertVerifier for ClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let now = asn1_now(now)?;
        verify_chain(
            &self.roots,
            end_entity,
            intermediates,
            now,
            Purpose::ClientAuth,
        )
        .map(|()| ClientCertVerified::assertion())
        .map_err(|reason| refused(reason, Purpose::ClientAuth))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(&self.algorithms, message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(&self.algorithms, message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why a chain was refused (carried inside rustls' error).
#[derive(Debug)]
struct VerifyError(String);

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VerifyError {}

/// Verifies the certificate of a peer this server dials (TLS between servers) against the
/// quorum trust store, with the same rules as client certificates (v1 certificates too).
/// The peer's name is not checked against the certificate: membership is by the trust store,
/// as with ZooKeeper's `ssl.quorum.hostnameVerification=false`.
#[derive(Debug)]
pub(crate) struct ServerVerifier {
    roots: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerVerifier {
    /// A verifier trusting `roots`.
    pub(crate) fn new(
        roots: Vec<CertificateDer<'static>>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> ServerVerifier {
        ServerVerifier { roots, algorithms }
    }
}

impl rustls::client::danger::ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let now = asn1_now(now)?;
        verify_chain(
            &self.roots,
            end_entity,
            intermediates,
            now,
            Purpose::ServerAuth,
        )
        .map(|()| rustls::client::danger::ServerCertVerified::assertion())
        .map_err(|reason| refused(reason, Purpose::ServerAuth))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(&self.algorithms, message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(&self.algorithms, message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Checks the client's handshake signature with the public key of its certificate, parsed
/// by x509-parser (webpki would refuse a v1 certificate here too). TLS 1.3 uses the first
/// algorithm of the scheme, TLS 1.2 tries each, as rustls does.
fn verify_handshake_signature(
    algorithms: &WebPkiSupportedAlgorithms,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let bad_signature =
        || rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
    if tls13 && !supported_in_tls13(dss.scheme) {
        return Err(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ));
    }
    let (_, parsed) = X509Certificate::from_der(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let spki = parsed.public_key();
    let key_bits: &[u8] = &spki.subject_public_key.data;
    let candidates = algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, candidates)| *candidates)
        .ok_or_else(bad_signature)?;
    let candidates = if tls13 {
        &candidates[..candidates.len().min(1)]
    } else {
        candidates
    };
    for algorithm in candidates {
        if algorithm
            .verify_signature(key_bits, message, dss.signature())
            .is_ok()
        {
            return Ok(HandshakeSignatureValid::assertion());
        }
    }
    Err(bad_signature())
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|error| format!("certificate does not parse: {error}"))
}

/// The schemes TLS 1.3 allows for handshake signatures (RFC 8446 §4.2.3; no PKCS#1 v1.5).
fn supported_in_tls13(scheme: SignatureScheme) -> bool {
    matches!(
        scheme,
        SignatureScheme::ECDSA_NISTP256_SHA256
            | SignatureScheme::ECDSA_NISTP384_SHA384
            | SignatureScheme::ECDSA_NISTP521_SHA512
            | SignatureScheme::RSA_PSS_SHA256
            | SignatureScheme::RSA_PSS_SHA384
            | SignatureScheme::RSA_PSS_SHA512
            | SignatureScheme::ED25519
            | SignatureScheme::ED448
    )
}

/// The `x509:<subject>` identity of a verified client certificate, the subject printed as
/// RFC 2253 (`CN=client,O=Example,C=US`: last RDN first, no spaces, as Java does).
pub(crate) fn identity_of(certificate: &CertificateDer<'_>) -> Option<Id> {
    let (_, parsed) = X509Certificate::from_der(certificate).ok()?;
    Some(Id::new(X509_SCHEME, rfc2253(parsed.subject())))
}

fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type().to_id_string();
                    match (short_name(&oid), attribute.as_str()) {
                        (Some(short), Ok(value)) => format!("{short}={}", escape(value)),
                        (None, Ok(value)) => format!("{oid}={}", escape(value)),
                        // Values that are not strings print as #hex of their DER (RFC 2253 §2.4).
                        (short, Err(_)) => {
                            let hex: String = attribute
                                .attr_value()
                                .as_bytes()
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect();
                            format!("{}=#{hex}", short.unwrap_or(&oid))
                        }
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The keywords Java's RFC 2253 output uses.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 2253 §2.4 escaping.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (index, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (index == 0 && (c == '#' || c == ' '))
            || (index == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_rfc_2253() {
        assert_eq!(escape("a,b"), "a\\,b");
        assert_eq!(escape("#x "), "\\#x\\ ");
        assert_eq!(escape("plain"), "plain");
    }
}
