//! DescribeTaskDefinition through aws-sdk-ecs: what ECS Exec checks (`readonlyRootFilesystem`).

use crate::common;

use common::{code, ecs, start};

const FLEET: &str = r#"
hub_account: "111111111111"
throttling: false
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: payments
        services:
          - name: api
            enable_execute_command: true
          - name: locked
            enable_execute_command: true
            readonly_root_filesystem: true
"#;

#[tokio::test]
async fn a_tasks_definition_is_described_with_its_root_filesystem() {
    let sim = start(FLEET).await;
    let client = ecs(&sim, "eu-west-1");
    for (service, readonly) in [("api", false), ("locked", true)] {
        let tasks = client
            .list_tasks()
            .cluster("payments")
            .service_name(service)
            .send()
            .await
            .expect("tasks");
        let task = client
            .describe_tasks()
            .cluster("payments")
            .tasks(tasks.task_arns()[0].clone())
            .send()
            .await
            .expect("described");
        let td = task.tasks()[0].task_definition_arn().unwrap().to_owned();
        let out = client
            .describe_task_definition()
            .task_definition(&td)
            .send()
            .await
            .expect("task definition");
        let def = out.task_definition().unwrap();
        assert_eq!(def.task_definition_arn(), Some(td.as_str()));
        assert_eq!(def.family(), Some(service));
        let container = &def.container_definitions()[0];
        assert_eq!(container.name(), Some("app"));
        assert_eq!(
            container.readonly_root_filesystem(),
            Some(readonly),
            "{service}"
        );

        // family:revision names the same definition.
        let short = td.rsplit_once(":task-definition/").unwrap().1;
        let again = client
            .describe_task_definition()
            .task_definition(short)
            .send()
            .await
            .expect("by family:revision");
        assert_eq!(
            again.task_definition().unwrap().task_definition_arn(),
            Some(td.as_str())
        );
    }
}

#[tokio::test]
async fn an_unknown_task_definition_is_a_client_exception() {
    let sim = start(FLEET).await;
    let err = ecs(&sim, "eu-west-1")
        .describe_task_definition()
        .task_definition("nope:1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("ClientException"));
    // Another region's definitions are not visible.
    let err = ecs(&sim, "us-east-1")
        .describe_task_definition()
        .task_definition("api:1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("ClientException"));
}
