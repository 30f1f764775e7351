//! The meter reads moto's execution history as Step Functions bills it: a Task retried after
//! a function error is a transition for each attempt. The restarter refuses the task's input
//! (a start without a night) before calling anything, so every attempt fails alike.

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use local_stack::bill::StepFunctionsBill;
use local_stack::infra::{ACCOUNT, REGION};
use local_stack::moto::{Moto, find_venv};

/// A Task that fails three times (the first attempt and two retries), then is caught.
fn definition() -> String {
    serde_json::json!({
        "StartAt": "Try",
        "States": {
            "Try": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:restarter"),
                    "Payload": {"mode": "start"}
                },
                "Retry": [{
                    "ErrorEquals": ["States.ALL"],
                    "IntervalSeconds": 1,
                    "BackoffRate": 1,
                    "MaxAttempts": 2
                }],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": true
            },
            "Caught": {"Type": "Pass", "End": true}
        }
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_task_is_billed_a_transition_per_attempt_from_motos_history() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lambda_port = listener.local_addr().unwrap().port();
    let moto = Moto::start(&find_venv().unwrap(), lambda_port)
        .await
        .unwrap();
    // The restarter fails on its input before calling anything.
    let _host = crate::lambda_host::host_on(listener, &moto.endpoint());
    let sdk = local_stack::stack::sdk_config(&moto.endpoint(), &moto.endpoint());
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let machine = sfn
        .create_state_machine()
        .name("retries")
        .definition(definition())
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/sfn"))
        .send()
        .await
        .unwrap();
    let arn = sfn
        .start_execution()
        .state_machine_arn(machine.state_machine_arn())
        .name("retried")
        .input("{}")
        .send()
        .await
        .unwrap()
        .execution_arn;
    // The execution ends after its two retries' waits (1 s each); polled until then.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    loop {
        poll.tick().await;
        let status = sfn
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
            .unwrap()
            .status;
        if status != ExecutionStatus::Running {
            assert_eq!(status, ExecutionStatus::Succeeded);
            break;
        }
        assert!(Instant::now() < deadline, "the execution did not end");
    }
    let events = local_stack::night::history(&sfn, &arn).await.unwrap();
    let failed = events
        .iter()
        .filter(|e| e.r#type().as_str() == "TaskFailed")
        .count();
    assert_eq!(failed, 3, "{events:#?}");
    let bill = StepFunctionsBill::from_history(&events);
    assert_eq!((bill.states_entered, bill.retries), (2, 2), "{events:#?}");
    assert_eq!(bill.transitions, 4);
    assert_eq!(bill.retries_by_state.get("Try"), Some(&2));
    assert_eq!(local_stack::night::transitions(&events), 4);
}
