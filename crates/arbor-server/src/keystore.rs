//! Key and trust stores as ZooKeeper's `ssl.keyStore.*` / `ssl.trustStore.*` name them: PEM
//! files, and Java KeyStores (JKS) read here (the format is small and fixed: Sun's
//! `JavaKeyStore` and `KeyProtector`). PKCS#12 is refused with an error naming the PEM
//! alternative: no maintained pure-Rust reader covers the algorithms Java writes.
//!
//! JKS layout (big-endian): magic `FEEDFEED`, version 1 or 2, entry count; each entry a tag
//! (1 private key, 2 trusted certificate), alias (Java modified UTF-8), timestamp, then
//! the protected key and its certificate chain, or one certificate; finally a SHA-1 over
//! `UTF-16BE(password) ‖ "Mighty Aphrodite" ‖ everything before`. A private key is an
//! `EncryptedPrivateKeyInfo` whose ciphertext is `salt(20) ‖ key ⊕ stream ‖ check(20)` with
//! `stream = SHA1(pw ‖ salt), SHA1(pw ‖ previous), …` and `check = SHA1(pw ‖ key)`.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};
use serde::Deserialize;
use sha1::{Digest, Sha1};
use thiserror::Error;

/// Entries a JKS file may hold before we refuse it (a keystore has a handful).
const JKS_ENTRIES_MAX: u32 = 1024;
/// Certificates one JKS chain may hold.
const JKS_CHAIN_MAX: u32 = 16;
/// Bytes a key or trust store file may have.
const STORE_BYTES_MAX: u64 = 16 * 1024 * 1024;
const JKS_MAGIC: u32 = 0xFEED_FEED;
const JCEKS_MAGIC: u32 = 0xCECE_CECE;
const JKS_KEY_PROTECTOR_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01];
const SHA1_BYTES: usize = 20;

/// The format of a store file (ZooKeeper's `ssl.keyStore.type`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum StoreType {
    /// PEM: certificates and (for a key store) one private key.
    Pem,
    /// A Java KeyStore.
    Jks,
    /// PKCS#12 (refused with a clear error).
    Pkcs12,
}

impl StoreType {
    /// Parses ZooKeeper's names (case-insensitive): PEM, JKS, PKCS12.
    pub fn parse(name: &str) -> Option<StoreType> {
        match name.to_ascii_uppercase().as_str() {
            "PEM" => Some(StoreType::Pem),
            "JKS" => Some(StoreType::Jks),
            "PKCS12" | "P12" | "PFX" => Some(StoreType::Pkcs12),
            _ => None,
        }
    }

    /// The type ZooKeeper infers from the file name when none is configured.
    fn from_extension(path: &Path) -> StoreType {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("jks") => StoreType::Jks,
            Some("p12" | "pfx") => StoreType::Pkcs12,
            _ => StoreType::Pem,
        }
    }
}

/// Where a key or trust store is and how to open it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreLocation {
    /// The file.
    pub location: PathBuf,
    /// The store password (JKS integrity and key protection); PEM keys are not encrypted.
    #[serde(default)]
    pub password: Option<String>,
    /// The format; inferred from the extension when absent (`.jks`, `.p12`/`.pfx`, else PEM).
    #[serde(default, rename = "type")]
    pub store_type: Option<StoreType>,
}

impl StoreLocation {
    /// A store at `location` with no password and an inferred type.
    pub fn new(location: impl Into<PathBuf>) -> StoreLocation {
        StoreLocation {
            location: location.into(),
            password: None,
            store_type: None,
        }
    }

    fn effective_type(&self) -> StoreType {
        self.store_type
            .unwrap_or_else(|| StoreType::from_extension(&self.location))
    }
}

/// Why a store could not be read.
#[derive(Debug, Error)]
pub enum KeyStoreError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is over [`STORE_BYTES_MAX`].
    #[error("{path} is larger than {STORE_BYTES_MAX} bytes; not a key store")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is malformed.
    #[error("{path} is not a valid {kind} store: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// PEM or JKS.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The password does not open the store.
    #[error("{path}: wrong password (integrity or key check failed)")]
    WrongPassword {
        /// The file.
        path: PathBuf,
    },
    /// The store lacks what is needed.
    #[error("{path}: {what}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What it lacks.
        what: &'static str,
    },
    /// A format arbor does not read.
    #[error(
        "{path}: {kind} key stores are not supported; convert to PEM (e.g. `openssl pkcs12 \
         -in store.p12 -nodes -out store.pem`) and set ssl.keyStore.type=PEM (or \
         ssl.trustStore.type=PEM) with ssl.keyStore.location pointing at the PEM file"
    )]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The format.
        kind: &'static str,
    },
}

