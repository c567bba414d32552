//! Generating a tenant's ExternalId: random characters from the operating system's CSPRNG.
//!
//! An ExternalId is not a password (AWS calls it a guard against the confused-deputy problem), but
//! it must be unguessable so that nobody else can make the central role act for this tenant.

use rand::TryRngCore;
use rand::rngs::OsRng;

/// Characters of a generated ExternalId: the alphanumeric subset of what STS accepts
/// (`[\w+=,.@:/-]`), so the value needs no quoting in shells, JSON or CloudFormation parameters.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a generated ExternalId: 48 characters of a 62-letter alphabet is about 285 bits,
/// above the 32 characters asked for and the template's `MinLength` of 16.
pub const GENERATED_EXTERNAL_ID_CHARS: usize = 48;

/// Random bytes at or above this are discarded so that `byte % 62` stays uniform (248 = 4 × 62).
const UNBIASED_LIMIT: u8 = (ALPHABET.len() * 4) as u8;

/// The operating system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the operating system's random number generator: {0}")]
pub struct RandomError(#[from] rand::rand_core::OsError);

/// A new ExternalId of [`GENERATED_EXTERNAL_ID_CHARS`] characters from [`OsRng`].
pub fn generate_external_id() -> Result<String, RandomError> {
    let mut id = String::with_capacity(GENERATED_EXTERNAL_ID_CHARS);
    let mut buffer = [0u8; 64];
    while id.len() < GENERATED_EXTERNAL_ID_CHARS {
        OsRng.try_fill_bytes(&mut buffer)?;
        for byte in buffer {
            if byte < UNBIASED_LIMIT && id.len() < GENERATED_EXTERNAL_ID_CHARS {
                id.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrelay_common::tenant::DeliveryConfig;
    use std::collections::HashSet;

    #[test]
    fn generated_ids_are_long_alphanumeric_and_valid_for_sts() {
        let id = generate_external_id().expect("random");
        assert_eq!(id.len(), GENERATED_EXTERNAL_ID_CHARS);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
        let config: DeliveryConfig = serde_json::from_value(serde_json::json!({
            "tenant_id": "acme",
            "type": "s3",
            "bucket_name": "acme-logs",
            "external_id": id,
        }))
        .expect("config");
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn generated_ids_differ_and_use_the_whole_alphabet() {
        let ids: Vec<String> = (0..200)
            .map(|_| generate_external_id().expect("random"))
            .collect();
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        let letters: HashSet<char> = ids.iter().flat_map(|id| id.chars()).collect();
        assert_eq!(
            letters.len(),
            ALPHABET.len(),
            "9,600 draws hit all 62 letters"
        );
    }
}
