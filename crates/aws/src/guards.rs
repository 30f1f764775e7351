//! [`Guards`] over AWS: the hub's SSM Change Calendar (`GetCalendarState`), and CloudWatch
//! `DescribeAlarms` in the hub and, through the night's member role, in each member account
//! and region.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use aws_smithy_types::retry::RetryConfig;
use aws_types::SdkConfig;
use chrono::{DateTime, Utc};

use restart_core::guard::{
    AlarmQuery, AlarmScope, CalendarReading, FiringAlarm, GuardFuture, Guards,
};
use restart_core::ids::AccountId;
use restart_core::ports::ControlError;
use restart_core::telemetry::ApiCalls;

use super::sdk::{ErrorClass, control_error, to_chrono};
use super::sts::AccountSessions;

/// The most alarms one `DescribeAlarms` page returns.
const ALARM_PAGE_MAX: i32 = 100;

/// The guards of one hub and its member accounts.
#[derive(Debug)]
pub struct AwsGuards {
    ssm: aws_sdk_ssm::Client,
    hub_alarms: aws_sdk_cloudwatch::Client,
    base: SdkConfig,
    sessions: AccountSessions,
    calls: Arc<ApiCalls>,
    clients: Mutex<HashMap<(AccountId, String), aws_sdk_cloudwatch::Client>>,
}

impl AwsGuards {
    /// `sdk` carries the hub's settings (its region is where the calendar and the hub's alarms
    /// are); `sessions` enter the member accounts (shared with the ECS adapter, so one
    /// AssumeRole serves both).
    pub fn new(sdk: &SdkConfig, sessions: AccountSessions, calls: Arc<ApiCalls>) -> Self {
        let hub = super::hub(sdk);
        Self {
            ssm: crate::xray::client!(aws_sdk_ssm, &hub, crate::xray::XrayCalls::hub()),
            hub_alarms: crate::xray::client!(
                aws_sdk_cloudwatch,
                &hub,
                crate::xray::XrayCalls::hub()
            ),
            base: sdk.clone(),
            sessions,
            calls,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The CloudWatch client of one member account and region (built once, then shared).
    fn member(&self, account: &AccountId, region: &str) -> aws_sdk_cloudwatch::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry((account.clone(), region.to_owned()))
            .or_insert_with(|| {
                let retry = RetryConfig::standard()
                    .with_max_attempts(5)
                    .with_max_backoff(Duration::from_secs(10));
                let sdk = super::member_sdk(&self.base, &self.sessions, account, region, retry);
                crate::xray::client!(
                    aws_sdk_cloudwatch,
                    &sdk,
                    crate::xray::XrayCalls::member(account)
                )
            })
            .clone()
    }

    /// The alarms in ALARM that `query` names; the error, and whether it said the session
    /// expired.
    async fn describe(
        &self,
        cw: &aws_sdk_cloudwatch::Client,
        query: &AlarmQuery,
    ) -> Result<Vec<FiringAlarm>, (ControlError, bool)> {
        // DescribeAlarms takes at most 100 names a request.
        let requests: Vec<(Option<&str>, Option<Vec<String>>)> = match query {
            AlarmQuery::Prefix(prefix) => vec![(Some(prefix.as_str()), None)],
            AlarmQuery::Names(names) => names
                .chunks(ALARM_PAGE_MAX as usize)
                .map(|chunk| (None, Some(chunk.to_vec())))
                .collect(),
        };
        let mut firing = Vec::new();
        for (prefix, names) in requests {
            firing.extend(self.describe_pages(cw, prefix, names).await?);
        }
        Ok(firing)
    }

    async fn describe_pages(
        &self,
        cw: &aws_sdk_cloudwatch::Client,
        prefix: Option<&str>,
        names: Option<Vec<String>>,
    ) -> Result<Vec<FiringAlarm>, (ControlError, bool)> {
        let mut firing = Vec::new();
        let mut token = None;
        loop {
            self.calls.record("DescribeAlarms");
            let page = cw
                .describe_alarms()
                .set_alarm_name_prefix(prefix.map(str::to_owned))
                .set_alarm_names(names.clone())
                .state_value(StateValue::Alarm)
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .max_records(ALARM_PAGE_MAX)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    let expired = ErrorClass::of_sdk(&e) == ErrorClass::Expired;
                    (control_error("DescribeAlarms", &e), expired)
                })?;
            let metric = page
                .metric_alarms()
                .iter()
                .map(|a| (a.alarm_name(), a.state_value(), a.state_updated_timestamp()));
            let composite = page
                .composite_alarms()
                .iter()
                .map(|a| (a.alarm_name(), a.state_value(), a.state_updated_timestamp()));
            for (name, state, since) in metric.chain(composite) {
                // The filter is the service's; an answer that breaks it is not trusted blindly.
                if state == Some(&StateValue::Alarm)
                    && let Some(name) = name
                {
                    firing.push(FiringAlarm {
                        name: name.to_owned(),
                        since: since.and_then(to_chrono),
                    });
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(firing),
            }
        }
    }
}

impl Guards for AwsGuards {
    fn calendar_state<'a>(&'a self, calendar: &'a str) -> GuardFuture<'a, CalendarReading> {
        Box::pin(async move {
            self.calls.record("GetCalendarState");
            let out = self
                .ssm
                .get_calendar_state()
                .calendar_names(calendar)
                .send()
                .await
                .map_err(|e| control_error("GetCalendarState", &e))?;
            let closed = match out.state() {
                Some(aws_sdk_ssm::types::CalendarState::Closed) => true,
                Some(aws_sdk_ssm::types::CalendarState::Open) => false,
                other => {
                    return Err(ControlError::Unexpected(format!(
                        "GetCalendarState of {calendar} answered the state {other:?}"
                    )));
                }
            };
            let next_transition = out
                .next_transition_time()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            Ok(CalendarReading {
                closed,
                next_transition,
            })
        })
    }

    fn firing_alarms<'a>(
        &'a self,
        scope: &'a AlarmScope,
        query: &'a AlarmQuery,
    ) -> GuardFuture<'a, Vec<FiringAlarm>> {
        Box::pin(async move {
            match scope {
                AlarmScope::Hub => self
                    .describe(&self.hub_alarms, query)
                    .await
                    .map_err(|e| e.0),
                AlarmScope::Member { account, region } => {
                    let cw = self.member(account, region);
                    match self.describe(&cw, query).await {
                        // The session expired: renewed once, as the ECS adapter does.
                        Err((_, true)) => {
                            self.sessions.forget(account).await;
                            self.describe(&cw, query).await.map_err(|e| e.0)
                        }
                        other => other.map_err(|e| e.0),
                    }
                }
            }
        })
    }
}
