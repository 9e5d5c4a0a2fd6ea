//! Configuration of the state machine. Every replica must run with the same values: they
//! change what apply computes.

/// How the tree validates and authorizes. `Default` is a ZooKeeper 3.9 server with
/// `zookeeper.extendedTypesEnabled=true` and no super digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeConfig {
    /// `"super:<base64 sha1>"`, as ZooKeeper's
    /// `zookeeper.DigestAuthenticationProvider.superDigest`: a digest `addauth` that hashes to
    /// it also gains the `super` identity, which passes every ACL check.
    pub super_digest: Option<String>,
    /// ZooKeeper's `zookeeper.extendedTypesEnabled`: TTL nodes exist only when it is on
    /// (otherwise createTTL answers Unimplemented, `PrepRequestProcessor.validateCreateRequest`).
    /// ZooKeeper's default is off; arbor's is on. Session ids with a top byte of `0xff` are
    /// then refused, since they would read as TTL markers (`EphemeralType.java`).
    pub extended_types_enabled: bool,
    /// ZooKeeper's `reconfigEnabled`: whether `reconfig` may change the membership
    /// (otherwise it answers ReconfigDisabled). Off by default, as in ZooKeeper.
    pub reconfig_enabled: bool,
    /// ACL schemes accepted besides `world`, `auth`, `digest` and `ip`, e.g. `x509` or `sasl`
    /// when the server authenticates connections that way (ZooKeeper's
    /// `zookeeper.authProvider.*`). Ids under them match by equality and count as
    /// authenticated for the `auth` scheme.
    pub additional_auth_schemes: Vec<String>,
    /// ZooKeeper's `zookeeper.enforceQuota`: whether a create or setData that would take a
    /// quota'd subtree past its hard limit (`countHardLimit`, `byteHardLimit` in
    /// `/zookeeper/quota/<path>/zookeeper_limits`) fails with QuotaExceeded. Off by default,
    /// as in ZooKeeper. Soft limits never fail a write.
    pub quota_enforced: bool,
}

impl Default for TreeConfig {
    fn default() -> TreeConfig {
        TreeConfig {
            super_digest: None,
            extended_types_enabled: true,
            reconfig_enabled: false,
            additional_auth_schemes: Vec::new(),
            quota_enforced: false,
        }
    }
}

impl TreeConfig {
    /// Whether `scheme` has a provider that accepts ids in ACLs and matches them by equality.
    pub(crate) fn is_equality_scheme(&self, scheme: &str) -> bool {
        scheme == crate::auth::DIGEST_SCHEME
            || self.additional_auth_schemes.iter().any(|s| s == scheme)
    }
}
