//! `logrelay_common::aws` against the real AWS emulator (moto server, see docs/testing.md): the
//! gzip NDJSON codec through S3, account isolation through assumed roles, two-step role chains
//! with external ids and session tags, IAM enforcement of the external id, and credential expiry.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_s3::primitives::ByteStream;
use logrelay_common::aws::{
    AwsOptions, ErrorClass, RoleStep, assume_role_chain, base_config, classify,
    has_custom_endpoint, s3_client, session_name, sts_client,
};
use logrelay_common::codec::{NdjsonGzReader, ReadLimits, encode_records};
use logrelay_testkit::{
    DEFAULT_ACCOUNT_ID, Moto, allow_policy, create_bucket, create_role,
    create_user_with_access_key, static_config, test_credentials, trust_policy, unique_name,
};
use serde_json::{Value, json};

/// The second ("customer") account used throughout.
const CUSTOMER_ACCOUNT: &str = "222222222222";

/// Set when this test binary re-runs itself to check the default chain from a given environment.
const CHILD_ENV: &str = "LOGRELAY_DEFAULT_CHAIN_CHILD";

/// Re-runs one test of this binary in a child process with exactly `envs` (plus [`CHILD_ENV`]),
/// so the default credential chain reads a controlled environment without mutating ours.
async fn run_in_child_process(test_name: &str, envs: &[(&str, String)]) {
    let exe = std::env::current_exe().expect("test binary path");
    let output = tokio::process::Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env_clear()
        .env(CHILD_ENV, "1")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("child test runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// In the child: the default chain must act in `EXPECT_ACCOUNT` and region `EXPECT_REGION`.
async fn check_default_chain_in_child() {
    let config = base_config(&AwsOptions::default()).await;
    assert!(
        has_custom_endpoint(&config),
        "AWS_ENDPOINT_URL must be picked up"
    );
    let expected_region = std::env::var("EXPECT_REGION").expect("EXPECT_REGION");
    assert_eq!(
        config.region().map(|r| r.as_ref()),
        Some(expected_region.as_str())
    );
    let (account, arn) = caller(&config).await;
    let expected_account = std::env::var("EXPECT_ACCOUNT").expect("EXPECT_ACCOUNT");
    assert_eq!(account, expected_account, "caller {arn}");
}

/// Environment shared by the default-chain children: emulator endpoint, no IMDS, no real files.
fn hermetic_env(moto: &Moto, dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.url().to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("HOME", dir.display().to_string()),
        ("AWS_CONFIG_FILE", dir.join("config").display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("credentials").display().to_string(),
        ),
    ]
}

/// Bucket names visible to a config.
async fn bucket_names(config: &aws_config::SdkConfig) -> Vec<String> {
    s3_client(config)
        .list_buckets()
        .send()
        .await
        .expect("list buckets")
        .buckets
        .unwrap_or_default()
        .into_iter()
        .filter_map(|b| b.name)
        .collect()
}

/// The account and ARN a config acts as.
async fn caller(config: &aws_config::SdkConfig) -> (String, String) {
    let identity = sts_client(config)
        .get_caller_identity()
        .send()
        .await
        .expect("get caller identity");
    (
        identity.account.unwrap_or_default(),
        identity.arn.unwrap_or_default(),
    )
}

#[tokio::test]
async fn gzip_ndjson_object_round_trips_through_s3_record_by_record() {
    let moto = Moto::shared().await;
    let config = moto.config(DEFAULT_ACCOUNT_ID).await;
    let bucket = unique_name("codec-roundtrip");
    create_bucket(&config, &bucket).await.expect("bucket");

    let records: Vec<Value> = (0..3)
        .map(|i| json!({ "message": format!("line {i}"), "stream": "stdout", "n": i }))
        .collect();
    let body = encode_records(&records).expect("encode");
    let key = "tenant=a/2024/01/01/object.ndjson.gz";
    let s3 = s3_client(&config);
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("put object");

    let object = s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .expect("get object");
    let mut reader = NdjsonGzReader::new(
        Box::pin(object.body.into_async_read()),
        ReadLimits::default(),
    );
    let mut read = Vec::new();
    while let Some((line, record)) = reader.next_record::<Value>().await.expect("readable gzip") {
        read.push((line, record.expect("valid JSON line")));
    }
    let expected: Vec<(u64, Value)> = (1..).zip(records).collect();
    assert_eq!(read, expected);
}

#[tokio::test]
async fn assumed_role_in_another_account_sees_only_that_accounts_buckets() {
    let moto = Moto::shared().await;
    let account_a = moto.config(DEFAULT_ACCOUNT_ID).await;
    let step = RoleStep::new(
        format!(
            "arn:aws:iam::{CUSTOMER_ACCOUNT}:role/{}",
            unique_name("reader")
        ),
        session_name(&["logrelay", "isolation-test"]),
    );
    let account_b = assume_role_chain(&account_a, &[step])
        .await
        .expect("assume role");
    assert_eq!(caller(&account_b).await.0, CUSTOMER_ACCOUNT);

    let bucket_a = unique_name("only-in-a");
    let bucket_b = unique_name("only-in-b");
    create_bucket(&account_a, &bucket_a)
        .await
        .expect("bucket in A");
    create_bucket(&account_b, &bucket_b)
        .await
        .expect("bucket in B");

    let seen_by_a = bucket_names(&account_a).await;
    let seen_by_b = bucket_names(&account_b).await;
    assert!(seen_by_a.contains(&bucket_a));
    assert!(!seen_by_a.contains(&bucket_b), "A must not list B's bucket");
    assert!(seen_by_b.contains(&bucket_b));
    assert!(!seen_by_b.contains(&bucket_a), "B must not list A's bucket");
}

#[tokio::test]
async fn two_step_chain_acts_as_the_customer_role_with_external_id_and_tags() {
    let moto = Moto::shared().await;
    let base = moto.config(DEFAULT_ACCOUNT_ID).await;
    let central_role = unique_name("central");
    let customer_role = unique_name("customer");
    let steps = [
        RoleStep::new(
            format!("arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/{central_role}"),
            session_name(&["logrelay", "processor"]),
        ),
        RoleStep {
            external_id: Some("tenant-a-external-id".into()),
            session_tags: vec![("tenant".into(), "a".into())],
            region: Some("eu-west-1".into()),
            ..RoleStep::new(
                format!("arn:aws:iam::{CUSTOMER_ACCOUNT}:role/{customer_role}"),
                session_name(&["logrelay", "tenant a"]),
            )
        },
    ];
    let customer = assume_role_chain(&base, &steps)
        .await
        .expect("two-step chain");

    let (account, arn) = caller(&customer).await;
    assert_eq!(account, CUSTOMER_ACCOUNT);
    assert!(
        arn.contains(&format!("assumed-role/{customer_role}/logrelay-tenant-a")),
        "unexpected caller {arn}"
    );
    assert_eq!(customer.region().map(|r| r.as_ref()), Some("eu-west-1"));

    // Resources made through the chain land in the customer's account.
    let bucket = unique_name("via-chain");
    create_bucket(&customer, &bucket)
        .await
        .expect("bucket via chain");
    let customer_direct = moto.config(CUSTOMER_ACCOUNT).await;
    assert!(bucket_names(&customer_direct).await.contains(&bucket));
    assert!(!bucket_names(&base).await.contains(&bucket));
}

#[tokio::test]
async fn enforcing_emulator_refuses_a_wrong_external_id_and_accepts_the_right_one() {
    let mut moto = Moto::start_private().await;
    let admin = moto.config(DEFAULT_ACCOUNT_ID).await;
    let (user_arn, user_credentials) =
        create_user_with_access_key(&admin, "processor", &allow_policy(&["sts:AssumeRole"]))
            .await
            .expect("user");
    let central_arn = create_role(
        &admin,
        "central",
        &trust_policy(&user_arn, None),
        Some(&allow_policy(&["sts:AssumeRole", "sts:TagSession"])),
    )
    .await
    .expect("central role");
    // moto checks trust policies only for roles in the caller's own account, and matches
    // principals literally, so the customer role sits in the same account and trusts "*".
    let customer_arn = create_role(
        &admin,
        "customer",
        &trust_policy("*", Some("right-id")),
        Some(&allow_policy(&["s3:ListAllMyBuckets"])),
    )
    .await
    .expect("customer role");
    moto.enforce_from_now().await.expect("enforcement on");

    let base = static_config(moto.url(), user_credentials).await;
    let chain = |external_id: &str| {
        [
            RoleStep::new(central_arn.clone(), "central"),
            RoleStep {
                external_id: Some(external_id.to_owned()),
                session_tags: vec![("tenant".into(), "a".into())],
                ..RoleStep::new(customer_arn.clone(), "tenant-a")
            },
        ]
    };

    let refused = assume_role_chain(&base, &chain("wrong-id"))
        .await
        .expect_err("wrong external id must be refused");
    assert_eq!(refused.class(), ErrorClass::AccessDenied, "{refused}");
    // moto words this refusal as `<ErrorResponse><Errors><Error>`, which the SDK's query-protocol
    // parser does not read, so the code stays unset and the class comes from the HTTP 403.
    assert_eq!(refused.code(), None);
    assert!(
        refused.to_string().contains("chain step 2 of 2"),
        "{refused}"
    );

    let customer = assume_role_chain(&base, &chain("right-id"))
        .await
        .expect("right external id is accepted");
    let (_, arn) = caller(&customer).await;
    assert!(
        arn.contains("assumed-role/customer/tenant-a"),
        "unexpected caller {arn}"
    );
}

#[tokio::test]
async fn enforcing_emulator_rejects_unknown_keys_as_access_denied() {
    let moto = Moto::start_enforcing(0).await;
    let config = static_config(moto.url(), test_credentials()).await;
    let err = s3_client(&config)
        .list_buckets()
        .send()
        .await
        .expect_err("unknown access key");
    assert_eq!(classify(&err), ErrorClass::AccessDenied, "{err:?}");
}

#[tokio::test]
async fn chained_credentials_carry_the_requested_duration_and_are_cached() {
    let moto = Moto::shared().await;
    let base = moto.config(DEFAULT_ACCOUNT_ID).await;
    let step = RoleStep {
        duration: Duration::from_secs(900),
        ..RoleStep::new(
            format!(
                "arn:aws:iam::{CUSTOMER_ACCOUNT}:role/{}",
                unique_name("short")
            ),
            "short-session",
        )
    };
    let config = assume_role_chain(&base, &[step])
        .await
        .expect("assume role");
    let provider = config.credentials_provider().expect("credentials provider");

    let first = provider.provide_credentials().await.expect("credentials");
    let expiry = first.expiry().expect("assumed credentials expire");
    let lifetime = expiry
        .duration_since(SystemTime::now())
        .expect("expiry in the future");
    assert!(
        (Duration::from_secs(840)..=Duration::from_secs(900)).contains(&lifetime),
        "lifetime {lifetime:?}"
    );
    // 15 minutes is outside the 5-minute refresh window: served from cache, not re-assumed.
    let second = provider.provide_credentials().await.expect("credentials");
    assert_eq!(first.access_key_id(), second.access_key_id());
}

#[tokio::test]
async fn default_chain_uses_web_identity_irsa_from_the_environment() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return check_default_chain_in_child().await;
    }
    let moto = Moto::shared().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").expect("token file");
    let mut envs = hermetic_env(moto, dir.path());
    envs.extend([
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::333333333333:role/agent-irsa".to_owned(),
        ),
        ("AWS_ROLE_SESSION_NAME", "agent".to_owned()),
        ("AWS_REGION", "eu-central-1".to_owned()),
        ("EXPECT_REGION", "eu-central-1".to_owned()),
        ("EXPECT_ACCOUNT", "333333333333".to_owned()),
    ]);
    run_in_child_process(
        "default_chain_uses_web_identity_irsa_from_the_environment",
        &envs,
    )
    .await;
}

#[tokio::test]
async fn default_chain_uses_an_assume_role_profile_and_its_region() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return check_default_chain_in_child().await;
    }
    let moto = Moto::shared().await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config"),
        "[profile base]\naws_access_key_id = testing\naws_secret_access_key = testing\n\n\
         [profile logrelay]\nregion = ap-south-1\nsource_profile = base\n\
         role_arn = arn:aws:iam::444444444444:role/from-profile\n",
    )
    .expect("config file");
    let mut envs = hermetic_env(moto, dir.path());
    envs.extend([
        ("AWS_PROFILE", "logrelay".to_owned()),
        ("EXPECT_REGION", "ap-south-1".to_owned()),
        ("EXPECT_ACCOUNT", "444444444444".to_owned()),
    ]);
    run_in_child_process(
        "default_chain_uses_an_assume_role_profile_and_its_region",
        &envs,
    )
    .await;
}
