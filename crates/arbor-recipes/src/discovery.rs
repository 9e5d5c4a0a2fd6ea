//! Group membership and service registry in Curator x-discovery's layout.
//!
//! Layout: `<base>/<service name>/<instance id>`, an ephemeral node (for the default
//! `DYNAMIC` type) whose data is the JSON of Curator's `ServiceInstance`:
//! `{"name", "id", "address", "port", "sslPort", "payload", "registrationTimeUTC",
//! "serviceType", "uriSpec"}` (and `"enabled"` when written by Curator's non-compatible
//! serializer). Unknown fields are ignored when reading, as Curator's `JsonInstanceSerializer`
//! does by default; the payload and URI spec are kept as raw JSON (a Java payload object
//! carries Jackson's `"@class"` type field).
//!
//! # Guarantees
//! - A registered instance disappears when its process's session ends (after the session
//!   timeout if the process died without closing it).
//! - [`ServiceCache`] is a [`TreeCache`] of one service: it converges to the registered set,
//!   including after reconnection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zookeeper_client as zk;

use crate::cache::TreeCache;
use crate::error::{RecipeError, Result};
use crate::nodes::{self, retry};

/// Curator's `ServiceType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceType {
    /// Ephemeral: gone with the session.
    #[default]
    Dynamic,
    /// Persistent, registered by configuration.
    Static,
    /// Persistent, never removed by Curator.
    Permanent,
    /// Ephemeral sequential.
    DynamicSequential,
}

/// Curator's `ServiceInstance`, field for field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInstance {
    /// Service name (the parent node's name).
    pub name: String,
    /// Instance id (the node's name).
    pub id: String,
    /// Host name or address.
    pub address: Option<String>,
    /// Plain port.
    pub port: Option<i32>,
    /// TLS port.
    pub ssl_port: Option<i32>,
    /// Application payload, as raw JSON.
    pub payload: Option<serde_json::Value>,
    /// Registration time, milliseconds since the epoch (UTC).
    #[serde(rename = "registrationTimeUTC")]
    pub registration_time_utc: i64,
    /// Lifetime of the registration.
    pub service_type: ServiceType,
    /// Curator's `UriSpec`, as raw JSON.
    pub uri_spec: Option<serde_json::Value>,
    /// Whether the instance takes traffic (absent from Curator's default serialization,
    /// meaning enabled).
    #[serde(default = "enabled_default", skip_serializing_if = "is_true")]
    pub enabled: bool,
}

fn enabled_default() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

impl ServiceInstance {
    /// A `DYNAMIC` instance of `name` with a fresh UUID id, registered now.
    pub fn new(name: &str, address: &str, port: u16) -> ServiceInstance {
        let registration_time_utc = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
            });
        ServiceInstance {
            name: name.to_owned(),
            id: uuid::Uuid::new_v4().to_string(),
            address: Some(address.to_owned()),
            port: Some(i32::from(port)),
            ssl_port: None,
            payload: None,
            registration_time_utc,
            service_type: ServiceType::Dynamic,
            uri_spec: None,
            enabled: true,
        }
    }

    /// The JSON bytes stored in the instance's node.
    ///
    /// # Errors
    /// [`RecipeError::BadData`] if the payload cannot be serialized.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|error| RecipeError::BadData {
            path: self.id.clone(),
            reason: error.to_string(),
        })
    }

    /// Parses an instance node's data.
    ///
    /// # Errors
    /// [`RecipeError::BadData`] if it is not such JSON.
    pub fn from_json(path: &str, bytes: &[u8]) -> Result<ServiceInstance> {
        serde_json::from_slice(bytes).map_err(|error| RecipeError::BadData {
            path: path.to_owned(),
            reason: error.to_string(),
        })
    }
}

/// Registers instances and queries the registry under one base path.
#[derive(Clone, Debug)]
pub struct ServiceDiscovery {
    client: zk::Client,
    base_path: String,
}

impl ServiceDiscovery {
    /// A registry rooted at `base_path`.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path.
    pub fn new(client: &zk::Client, base_path: &str) -> Result<ServiceDiscovery> {
        nodes::validate_path(base_path)?;
        Ok(ServiceDiscovery {
            client: client.clone(),
            base_path: base_path.to_owned(),
        })
    }

    /// The node path of an instance.
    pub fn instance_path(&self, name: &str, id: &str) -> String {
        nodes::join(&nodes::join(&self.base_path, name), id)
    }

