//! Which identity may write which cluster's objects. IAM cannot confine a writer role to the
//! second segment of a key, so with `LOGRELAY_CLUSTER_WRITERS` (`CLUSTER=ROLE_ID,…`: each cluster's
//! S3 writer role, by its unique role id, the `S3WriterRoleId` output of
//! `cluster-s3-writer-role.yaml`) the processor checks every notification that names its uploader
//! (an S3 event's `userIdentity.principalId`, `AWS:<role id>:<session>` for an assumed role): the
//! key's cluster must be registered and its writer role must be the uploader. Anything else is
//! refused before the object is read, permanently (dead-lettered). A notification without a
//! principal (EventBridge, the emulator) cannot be checked and is counted as unverified.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The registered writer role of each cluster.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ClusterWriters {
    roles: BTreeMap<String, String>,
}

impl fmt::Debug for ClusterWriters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.roles.iter()).finish()
    }
}

/// Why `LOGRELAY_CLUSTER_WRITERS` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterWritersError {
    /// An entry is not `CLUSTER=ROLE_ID`.
    #[error("entry {entry:?} is not CLUSTER=ROLE_ID")]
    NotAPair {
        /// The entry as written.
        entry: String,
    },
    /// A role id is not a unique role id (`AROA` and upper-case letters and digits).
    #[error(
        "{role_id:?} (cluster {cluster:?}) is not a role's unique id (AROA…, the S3WriterRoleId output)"
    )]
    NotARoleId {
        /// The cluster.
        cluster: String,
        /// The value as written.
        role_id: String,
    },
    /// A cluster is listed twice.
    #[error("cluster {cluster:?} is listed twice")]
    Duplicate {
        /// The cluster.
        cluster: String,
    },
}

impl FromStr for ClusterWriters {
    type Err = ClusterWritersError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut roles = BTreeMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((cluster, role_id)) = entry.split_once('=') else {
                return Err(ClusterWritersError::NotAPair {
                    entry: entry.to_owned(),
                });
            };
            let (cluster, role_id) = (cluster.trim(), role_id.trim());
            if cluster.is_empty() {
                return Err(ClusterWritersError::NotAPair {
                    entry: entry.to_owned(),
                });
            }
            if !is_role_id(role_id) {
                return Err(ClusterWritersError::NotARoleId {
                    cluster: cluster.to_owned(),
                    role_id: role_id.to_owned(),
                });
            }
            if roles
                .insert(cluster.to_owned(), role_id.to_owned())
                .is_some()
            {
                return Err(ClusterWritersError::Duplicate {
                    cluster: cluster.to_owned(),
                });
            }
        }
        Ok(Self { roles })
    }
}

/// A role's unique id: `AROA` then upper-case letters and digits.
fn is_role_id(text: &str) -> bool {
    text.len() > 4
        && text.starts_with("AROA")
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A notification's uploader that may not write the key's cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploaderRefusal {
    /// The key's cluster has no registered writer.
    #[error(
        "cluster {cluster:?} has no registered writer (LOGRELAY_CLUSTER_WRITERS); uploader {uploader:?}"
    )]
    UnknownCluster {
        /// The key's cluster.
        cluster: String,
        /// The notification's principal.
        uploader: String,
    },
    /// The uploader is not the cluster's writer role.
    #[error("uploader {uploader:?} is not cluster {cluster:?}'s writer role {expected:?}")]
    NotTheWriter {
        /// The key's cluster.
        cluster: String,
        /// The notification's principal.
        uploader: String,
        /// The registered role id.
        expected: String,
    },
}

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploaderCheck {
    /// The uploader is the cluster's writer role.
    Verified,
    /// The notification names no uploader: nothing to check.
    Unverified,
}

impl ClusterWriters {
    /// Whether any cluster is registered (no registration: no check).
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }

    /// Checks that `uploader` (a principal id) may write objects of `cluster`.
    pub fn check(
        &self,
        cluster: &str,
        uploader: Option<&str>,
    ) -> Result<UploaderCheck, UploaderRefusal> {
        let Some(uploader) = uploader else {
            return Ok(UploaderCheck::Unverified);
        };
        let Some(expected) = self.roles.get(cluster) else {
            return Err(UploaderRefusal::UnknownCluster {
                cluster: cluster.to_owned(),
                uploader: uploader.to_owned(),
            });
        };
        if role_id_of(uploader) == Some(expected.as_str()) {
            Ok(UploaderCheck::Verified)
        } else {
            Err(UploaderRefusal::NotTheWriter {
                cluster: cluster.to_owned(),
                uploader: uploader.to_owned(),
                expected: expected.clone(),
            })
        }
    }
}

/// The role id of an assumed-role principal (`AWS:AROA…:session` → `AROA…`).
fn role_id_of(principal: &str) -> Option<&str> {
    let rest = principal.strip_prefix("AWS:").unwrap_or(principal);
    let (role_id, _session) = rest.split_once(':')?;
    is_role_id(role_id).then_some(role_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writers() -> ClusterWriters {
        "rosa-1=AROAEXAMPLEONE, rosa-2=AROAEXAMPLETWO"
            .parse()
            .expect("valid")
    }

    #[test]
    fn only_the_clusters_own_writer_role_may_write_its_keys() {
        let writers = writers();
        assert_eq!(
            writers.check("rosa-1", Some("AWS:AROAEXAMPLEONE:logrelay-agent-node-7")),
            Ok(UploaderCheck::Verified)
        );
        // Another cluster's writer naming rosa-1 in its keys.
        assert!(matches!(
            writers.check("rosa-1", Some("AWS:AROAEXAMPLETWO:logrelay-agent-node-1")),
            Err(UploaderRefusal::NotTheWriter { expected, .. }) if expected == "AROAEXAMPLEONE"
        ));
        // A user, not a role; a session name spelled like the role id.
        assert!(
            writers
                .check("rosa-1", Some("AWS:AIDAEXAMPLEUSER"))
                .is_err()
        );
        assert!(
            writers
                .check("rosa-1", Some("AWS:AROAOTHER:AROAEXAMPLEONE"))
                .is_err()
        );
        assert!(matches!(
            writers.check("rosa-9", Some("AWS:AROAEXAMPLEONE:s")),
            Err(UploaderRefusal::UnknownCluster { .. })
        ));
        assert_eq!(writers.check("rosa-9", None), Ok(UploaderCheck::Unverified));
    }

    #[test]
    fn bad_registrations_are_refused_naming_the_entry() {
        assert!(matches!(
            "rosa-1".parse::<ClusterWriters>(),
            Err(ClusterWritersError::NotAPair { .. })
        ));
        assert!(matches!(
            "rosa-1=arn:aws:iam::1:role/w".parse::<ClusterWriters>(),
            Err(ClusterWritersError::NotARoleId { .. })
        ));
        assert!(matches!(
            "a=AROAONE,a=AROATWO".parse::<ClusterWriters>(),
            Err(ClusterWritersError::Duplicate { .. })
        ));
        assert!("".parse::<ClusterWriters>().expect("empty").is_empty());
    }
}
