//! Reading delivery configs from YAML or JSON files (one config, a list, or several YAML
//! documents) and checking them: every entry is decoded on its own, so one bad entry never hides
//! another, and every problem names its field, its file and its index.

use logrelay_common::tenant::{ConfigProblem, DeliveryConfig, DeliveryType};
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::collections::HashMap;
use std::path::Path;

/// Largest config file read (a config is well under 1 KiB; this allows tens of thousands).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Field name used for problems that belong to a whole entry or file rather than one field.
pub const ENTRY_FIELD: &str = "(entry)";

/// Fields that only the cloudwatch delivery type reads.
const CLOUDWATCH_ONLY: [&str; 4] = [
    "log_distribution_role_arn",
    "log_group_name",
    "log_stream_template",
    "retention_days",
];
/// Fields that only the s3 delivery type reads.
const S3_ONLY: [&str; 3] = ["bucket_name", "bucket_prefix", "bucket_owner_account_id"];

/// One entry of a file: where it is, the config when it decoded, its problems and warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `path[index]`, the index counting entries across the file's documents from 0.
    pub origin: String,
    /// The decoded config (`None` when it could not be decoded).
    pub config: Option<DeliveryConfig>,
    /// What makes the entry invalid; empty when it is valid.
    pub problems: Vec<ConfigProblem>,
    /// What is suspicious but allowed (unknown fields, fields the type ignores).
    pub warnings: Vec<ConfigProblem>,
}

impl Entry {
    /// Whether the entry decoded and passed validation.
    pub fn is_valid(&self) -> bool {
        self.config.is_some() && self.problems.is_empty()
    }

    /// `tenant/type` when decoded, else `?`.
    pub fn key(&self) -> String {
        self.config.as_ref().map_or_else(
            || "?".to_owned(),
            |config| format!("{}/{}", config.tenant_id, config.delivery_type),
        )
    }

    fn unreadable(origin: String, problem: ConfigProblem) -> Self {
        Self {
            origin,
            config: None,
            problems: vec![problem],
            warnings: Vec::new(),
        }
    }
}

/// Reads and checks every file; a file that cannot be read becomes one invalid entry.
/// Duplicates (the same tenant and type twice) are problems of the later entry.
pub fn read_files(paths: &[impl AsRef<Path>]) -> Vec<Entry> {
    let mut entries = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let name = path.display().to_string();
        match read_bounded(path) {
            Ok(text) => entries.extend(parse_text(&name, &text)),
            Err(message) => entries.push(Entry::unreadable(
                name,
                ConfigProblem::new(ENTRY_FIELD, message),
            )),
        }
    }
    mark_duplicates(&mut entries);
    entries
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let size = std::fs::metadata(path)
        .map_err(|error| format!("cannot read the file: {error}"))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "the file has {size} bytes, more than the {MAX_FILE_BYTES} read; split it"
        ));
    }
    std::fs::read_to_string(path).map_err(|error| format!("cannot read the file: {error}"))
}

/// Parses one file's text: YAML or JSON, a config, a list of configs, or several YAML documents
/// of either. Each entry is decoded and validated on its own.
pub fn parse_text(name: &str, text: &str) -> Vec<Entry> {
    let mut values = Vec::new();
    let mut syntax_error = None;
    for document in serde_yaml::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(Value::Sequence(items)) => values.extend(items),
            Ok(value) => values.push(value),
            Err(error) => {
                syntax_error = Some(error.to_string());
                break;
            }
        }
    }
    if values.is_empty() && syntax_error.is_none() {
        return vec![Entry::unreadable(
            name.to_owned(),
            ConfigProblem::new(ENTRY_FIELD, "no configs in the file"),
        )];
    }
    let mut entries: Vec<Entry> = values
        .into_iter()
        .enumerate()
        .map(|(index, value)| check_value(format!("{name}[{index}]"), value))
        .collect();
    if let Some(message) = syntax_error {
        let origin = format!("{name}[{}]", entries.len());
        entries.push(Entry::unreadable(
            origin,
            ConfigProblem::new(ENTRY_FIELD, format!("not valid YAML or JSON: {message}")),
        ));
    }
    entries
}

