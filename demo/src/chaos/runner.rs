//! Carrying out a chaos schedule while the pipeline runs: at each event's time it kills and
//! restarts a component, begins or ends the S3 outage, or has the customer delete its log group;
//! between events it restarts a component that exited by itself (as Kubernetes would restart a
//! crashed container) and records why. Everything done ends up in the [`ChaosReport`].

use std::path::PathBuf;
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::time::Instant;

use super::ChaosPlan;
use super::faults::S3_SERVICE;
use super::log_group::{self, Deletion};
use super::report::{ChaosReport, ComponentChaos, DeletionRecord, ExitRecord, OutageRecord};
use super::schedule::{ChaosEvent, Schedule};
use crate::child::log_tail;
use crate::pipeline::Pipeline;

/// Lines of a component's log kept when it exited by itself.
const EXIT_LOG_LINES: usize = 5;

/// Whose log group the customer deletes, and as whom.
#[derive(Debug, Clone)]
pub struct DeletionTarget {
    /// The tenant.
    pub tenant: String,
    /// Its log group.
    pub group: String,
    /// A session in the tenant's account (the customer).
    pub customer: SdkConfig,
    /// Where the archive goes.
    pub archive: PathBuf,
}

/// A schedule being carried out.
#[derive(Debug)]
pub struct ChaosRunner {
    plan: ChaosPlan,
    schedule: Schedule,
    next: usize,
    started: Instant,
    logs: PathBuf,
    target: Option<DeletionTarget>,
    agent_kills: Vec<f64>,
    processor_kills: Vec<f64>,
    exits: Vec<ExitRecord>,
    outage_started: Option<f64>,
    outage: Option<OutageRecord>,
    deletion: Option<DeletionRecord>,
    errors: Vec<String>,
    agent_stopped: bool,
}

impl ChaosRunner {
    /// Starts the clock: event times count from now (the start of generation).
    pub fn new(
        plan: ChaosPlan,
        schedule: Schedule,
        logs: PathBuf,
        target: Option<DeletionTarget>,
    ) -> Self {
        Self {
            plan,
            schedule,
            next: 0,
            started: Instant::now(),
            logs,
            target,
            agent_kills: Vec::new(),
            processor_kills: Vec::new(),
            exits: Vec::new(),
            outage_started: None,
            outage: None,
            deletion: None,
            errors: Vec::new(),
            agent_stopped: false,
        }
    }

    /// Seconds since generation started.
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Carries out every event that is due, then restarts components that exited by themselves.
    /// An outage that began late (an earlier event took time) still lasts its full length.
    pub async fn tick(&mut self, pipeline: &mut Pipeline) {
        while let Some((at, event)) = self.schedule.events.get(self.next).copied() {
            let due = match (event, self.outage_started) {
                (ChaosEvent::S3OutageEnd, Some(start)) => {
                    at.max(Duration::from_secs_f64(start) + self.plan.s3_outage)
                }
                _ => at,
            };
            if self.started.elapsed() < due {
                break;
            }
            self.next += 1;
            self.carry_out(event, pipeline).await;
        }
        self.supervise(pipeline).await;
    }

    /// Ends generation's chaos: an outage still on is ended; events not reached are reported.
    pub async fn finish(&mut self, pipeline: &mut Pipeline) {
        let left: Vec<ChaosEvent> = self.schedule.events[self.next..]
            .iter()
            .map(|(_, e)| *e)
            .collect();
        self.next = self.schedule.events.len();
        if left.contains(&ChaosEvent::S3OutageEnd) {
            self.carry_out(ChaosEvent::S3OutageEnd, pipeline).await;
        }
        let skipped = left
            .iter()
            .filter(|e| **e != ChaosEvent::S3OutageEnd)
            .count();
        if skipped > 0 {
            self.errors.push(format!(
                "{skipped} planned chaos events were not reached before generation ended: {left:?}"
            ));
        }
    }

