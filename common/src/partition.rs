//! AWS partitions: which partition names exist and which partition serves a region, so a role ARN
//! can be checked against the region it is used in (an `aws-cn` role cannot be assumed through
//! `us-east-1`'s STS, and a misspelt partition is never right).
//!
//! Source: the AWS SDKs' partition table (`partitions.json` in smithy-rs / botocore), each
//! partition's `regionRegex`.

/// Every partition name (`arn:PARTITION:…`), in the order of the SDKs' partition table.
pub const PARTITIONS: [&str; 8] = [
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// Region name prefixes of every partition but `aws`, most specific first (`us-isob-` before
/// `us-iso-`); a region matching none is in `aws`.
const REGION_PREFIXES: [(&str, &str); 7] = [
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-isof-", "aws-iso-f"),
    ("us-iso-", "aws-iso"),
    ("eu-isoe-", "aws-iso-e"),
    ("cn-", "aws-cn"),
    ("eusc-", "aws-eusc"),
];

/// Whether `partition` is a known partition name.
pub fn is_known(partition: &str) -> bool {
    PARTITIONS.contains(&partition)
}

/// The partition that serves `region` (a region name such as `cn-north-1`).
pub fn of_region(region: &str) -> &'static str {
    REGION_PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// The partition of an ARN (`arn:PARTITION:…`), if it has that shape.
pub fn of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(partition), Some(_)) => Some(partition),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_their_partition() {
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("eu-west-1", "aws"),
            ("us-gov-west-1", "aws-us-gov"),
            ("cn-north-1", "aws-cn"),
            ("cn-northwest-1", "aws-cn"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("us-isof-south-1", "aws-iso-f"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            assert_eq!(of_region(region), partition, "{region}");
            assert!(is_known(partition));
        }
    }

    #[test]
    fn only_listed_partitions_are_known() {
        for unknown in ["awsfoo", "aws-", "AWS", "", "azure", "aws-cn-x"] {
            assert!(!is_known(unknown), "{unknown}");
        }
        assert_eq!(of_arn("arn:aws-cn:iam::1:role/x"), Some("aws-cn"));
        assert_eq!(of_arn("aws:iam"), None);
    }
}