/// A server's identity: its certificate chain (leaf first) and private key.
#[derive(Debug)]
pub struct KeyMaterial {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The key of the leaf.
    pub key: PrivateKeyDer<'static>,
}

/// Reads a file, bounded.
pub(crate) fn read_store_file(path: &Path) -> Result<Vec<u8>, KeyStoreError> {
    let metadata = std::fs::metadata(path).map_err(|source| KeyStoreError::Read {
        path: path.to_owned(),
        source,
    })?;
    if metadata.len() > STORE_BYTES_MAX {
        return Err(KeyStoreError::TooLarge {
            path: path.to_owned(),
        });
    }
    std::fs::read(path).map_err(|source| KeyStoreError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Loads a key store from its bytes (read by the caller, so a reload can compare them).
///
/// # Errors
/// [`KeyStoreError`] when the bytes are not a store with a key and a certificate.
pub(crate) fn key_material(
    store: &StoreLocation,
    bytes: &[u8],
) -> Result<KeyMaterial, KeyStoreError> {
    let path = &store.location;
    match store.effective_type() {
        StoreType::Pem => {
            let chain = pem_certificates(path, bytes)?;
            let key = PrivateKeyDer::from_pem_slice(bytes).map_err(|error| match error {
                rustls_pki_types::pem::Error::NoItemsFound => KeyStoreError::Missing {
                    path: path.clone(),
                    what: "no private key in the PEM key store",
                },
                other => malformed(path, "PEM", other.to_string()),
            })?;
            if chain.is_empty() {
                return Err(KeyStoreError::Missing {
                    path: path.clone(),
                    what: "no certificate in the PEM key store",
                });
            }
            Ok(KeyMaterial { chain, key })
        }
        StoreType::Jks => {
            let store_contents = parse_jks(path, bytes, store.password.as_deref())?;
            let (key, chain) =
                store_contents
                    .keys
                    .into_iter()
                    .next()
                    .ok_or(KeyStoreError::Missing {
                        path: path.clone(),
                        what: "no private key entry in the JKS key store",
                    })?;
            if chain.is_empty() {
                return Err(KeyStoreError::Missing {
                    path: path.clone(),
                    what: "the JKS key entry has no certificate chain",
                });
            }
            Ok(KeyMaterial {
                chain,
                key: private_key_from_der(key),
            })
        }
        StoreType::Pkcs12 => Err(KeyStoreError::Unsupported {
            path: path.clone(),
            kind: "PKCS#12",
        }),
    }
}

/// Loads the certificates of a trust store from its bytes.
///
/// # Errors
/// [`KeyStoreError`] when the bytes are not a store with at least one certificate.
pub(crate) fn trusted_certificates(
    store: &StoreLocation,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, KeyStoreError> {
    let path = &store.location;
    let certificates = match store.effective_type() {
        StoreType::Pem => pem_certificates(path, bytes)?,
        StoreType::Jks => {
            let contents = parse_jks(path, bytes, store.password.as_deref())?;
            // A key entry's chain is trusted too, as Java's TrustManagerFactory does.
            let mut certificates = contents.trusted;
            for (_, chain) in contents.keys {
                certificates.extend(chain);
            }
            certificates
        }
        StoreType::Pkcs12 => {
            return Err(KeyStoreError::Unsupported {
                path: path.clone(),
                kind: "PKCS#12",
            });
        }
    };
    if certificates.is_empty() {
        return Err(KeyStoreError::Missing {
            path: path.clone(),
            what: "no certificate in the trust store",
        });
    }
    Ok(certificates)
}

fn malformed(path: &Path, kind: &'static str, reason: impl Into<String>) -> KeyStoreError {
    KeyStoreError::Malformed {
        path: path.to_owned(),
        kind,
        reason: reason.into(),
    }
}

fn pem_certificates(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, KeyStoreError> {
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| malformed(path, "PEM", error.to_string()))
}

/// A DER private key as rustls wants it: PKCS#8 when it looks like one (a version INTEGER
/// followed by an AlgorithmIdentifier SEQUENCE), else PKCS#1 (pyjks' `rsa_raw` stores that).
fn private_key_from_der(der: Vec<u8>) -> PrivateKeyDer<'static> {
    let mut reader = DerReader::new(&der);
    let looks_pkcs8 = reader
        .read(TAG_SEQUENCE)
        .ok()
        .map(DerReader::new)
        .is_some_and(|mut inner| {
            inner.read(TAG_INTEGER).is_ok() && inner.peek_tag() == Some(TAG_SEQUENCE)
        });
    if looks_pkcs8 {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))
    } else {
        PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))
    }
}