    /// Registers `instance` (ephemeral unless its type is static or permanent). Registering
    /// the same id again replaces its data.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a name or id containing '/'; ZooKeeper errors.
    pub async fn register(&self, instance: &ServiceInstance) -> Result<()> {
        if instance.name.contains('/') || instance.id.contains('/') {
            return Err(RecipeError::InvalidArgument(
                "service names and ids cannot contain '/'",
            ));
        }
        let path = self.instance_path(&instance.name, &instance.id);
        let bytes = instance.to_json()?;
        let mode = match instance.service_type {
            ServiceType::Dynamic | ServiceType::DynamicSequential => zk::CreateMode::Ephemeral,
            ServiceType::Static | ServiceType::Permanent => zk::CreateMode::Persistent,
        };
        let options = mode.with_acls(nodes::open_acls());
        for _ in 0..nodes::PARENT_CREATE_ATTEMPTS_MAX {
            match retry(|| self.client.create(&path, &bytes, &options)).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NodeExists) => {
                    // Ours from a lost reply, or a re-registration: make the data current.
                    match retry(|| self.client.set_data(&path, &bytes, None)).await {
                        Ok(_) => return Ok(()),
                        Err(zk::Error::NoNode) => continue,
                        Err(error) => return Err(error.into()),
                    }
                }
                Err(zk::Error::NoNode) => nodes::ensure_parents(&self.client, &path).await?,
                Err(error) => return Err(error.into()),
            }
        }
        Err(RecipeError::ZooKeeper(zk::Error::NoNode))
    }

    /// Removes a registration (gone already is fine).
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn unregister(&self, instance: &ServiceInstance) -> Result<()> {
        nodes::delete_quietly(
            &self.client,
            &self.instance_path(&instance.name, &instance.id),
        )
        .await
    }

    /// Names of the registered services.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn service_names(&self) -> Result<Vec<String>> {
        match retry(|| self.client.list_children(&self.base_path)).await {
            Ok(mut names) => {
                names.sort();
                Ok(names)
            }
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(error) => Err(error.into()),
        }
    }

    /// The instances of `name` registered now (instances whose data cannot be parsed are
    /// skipped with a warning).
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn instances(&self, name: &str) -> Result<Vec<ServiceInstance>> {
        let service_path = nodes::join(&self.base_path, name);
        let mut ids = match retry(|| self.client.list_children(&service_path)).await {
            Ok(ids) => ids,
            Err(zk::Error::NoNode) => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
        ids.sort();
        let mut instances = Vec::with_capacity(ids.len());
        for id in ids {
            let path = nodes::join(&service_path, &id);
            match retry(|| self.client.get_data(&path)).await {
                Ok((data, _)) => match ServiceInstance::from_json(&path, &data) {
                    Ok(instance) => instances.push(instance),
                    Err(error) => tracing::warn!(%path, %error, "skipping an unreadable instance"),
                },
                Err(zk::Error::NoNode) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(instances)
    }

    /// A live view of the instances of `name`.
    ///
    /// # Errors
    /// ZooKeeper errors of the first load.
    pub async fn cache(&self, name: &str) -> Result<ServiceCache> {
        let service_path = nodes::join(&self.base_path, name);
        Ok(ServiceCache {
            cache: TreeCache::start(&self.client, &service_path).await?,
            service_path,
        })
    }
}

/// A live view of one service's instances.
#[derive(Debug)]
pub struct ServiceCache {
    service_path: String,
    cache: TreeCache,
}

impl ServiceCache {
    /// The instances as last seen, by id.
    pub fn instances(&self) -> BTreeMap<String, ServiceInstance> {
        self.cache
            .snapshot()
            .into_values()
            .filter(|node| nodes::parent_of(&node.path) == self.service_path)
            .filter_map(|node| ServiceInstance::from_json(&node.path, &node.data).ok())
            .map(|instance| (instance.id.clone(), instance))
            .collect()
    }

    /// The underlying cache (for its change notifications).
    pub fn tree(&self) -> &TreeCache {
        &self.cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_curator_writes() {
        // Curator 5's JsonInstanceSerializer (compatible mode) output for a String payload.
        let json = br#"{"name":"test","id":"id1","address":"10.0.0.1","port":1234,"sslPort":null,"payload":"hey","registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"http","variable":false}]}}"#;
        let instance = ServiceInstance::from_json("/s/test/id1", json).expect("parses");
        assert_eq!(instance.name, "test");
        assert_eq!(instance.port, Some(1234));
        assert_eq!(instance.payload, Some(serde_json::json!("hey")));
        assert_eq!(instance.service_type, ServiceType::Dynamic);
        assert!(instance.enabled);
    }

    #[test]
    fn writes_curator_field_names() {
        let instance = ServiceInstance::new("api", "127.0.0.1", 8080);
        let value: serde_json::Value =
            serde_json::from_slice(&instance.to_json().expect("serializes")).expect("json");
        for field in [
            "name",
            "id",
            "address",
            "port",
            "sslPort",
            "payload",
            "registrationTimeUTC",
            "serviceType",
            "uriSpec",
        ] {
            assert!(value.get(field).is_some(), "missing {field}");
        }
        assert_eq!(value["serviceType"], "DYNAMIC");
        assert!(
            value.get("enabled").is_none(),
            "enabled is written only when false"
        );
    }
}
