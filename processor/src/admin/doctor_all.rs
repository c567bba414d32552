//! `tenants doctor --all`: every tenant with an enabled config (paginated scan of the table) walked
//! with [`super::doctor::doctor`], a bounded number at a time, and a summary of the tenants whose
//! chain fails — for a refused customer role, the cause as far as AWS tells it
//! ([`super::hints::Refusal`]) and the `onboard` + `aws cloudformation deploy` commands that put
//! the current customer template in place.

use super::doctor::{DoctorReport, DoctorSettings, StepStatus, doctor};
use super::hints::Refusal;
use super::onboard::{
    DEFAULT_ROLE_NAME, TEMPLATE_MIN_EXTERNAL_ID_CHARS, stack_deploy_command, stack_name,
};
use super::store::{StoreError, TenantTable};
use futures::StreamExt;
use logrelay_common::tenant::{DeliveryConfig, DeliveryType};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Default number of tenants walked at once (each walk is a handful of sequential STS and
/// CloudWatch calls; four keep a run short without bursting STS).
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Most tenants walked at once (STS AssumeRole is throttled per account).
pub const MAX_CONCURRENCY: usize = 16;

/// What the fix needs to know of a tenant's cloudwatch config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleFacts {
    /// `log_distribution_role_arn`.
    pub role_arn: Option<String>,
    /// `target_region` (the stack is deployed there).
    pub target_region: Option<String>,
    /// The config has its own ExternalId of the template's length (not none, not the proof of
    /// concept's shared 12-digit account id).
    pub own_external_id: bool,
}

impl RoleFacts {
    fn of(config: &DeliveryConfig) -> Self {
        Self {
            role_arn: config.log_distribution_role_arn.clone(),
            target_region: config.target_region.clone(),
            own_external_id: config
                .external_id
                .as_ref()
                .is_some_and(|id| id.chars().count() >= TEMPLATE_MIN_EXTERNAL_ID_CHARS),
        }
    }
}

/// The tenants with at least one enabled config, in tenant id order, with their cloudwatch role.
#[derive(Debug, Default)]
pub struct EnabledTenants {
    /// Tenant id → its cloudwatch config's role facts (default when it has none).
    pub tenants: BTreeMap<String, RoleFacts>,
    /// Items that could not be decoded (reported, not walked).
    pub unreadable: Vec<String>,
}

/// Scans the table page by page for tenants with an enabled config.
pub async fn enabled_tenants(
    table: &TenantTable,
    page_size: i32,
) -> Result<EnabledTenants, StoreError> {
    let mut found = EnabledTenants::default();
    let mut start = None;
    loop {
        let page = table.scan_page(page_size, start).await?;
        for item in page.configs {
            match item {
                Ok(config) if config.enabled => add_config(&mut found, &config),
                Ok(_) => {}
                Err(error) => found.unreadable.push(error.to_string()),
            }
        }
        match page.next {
            Some(next) => start = Some(next),
            None => return Ok(found),
        }
    }
}

fn add_config(found: &mut EnabledTenants, config: &DeliveryConfig) {
    let facts = found.tenants.entry(config.tenant_id.clone()).or_default();
    if config.delivery_type == DeliveryType::Cloudwatch {
        *facts = RoleFacts::of(config);
    }
}

/// One tenant's outcome in the summary (`--json` prints one per tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The tenant.
    pub tenant_id: String,
    /// Whether no step failed.
    pub ok: bool,
    /// Id of the first failed step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_step: Option<String>,
    /// Its AWS error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why the customer role refused the central role, when that step failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
    /// What to change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// For a passing tenant: what is left to migrate (a shared or missing ExternalId).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Commands that apply the fix, in order (operator's `onboard`, then the customer's deploy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
}

/// What a passing cloudwatch config without its own ExternalId still needs.
const SHARED_EXTERNAL_ID_NOTE: &str = "passes, but without its own ExternalId (none, DEFAULT_EXTERNAL_ID or the proof of concept's shared one): its role is not the current template, which requires one per tenant; onboard generates one, then the customer deploys the template";