/// What a JKS file holds.
#[derive(Debug, Default)]
struct JksContents {
    /// Decrypted private keys (DER) with their chains, in file order.
    keys: Vec<(Vec<u8>, Vec<CertificateDer<'static>>)>,
    /// Trusted certificate entries.
    trusted: Vec<CertificateDer<'static>>,
}

/// Java's password bytes for JKS: each UTF-16 unit big-endian.
fn java_password_bytes(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

fn parse_jks(
    path: &Path,
    bytes: &[u8],
    password: Option<&str>,
) -> Result<JksContents, KeyStoreError> {
    let bad = |reason: &str| malformed(path, "JKS", reason);
    if bytes.len() < 12 + SHA1_BYTES {
        return Err(bad("shorter than a header and a digest"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - SHA1_BYTES);
    let mut input = ByteReader { bytes: body };
    let magic = input.u32().ok_or_else(|| bad("truncated"))?;
    if magic == JCEKS_MAGIC {
        return Err(KeyStoreError::Unsupported {
            path: path.to_owned(),
            kind: "JCEKS",
        });
    }
    if magic != JKS_MAGIC {
        return Err(bad("bad magic number"));
    }
    let version = input.u32().ok_or_else(|| bad("truncated"))?;
    if version != 1 && version != 2 {
        return Err(bad("unknown version"));
    }
    if let Some(password) = password {
        let mut hasher = Sha1::new();
        hasher.update(java_password_bytes(password));
        hasher.update(b"Mighty Aphrodite");
        hasher.update(body);
        if hasher.finalize().as_slice() != digest {
            return Err(KeyStoreError::WrongPassword {
                path: path.to_owned(),
            });
        }
    }
    let count = input.u32().ok_or_else(|| bad("truncated"))?;
    if count > JKS_ENTRIES_MAX {
        return Err(bad("too many entries"));
    }
    let mut contents = JksContents::default();
    for _ in 0..count {
        let tag = input.u32().ok_or_else(|| bad("truncated entry"))?;
        input.utf().ok_or_else(|| bad("truncated alias"))?;
        input.take(8).ok_or_else(|| bad("truncated timestamp"))?;
        match tag {
            1 => {
                let length = input.u32().ok_or_else(|| bad("truncated key"))?;
                let protected = input
                    .take(length as usize)
                    .ok_or_else(|| bad("truncated key"))?;
                let chain_length = input.u32().ok_or_else(|| bad("truncated chain"))?;
                if chain_length > JKS_CHAIN_MAX {
                    return Err(bad("certificate chain too long"));
                }
                let mut chain = Vec::new();
                for _ in 0..chain_length {
                    chain.push(
                        jks_certificate(&mut input, version)
                            .ok_or_else(|| bad("truncated certificate"))?,
                    );
                }
                let Some(password) = password else {
                    return Err(KeyStoreError::Missing {
                        path: path.to_owned(),
                        what: "a JKS private key needs ssl.keyStore.password",
                    });
                };
                let key = recover_jks_key(path, protected, password)?;
                contents.keys.push((key, chain));
            }
            2 => {
                let certificate = jks_certificate(&mut input, version)
                    .ok_or_else(|| bad("truncated certificate"))?;
                contents.trusted.push(certificate);
            }
            _ => return Err(bad("unknown entry tag")),
        }
    }
    Ok(contents)
}

fn jks_certificate(input: &mut ByteReader<'_>, version: u32) -> Option<CertificateDer<'static>> {
    if version == 2 {
        input.utf()?; // certificate type, "X.509"
    }
    let length = input.u32()?;
    let der = input.take(length as usize)?;
    Some(CertificateDer::from(der.to_vec()))
}

/// `sun.security.provider.KeyProtector.recover`.
fn recover_jks_key(
    path: &Path,
    protected: &[u8],
    password: &str,
) -> Result<Vec<u8>, KeyStoreError> {
    let bad = |reason: &str| malformed(path, "JKS", reason);
    // EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }
    let mut outer = DerReader::new(protected);
    let mut info = DerReader::new(
        outer
            .read(TAG_SEQUENCE)
            .map_err(|_| bad("key is not DER"))?,
    );
    let mut algorithm = DerReader::new(
        info.read(TAG_SEQUENCE)
            .map_err(|_| bad("key has no algorithm"))?,
    );
    let oid = algorithm
        .read(TAG_OID)
        .map_err(|_| bad("key has no algorithm"))?;
    if oid != JKS_KEY_PROTECTOR_OID {
        return Err(bad("key is not protected with JKS's key protector"));
    }
    let encrypted = info
        .read(TAG_OCTET_STRING)
        .map_err(|_| bad("key has no ciphertext"))?;
    if encrypted.len() < 2 * SHA1_BYTES {
        return Err(bad("key ciphertext too short"));
    }
    let password = java_password_bytes(password);
    let (salt, rest) = encrypted.split_at(SHA1_BYTES);
    let (ciphertext, check) = rest.split_at(rest.len() - SHA1_BYTES);
    let mut key = Vec::with_capacity(ciphertext.len());
    let mut digest = salt.to_vec();
    for chunk in ciphertext.chunks(SHA1_BYTES) {
        let mut hasher = Sha1::new();
        hasher.update(&password);
        hasher.update(&digest);
        digest = hasher.finalize().to_vec();
        key.extend(chunk.iter().zip(&digest).map(|(c, k)| c ^ k));
    }
    let mut hasher = Sha1::new();
    hasher.update(&password);
    hasher.update(&key);
    if hasher.finalize().as_slice() != check {
        return Err(KeyStoreError::WrongPassword {
            path: path.to_owned(),
        });
    }
    Ok(key)
}

/// Big-endian reads over a byte slice; `None` when it runs out.
struct ByteReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < count {
            return None;
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(taken)
    }

    fn u32(&mut self) -> Option<u32> {
        let bytes = self.take(4)?;
        Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Java's `DataInput.readUTF`: a u16 length, then the bytes (we only skip them).
    fn utf(&mut self) -> Option<&'a [u8]> {
        let length = self.take(2)?;
        self.take(usize::from(u16::from_be_bytes([length[0], length[1]])))
    }
}

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// Just enough DER to walk a key's outer structure: definite lengths, one-byte tags.
pub(crate) struct DerReader<'a> {
    bytes: &'a [u8],
}

/// The DER was not what was expected.
#[derive(Debug)]
pub(crate) struct DerError;

impl<'a> DerReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> DerReader<'a> {
        DerReader { bytes }
    }

    fn peek_tag(&self) -> Option<u8> {
        self.bytes.first().copied()
    }

    /// The contents of the next element, which must have `tag`.
    pub(crate) fn read(&mut self, tag: u8) -> Result<&'a [u8], DerError> {
        let (&found, rest) = self.bytes.split_first().ok_or(DerError)?;
        if found != tag {
            return Err(DerError);
        }
        let (&first, mut rest) = rest.split_first().ok_or(DerError)?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return Err(DerError);
            }
            let mut length = 0usize;
            for &byte in &rest[..count] {
                length = (length << 8) | usize::from(byte);
            }
            rest = &rest[count..];
            length
        };
        if rest.len() < length {
            return Err(DerError);
        }
        let (contents, after) = rest.split_at(length);
        self.bytes = after;
        Ok(contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a JKS file the way Java (and pyjks) write one, for round-trip tests.
    pub(crate) fn write_jks(
        password: &str,
        key: Option<(&[u8], &[Vec<u8>])>,
        trusted: &[Vec<u8>],
    ) -> Vec<u8> {
        fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            let length = contents.len();
            if length < 0x80 {
                out.push(length as u8);
            } else {
                let bytes = (length as u32).to_be_bytes();
                let skip = bytes.iter().take_while(|b| **b == 0).count();
                out.push(0x80 | (4 - skip) as u8);
                out.extend(&bytes[skip..]);
            }
            out.extend(contents);
            out
        }
        let pw = java_password_bytes(password);
        let mut out = Vec::new();
        out.extend(JKS_MAGIC.to_be_bytes());
        out.extend(2u32.to_be_bytes());
        let count = key.is_some() as u32 + trusted.len() as u32;
        out.extend(count.to_be_bytes());
        let alias = |out: &mut Vec<u8>, name: &str| {
            out.extend((name.len() as u16).to_be_bytes());
            out.extend(name.as_bytes());
            out.extend(0u64.to_be_bytes());
        };
        let certificate = |out: &mut Vec<u8>, der: &[u8]| {
            out.extend(5u16.to_be_bytes());
            out.extend(b"X.509");
            out.extend((der.len() as u32).to_be_bytes());
            out.extend(der);
        };
        if let Some((plain, chain)) = key {
            out.extend(1u32.to_be_bytes());
            alias(&mut out, "server");
            let salt = [7u8; SHA1_BYTES];
            let mut encrypted = salt.to_vec();
            let mut digest = salt.to_vec();
            for chunk in plain.chunks(SHA1_BYTES) {
                let mut hasher = Sha1::new();
                hasher.update(&pw);
                hasher.update(&digest);
                digest = hasher.finalize().to_vec();
                encrypted.extend(chunk.iter().zip(&digest).map(|(c, k)| c ^ k));
            }
            let mut hasher = Sha1::new();
            hasher.update(&pw);
            hasher.update(plain);
            encrypted.extend(hasher.finalize());
            let mut algorithm = der(TAG_OID, JKS_KEY_PROTECTOR_OID);
            algorithm.extend([0x05, 0x00]);
            let mut info = der(TAG_SEQUENCE, &algorithm);
            info.extend(der(TAG_OCTET_STRING, &encrypted));
            let protected = der(TAG_SEQUENCE, &info);
            out.extend((protected.len() as u32).to_be_bytes());
            out.extend(&protected);
            out.extend((chain.len() as u32).to_be_bytes());
            for cert in chain {
                certificate(&mut out, cert);
            }
        }
        for cert in trusted {
            out.extend(2u32.to_be_bytes());
            alias(&mut out, "ca");
            certificate(&mut out, cert);
        }
        let mut hasher = Sha1::new();
        hasher.update(&pw);
        hasher.update(b"Mighty Aphrodite");
        hasher.update(&out);
        let digest = hasher.finalize();
        out.extend(digest);
        out
    }