    async fn carry_out(&mut self, event: ChaosEvent, pipeline: &mut Pipeline) {
        let at = self.now();
        match event {
            ChaosEvent::KillAgent => match pipeline.kill_and_restart_agent(&self.logs).await {
                Ok(()) => self.agent_kills.push(at),
                Err(error) => self
                    .errors
                    .push(format!("restarting the agent after a kill: {error:#}")),
            },
            ChaosEvent::KillProcessor => {
                match pipeline.kill_and_restart_processor(&self.logs).await {
                    Ok(()) => self.processor_kills.push(at),
                    Err(error) => self
                        .errors
                        .push(format!("restarting the processor after a kill: {error:#}")),
                }
            }
            ChaosEvent::S3OutageStart => {
                for faults in [&pipeline.agent_faults, &pipeline.processor_faults]
                    .into_iter()
                    .flatten()
                {
                    faults.begin_outage(S3_SERVICE);
                }
                tracing::info!(at, "S3 outage begins");
                self.outage_started = Some(at);
            }
            ChaosEvent::S3OutageEnd => {
                let failed: u64 = [&pipeline.agent_faults, &pipeline.processor_faults]
                    .into_iter()
                    .flatten()
                    .map(|faults| faults.end_outage(S3_SERVICE))
                    .sum();
                tracing::info!(at, failed, "S3 outage ends");
                if let Some(start) = self.outage_started.take() {
                    self.outage = Some(OutageRecord {
                        start_seconds: start,
                        end_seconds: at,
                        failed_requests: failed,
                    });
                }
            }
            ChaosEvent::DeleteLogGroup => match self.delete_log_group(pipeline).await {
                Ok(deletion) => {
                    self.deletion = Some(DeletionRecord {
                        at_seconds: at,
                        deletion,
                    })
                }
                Err(error) => self
                    .errors
                    .push(format!("deleting the log group: {error:#}")),
            },
        }
    }

    async fn delete_log_group(&self, pipeline: &Pipeline) -> anyhow::Result<Deletion> {
        let target = self
            .target
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no tenant to delete a log group of"))?;
        let faults = pipeline
            .processor_faults
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the processor has no fault proxies"))?;
        log_group::archive_and_delete(
            &target.tenant,
            &target.group,
            &target.customer,
            faults,
            &target.archive,
        )
        .await
    }

    /// The agent was stopped on purpose (drain): it is no longer restarted.
    pub fn agent_stopped(&mut self) {
        self.agent_stopped = true;
    }

    /// Restarts the agent (until [`ChaosRunner::agent_stopped`]) or the processor if it exited
    /// without being killed by the schedule.
    pub async fn supervise(&mut self, pipeline: &mut Pipeline) {
        if !self.agent_stopped
            && let Some(status) = pipeline.agent.try_status()
        {
            let tail = log_tail(pipeline.agent.log_path(), EXIT_LOG_LINES);
            self.record_exit("agent", status, tail);
            if let Err(error) = pipeline.kill_and_restart_agent(&self.logs).await {
                self.errors
                    .push(format!("restarting the agent after it exited: {error:#}"));
            }
        }
        let processor = pipeline.processor_child();
        if let Some(status) = processor.try_status() {
            let tail = log_tail(processor.log_path(), EXIT_LOG_LINES);
            self.record_exit("processor", status, tail);
            if let Err(error) = pipeline.kill_and_restart_processor(&self.logs).await {
                self.errors.push(format!(
                    "restarting the processor after it exited: {error:#}"
                ));
            }
        }
    }

    fn record_exit(&mut self, component: &str, status: std::process::ExitStatus, tail: String) {
        tracing::warn!(component, %status, "exited by itself; restarting it");
        self.exits.push(ExitRecord {
            component: component.to_owned(),
            at_seconds: self.started.elapsed().as_secs(),
            status: status.to_string(),
            log_tail: tail,
        });
    }

    /// The deletion done, if any (verification needs its archive).
    pub fn deletion(&self) -> Option<&Deletion> {
        self.deletion.as_ref().map(|d| &d.deletion)
    }

    /// The report of everything carried out, with the proxies' counts.
    pub fn report(&self, pipeline: &Pipeline) -> ChaosReport {
        let component = |name: &str, faults: &Option<_>, kills: &Vec<f64>| {
            let stats = faults
                .as_ref()
                .map(super::faults::ComponentFaults::stats)
                .unwrap_or_default();
            ComponentChaos {
                component: name.to_owned(),
                requests: stats.requests,
                random_faults: stats.random_faults,
                outage_faults: stats.outage_faults,
                kills_at_seconds: kills.clone(),
            }
        };
        let mut answers = Vec::new();
        for (name, proxy) in [
            ("agent", &pipeline.agent_proxy),
            ("processor", &pipeline.processor_proxy),
        ] {
            for ((service, outcome), count) in proxy.outcomes() {
                answers.push(super::report::AnswerRow {
                    component: name.to_owned(),
                    service,
                    outcome: outcome.to_owned(),
                    count,
                });
            }
        }
        ChaosReport {
            seed: self.plan.seed,
            fault_rate: self.plan.fault_rate,
            fault_kinds: self.plan.fault_classes.clone(),
            components: vec![
                component("agent", &pipeline.agent_faults, &self.agent_kills),
                component(
                    "processor",
                    &pipeline.processor_faults,
                    &self.processor_kills,
                ),
            ],
            answers,
            s3_outage: self.outage.clone(),
            log_group_deletion: self.deletion.clone(),
            unexpected_exits: self.exits.clone(),
            errors: self.errors.clone(),
            ..ChaosReport::default()
        }
    }
}