/// The verdict of one walk: the first failed step, its fix, and for a refused customer role the
/// commands deploying the current template.
pub fn verdict(
    report: &DoctorReport,
    facts: &RoleFacts,
    central_role_arn: Option<&str>,
) -> Verdict {
    let mut verdict = Verdict {
        tenant_id: report.tenant_id.clone(),
        ok: report.ok,
        failing_step: None,
        code: None,
        refusal: None,
        fix: None,
        note: None,
        commands: Vec::new(),
    };
    let Some(failed) = report.steps.iter().find(|s| s.status == StepStatus::Fail) else {
        if facts.role_arn.is_some() && !facts.own_external_id {
            verdict.note = Some(SHARED_EXTERNAL_ID_NOTE.to_owned());
            verdict.commands = redeploy_commands(&report.tenant_id, facts);
        }
        return verdict;
    };
    verdict.failing_step = Some(failed.id.clone());
    verdict.code.clone_from(&failed.code);
    verdict.refusal = failed.refusal;
    match failed.refusal {
        Some(refusal) => {
            let central =
                central_role_arn.unwrap_or("the central role (CENTRAL_LOG_DISTRIBUTION_ROLE_ARN)");
            verdict.fix = Some(refusal.fix(central));
            verdict.commands = redeploy_commands(&report.tenant_id, facts);
        }
        None => verdict.fix.clone_from(&failed.hint),
    }
    verdict
}

/// `onboard` (keeps a stored ExternalId of template length, generates one otherwise) and the
/// customer's deploy of the current template, as `onboard` prints it.
pub fn redeploy_commands(tenant_id: &str, facts: &RoleFacts) -> Vec<String> {
    let role_arn = facts.role_arn.as_deref().unwrap_or_default();
    let Some(account) = logrelay_common::aws::role_account_id(role_arn) else {
        return Vec::new();
    };
    let name = role_arn.rsplit('/').next().unwrap_or_default();
    let role_name = if name.starts_with(DEFAULT_ROLE_NAME) {
        name
    } else {
        DEFAULT_ROLE_NAME
    };
    let region = facts.target_region.as_deref().unwrap_or("<target-region>");
    let file = format!("{tenant_id}-parameters.json");
    vec![
        format!(
            "logrelay-processor tenants onboard {tenant_id} --account {account} --role-name {role_name} --target-region {region} --out {file}"
        ),
        format!(
            "in account {account}: {}",
            stack_deploy_command(&stack_name(tenant_id), region, &file)
        ),
    ]
}

/// Walks every tenant, `concurrency` at a time, in tenant id order.
pub async fn walk_all(
    settings: &DoctorSettings,
    tenants: &BTreeMap<String, RoleFacts>,
    concurrency: usize,
) -> Vec<Verdict> {
    let central = settings.central_role_arn.as_deref();
    futures::stream::iter(tenants)
        .map(|(tenant, facts)| async move {
            let report = doctor(settings, tenant).await;
            tracing::debug!(tenant = %tenant, ok = report.ok, "tenant walked");
            verdict(&report, facts, central)
        })
        .buffered(concurrency.clamp(1, MAX_CONCURRENCY))
        .collect()
        .await
}

/// The summary as text: one line per tenant, then each failing tenant with its fix.
pub fn summary_text(table: &str, verdicts: &[Verdict]) -> String {
    let failing: Vec<&Verdict> = verdicts.iter().filter(|v| !v.ok).collect();
    let noted: Vec<&Verdict> = verdicts.iter().filter(|v| v.note.is_some()).collect();
    let mut text = format!(
        "logrelay doctor --all: {} enabled tenant(s) in table {table}\n",
        verdicts.len()
    );
    for verdict in verdicts {
        match &verdict.failing_step {
            None if verdict.note.is_some() => {
                let _ = writeln!(text, "! {}: shared ExternalId", verdict.tenant_id);
            }
            None => {
                let _ = writeln!(text, "✓ {}", verdict.tenant_id);
            }
            Some(step) => {
                let code = verdict.code.as_deref().unwrap_or("failed");
                let _ = writeln!(text, "✗ {}: {step} ({code})", verdict.tenant_id);
            }
        }
    }
    if failing.is_empty() {
        text.push_str("result: OK, every tenant passed\n");
    } else {
        let _ = writeln!(
            text,
            "result: FAILED, {} of {} tenant(s) fail",
            failing.len(),
            verdicts.len()
        );
    }
    for verdict in failing.into_iter().chain(noted) {
        write_section(&mut text, verdict);
    }
    text
}