/// Decodes and validates one entry.
pub fn check_value(origin: String, value: Value) -> Entry {
    let Value::Mapping(mapping) = value else {
        return Entry::unreadable(
            origin,
            ConfigProblem::new(
                ENTRY_FIELD,
                format!(
                    "expected a mapping of config fields, found {}",
                    kind(&value)
                ),
            ),
        );
    };
    let config = match serde_yaml::from_value::<DeliveryConfig>(Value::Mapping(mapping.clone())) {
        Ok(config) => config,
        Err(error) => {
            return Entry {
                origin,
                config: None,
                problems: locate_decode_problems(&mapping, &error.to_string()),
                warnings: Vec::new(),
            };
        }
    };
    let problems = config.validate().err().unwrap_or_default();
    let warnings = warnings_of(&config, &mapping);
    Entry {
        origin,
        config: Some(config),
        problems,
        warnings,
    }
}

/// Finds which fields made decoding fail: each field is decoded alone next to a known-good
/// `tenant_id` and `type` (the config type flattens unknown fields, which hides the field in
/// serde's own message).
fn locate_decode_problems(mapping: &Mapping, whole_error: &str) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    for required in ["tenant_id", "type"] {
        if !mapping.contains_key(required) {
            problems.push(ConfigProblem::new(required, "required"));
        }
    }
    let probe_type = mapping
        .get("type")
        .and_then(Value::as_str)
        .filter(|kind| matches!(*kind, "cloudwatch" | "s3"))
        .unwrap_or("cloudwatch");
    for (key, value) in mapping {
        let Some(field) = key.as_str() else {
            problems.push(ConfigProblem::new(
                format!("{key:?}"),
                "field names must be strings",
            ));
            continue;
        };
        let mut probe = Mapping::new();
        probe.insert("tenant_id".into(), "probe".into());
        probe.insert("type".into(), probe_type.into());
        probe.insert(key.clone(), value.clone());
        if let Err(error) = serde_yaml::from_value::<DeliveryConfig>(Value::Mapping(probe)) {
            problems.push(ConfigProblem::new(field, error.to_string()));
        }
    }
    if problems.is_empty() {
        problems.push(ConfigProblem::new(ENTRY_FIELD, whole_error));
    }
    problems
}

fn warnings_of(config: &DeliveryConfig, mapping: &Mapping) -> Vec<ConfigProblem> {
    let mut warnings: Vec<ConfigProblem> = config
        .extra
        .keys()
        .map(|field| {
            ConfigProblem::new(
                field.clone(),
                "unknown field (kept as an extra attribute; is it misspelt?)",
            )
        })
        .collect();
    let ignored: &[&str] = match config.delivery_type {
        DeliveryType::Cloudwatch => &S3_ONLY,
        DeliveryType::S3 => &CLOUDWATCH_ONLY,
    };
    for field in ignored {
        if mapping.get(*field).is_some_and(|value| !value.is_null()) {
            warnings.push(ConfigProblem::new(
                *field,
                format!("ignored by {} delivery", config.delivery_type),
            ));
        }
    }
    warnings
}