    #[test]
    fn jks_round_trips_keys_and_trusted_certificates() {
        // A PKCS#8-shaped blob: SEQUENCE { INTEGER 0, SEQUENCE {} , OCTET STRING }.
        let key = [0x30, 0x08, 0x02, 0x01, 0x00, 0x30, 0x00, 0x04, 0x01, 0x2a];
        let chain = vec![vec![1u8, 2, 3], vec![4u8, 5]];
        let trusted = vec![vec![9u8; 300]];
        let bytes = write_jks("apassword", Some((&key, &chain)), &trusted);
        let path = Path::new("k.jks");
        let contents = parse_jks(path, &bytes, Some("apassword")).unwrap();
        assert_eq!(contents.keys.len(), 1);
        assert_eq!(contents.keys[0].0, key);
        assert_eq!(contents.keys[0].1.len(), 2);
        assert_eq!(contents.trusted[0].as_ref(), &trusted[0][..]);
        assert!(matches!(
            private_key_from_der(key.to_vec()),
            PrivateKeyDer::Pkcs8(_)
        ));
        assert!(matches!(
            parse_jks(path, &bytes, Some("wrong")),
            Err(KeyStoreError::WrongPassword { .. })
        ));
        // Every truncation is an error, never a panic.
        for cut in 0..bytes.len() {
            let _ = parse_jks(path, &bytes[..cut], Some("apassword"));
            let _ = parse_jks(path, &bytes[..cut], None);
        }
    }

    #[test]
    fn pkcs12_is_refused_naming_pem() {
        let store = StoreLocation::new("/x/keystore.p12");
        let error = key_material(&store, b"").unwrap_err().to_string();
        assert!(error.contains("PEM"), "{error}");
        assert!(error.contains("not supported"), "{error}");
    }

    #[test]
    fn store_types_parse_and_infer() {
        assert_eq!(StoreType::parse("jks"), Some(StoreType::Jks));
        assert_eq!(StoreType::parse("PKCS12"), Some(StoreType::Pkcs12));
        assert_eq!(StoreType::parse("bcfks"), None);
        assert_eq!(StoreLocation::new("a.JKS").effective_type(), StoreType::Jks);
        assert_eq!(StoreLocation::new("a.pem").effective_type(), StoreType::Pem);
    }
}