/// One tenant's fix: the failed step (or the note), the fix and the commands.
fn write_section(text: &mut String, verdict: &Verdict) {
    let what = match (&verdict.failing_step, &verdict.note) {
        (Some(step), _) => step.as_str(),
        (None, Some(note)) => note.as_str(),
        (None, None) => return,
    };
    let _ = writeln!(text, "\n{}: {what}", verdict.tenant_id);
    if let Some(fix) = &verdict.fix {
        let _ = writeln!(text, "  fix: {fix}");
    }
    for command in &verdict.commands {
        let _ = writeln!(text, "  run: {command}");
    }
    let _ = writeln!(
        text,
        "  then: logrelay-processor tenants doctor {}",
        verdict.tenant_id
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::doctor::Step;

    const CENTRAL: &str = "arn:aws:iam::111111111111:role/central";

    fn facts(role: &str) -> RoleFacts {
        RoleFacts {
            role_arn: Some(role.to_owned()),
            target_region: Some("eu-west-1".to_owned()),
            own_external_id: true,
        }
    }

    fn refused(refusal: Option<Refusal>) -> DoctorReport {
        let step = Step {
            id: "cloudwatch.assume_role".into(),
            title: "t".into(),
            status: StepStatus::Fail,
            detail: "d".into(),
            code: Some("AccessDenied".into()),
            hint: Some("the step's hint".into()),
            refusal,
        };
        DoctorReport {
            tenant_id: "acme".into(),
            table: "t".into(),
            ok: false,
            steps: vec![step],
        }
    }

    #[test]
    fn a_tag_session_refusal_names_tag_session_and_the_redeploy_commands() {
        let role = "arn:aws:iam::222222222222:role/CustomerLogDistribution-acme";
        let verdict = verdict(
            &refused(Some(Refusal::TagSessionNotAllowed)),
            &facts(role),
            Some(CENTRAL),
        );
        let fix = verdict.fix.as_deref().expect("fix");
        assert!(fix.starts_with("sts:TagSession not allowed"), "{fix}");
        assert!(fix.contains(CENTRAL), "{fix}");
        assert_eq!(
            verdict.failing_step.as_deref(),
            Some("cloudwatch.assume_role")
        );
        assert_eq!(
            verdict.commands,
            [
                "logrelay-processor tenants onboard acme --account 222222222222 --role-name CustomerLogDistribution-acme --target-region eu-west-1 --out acme-parameters.json",
                "in account 222222222222: aws cloudformation deploy --template-file customer-log-distribution-role.yaml --stack-name logrelay-acme --region eu-west-1 --capabilities CAPABILITY_NAMED_IAM --parameter-overrides file://acme-parameters.json",
            ]
        );
    }

    #[test]
    fn a_proof_of_concept_role_name_is_replaced_by_the_template_name() {
        let commands = redeploy_commands("acme", &facts("arn:aws:iam::222222222222:role/poc-logs"));
        assert!(
            commands[0].contains("--role-name CustomerLogDistribution "),
            "{commands:?}"
        );
    }

    #[test]
    fn a_passing_tenant_with_a_shared_external_id_is_listed_with_the_redeploy_commands() {
        let passing = DoctorReport {
            tenant_id: "acme".into(),
            table: "t".into(),
            ok: true,
            steps: Vec::new(),
        };
        let mut shared = facts("arn:aws:iam::222222222222:role/CustomerLogDistribution");
        shared.own_external_id = false;
        let noted = verdict(&passing, &shared, Some(CENTRAL));
        assert!(noted.ok);
        assert_eq!(noted.note.as_deref(), Some(SHARED_EXTERNAL_ID_NOTE));
        assert_eq!(noted.commands.len(), 2, "{noted:?}");
        let text = summary_text("t", &[noted]);
        assert!(
            text.contains("! acme: shared ExternalId\nresult: OK"),
            "{text}"
        );
        assert!(
            text.contains("\nacme: passes, but without its own ExternalId"),
            "{text}"
        );
        let own = verdict(&passing, &facts("arn:aws:iam::2:role/x"), Some(CENTRAL));
        assert!(own.note.is_none() && own.commands.is_empty(), "{own:?}");
    }

    #[test]
    fn other_failures_keep_the_step_hint_and_no_commands() {
        let verdict = verdict(&refused(None), &facts("arn:aws:iam::2:role/x"), None);
        assert_eq!(verdict.fix.as_deref(), Some("the step's hint"));
        assert!(verdict.commands.is_empty());
    }

    #[test]
    fn the_summary_lists_only_failing_tenants_with_their_fix() {
        let ok = Verdict {
            tenant_id: "good".into(),
            ok: true,
            failing_step: None,
            code: None,
            refusal: None,
            fix: None,
            note: None,
            commands: Vec::new(),
        };
        let bad = verdict(
            &refused(Some(Refusal::TrustOrExternalId)),
            &facts("arn:aws:iam::222222222222:role/CustomerLogDistribution"),
            Some(CENTRAL),
        );
        let text = summary_text("t", &[ok, bad]);
        assert!(
            text.contains("✓ good\n✗ acme: cloudwatch.assume_role (AccessDenied)"),
            "{text}"
        );
        assert!(
            text.contains("result: FAILED, 1 of 2 tenant(s) fail"),
            "{text}"
        );
        assert!(
            text.contains("\nacme: cloudwatch.assume_role\n  fix: AssumeRole refused"),
            "{text}"
        );
        assert!(!text.contains("\ngood:"), "{text}");
    }
}