fn mark_duplicates(entries: &mut [Entry]) {
    let mut seen: HashMap<(String, DeliveryType), String> = HashMap::new();
    for entry in entries.iter_mut() {
        let Some(config) = &entry.config else {
            continue;
        };
        let key = (config.tenant_id.clone(), config.delivery_type);
        match seen.get(&key) {
            Some(first) => entry.problems.push(ConfigProblem::new(
                ENTRY_FIELD,
                format!("duplicate: {}/{} is also defined at {first}", key.0, key.1),
            )),
            None => {
                seen.insert(key, entry.origin.clone());
            }
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(problems: &[ConfigProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    const GOOD_CLOUDWATCH: &str = "tenant_id: acme\ntype: cloudwatch\nlog_distribution_role_arn: arn:aws:iam::222222222222:role/CustomerLogDistribution\nlog_group_name: /ROSA/cluster-logs/acme\n";

    #[test]
    fn one_config_a_list_and_several_documents_are_all_read() {
        let single = parse_text("one.yaml", GOOD_CLOUDWATCH);
        assert_eq!(single.len(), 1);
        assert!(single[0].is_valid(), "{single:?}");
        assert_eq!(single[0].origin, "one.yaml[0]");

        let list = parse_text(
            "list.json",
            r#"[{"tenant_id": "a", "type": "s3", "bucket_name": "a-logs"},
                {"tenant_id": "b", "type": "s3", "bucket_name": "b-logs"}]"#,
        );
        assert_eq!(
            list.iter().map(Entry::key).collect::<Vec<_>>(),
            ["a/s3", "b/s3"]
        );

        let documents = parse_text(
            "docs.yaml",
            &format!(
                "{GOOD_CLOUDWATCH}---\n- tenant_id: b\n  type: s3\n  bucket_name: b-logs\n---\n"
            ),
        );
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[1].origin, "docs.yaml[1]");
        assert!(documents.iter().all(Entry::is_valid));
    }

    #[test]
    fn every_problem_of_an_entry_is_named_by_field() {
        let entries = parse_text(
            "bad.yaml",
            "- tenant_id: acme\n  type: cloudwatch\n  log_group_name: 'bad name'\n  retention_days: 2\n  groups: [API, Nope]\n",
        );
        assert_eq!(
            fields(&entries[0].problems),
            [
                "groups[1]",
                "log_distribution_role_arn",
                "log_group_name",
                "retention_days"
            ]
        );
    }

    #[test]
    fn undecodable_fields_are_located_one_by_one() {
        let entries = parse_text(
            "types.yaml",
            "tenant_id: acme\ntype: ftp\nretention_days: thirty\nenabled: maybe\n",
        );
        let entry = &entries[0];
        assert!(entry.config.is_none());
        assert_eq!(
            fields(&entry.problems),
            ["type", "retention_days", "enabled"]
        );
        assert!(
            entry.problems[0].message.contains("ftp"),
            "{:?}",
            entry.problems
        );

        let missing = parse_text("missing.yaml", "bucket_name: x\n");
        assert_eq!(fields(&missing[0].problems), ["tenant_id", "type"]);
    }

    #[test]
    fn entries_that_are_not_mappings_and_broken_yaml_are_reported() {
        let entries = parse_text(
            "odd.yaml",
            "- just a string\n- tenant_id: a\n  type: s3\n  bucket_name: a-logs\n",
        );
        assert_eq!(entries.len(), 2);
        assert!(entries[0].problems[0].message.contains("found a string"));
        assert!(entries[1].is_valid());

        let broken = parse_text("broken.yaml", "tenant_id: [unclosed\n");
        assert_eq!(broken.len(), 1);
        assert!(
            broken[0].problems[0].message.contains("not valid YAML"),
            "{broken:?}"
        );

        let empty = parse_text("empty.yaml", "");
        assert!(empty[0].problems[0].message.contains("no configs"));
    }

    #[test]
    fn unknown_and_ignored_fields_are_warnings_not_problems() {
        let entries = parse_text(
            "warn.yaml",
            "tenant_id: a\ntype: s3\nbucket_name: a-logs\nlog_grup_name: x\nlog_group_name: /x/y\n",
        );
        let entry = &entries[0];
        assert!(entry.is_valid(), "{entry:?}");
        assert_eq!(fields(&entry.warnings), ["log_grup_name", "log_group_name"]);
    }

    #[test]
    fn duplicates_across_files_are_problems_of_the_later_entry() {
        let dir = tempfile::tempdir().expect("dir");
        let first = dir.path().join("a.yaml");
        let second = dir.path().join("b.yaml");
        std::fs::write(&first, GOOD_CLOUDWATCH).expect("write");
        std::fs::write(&second, GOOD_CLOUDWATCH).expect("write");
        let missing = dir.path().join("missing.yaml");
        let entries = read_files(&[&first, &second, &missing]);
        assert_eq!(entries.len(), 3);
        assert!(entries[0].is_valid());
        assert!(
            entries[1].problems[0].message.contains("a.yaml[0]"),
            "{entries:?}"
        );
        assert!(entries[2].problems[0].message.contains("cannot read"));
    }
}
