//! The IAM requests an HTTP request to the hub's services makes, read off the wire as AWS
//! reads them:
//!
//! - DynamoDB (`X-Amz-Target: DynamoDB_20120810.OP`): `dynamodb:OP` on the table
//!   (`TableName`, and `/index/NAME` for a Query of an index), with `dynamodb:LeadingKeys` the
//!   partition keys a write touches; `BatchWriteItem` is authorized as itself on each table, a
//!   `TransactWriteItems` as each part's action (`Put` as `PutItem`, `Update` as `UpdateItem`,
//!   `Delete` as `DeleteItem`, `ConditionCheck` as `ConditionCheckItem`). On a table encrypted
//!   with a customer managed key, every request also needs `kms:Decrypt` on the key through
//!   DynamoDB (`kms:ViaService`), and a write `kms:GenerateDataKey` as well, as the AWS CDK's
//!   `grantReadData`/`grantWriteData` grant them.
//! - SNS (form `Action=...`, `TopicArn`): `sns:Publish` for `Publish` and `PublishBatch`, else
//!   `sns:ACTION`, on the topic; publishing to an encrypted topic needs `kms:GenerateDataKey`
//!   and `kms:Decrypt` through SNS.
//! - Step Functions (`X-Amz-Target: AWSStepFunctions.OP`): `states:OP` on the state machine
//!   (`stateMachineArn`) or the execution (`executionArn`).
//! - SQS (`X-Amz-Target: AmazonSQS.OP` or form `Action=OP`, `QueueUrl`): `sqs:OP` on the
//!   queue's ARN; receiving from an encrypted queue needs `kms:Decrypt`, sending
//!   `kms:GenerateDataKey` and `kms:Decrypt`, through SQS.
//!
//! Every request also carries `aws:RequestedRegion`. A signed request of another service is
//! not mapped: it is refused, so that a request the check cannot read never passes unseen.

use std::collections::BTreeMap;

use serde_json::Value;

use super::engine::Request;

/// The hub's resources as the mapping needs them.
#[derive(Debug, Clone, Default)]
pub struct HubResources {
    pub account: String,
    pub region: String,
    /// The table's partition key attribute.
    pub partition_key: String,
    /// The KMS key (ARN) each encrypted resource uses: tables by name, topics and queues by
    /// ARN.
    pub keys: BTreeMap<String, String>,
}

/// What a request asks: the IAM requests, or why it cannot be read.
pub type Mapped = Result<Vec<Request>, String>;

impl HubResources {
    fn table_arn(&self, table: &str) -> String {
        format!(
            "arn:aws:dynamodb:{}:{}:table/{table}",
            self.region, self.account
        )
    }

    fn kms(&self, resource: &str, service: &str, write: bool, out: &mut Vec<Request>) {
        let Some(key) = self.keys.get(resource) else {
            return;
        };
        let via = format!("{service}.{}.amazonaws.com", self.region);
        let mut actions = vec!["kms:Decrypt"];
        if write {
            actions.push("kms:GenerateDataKey");
        }
        for a in actions {
            let r = Request::new(a, key.clone()).with("kms:ViaService", &[&via]);
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }

    fn leading_key(&self, item: &Value) -> Option<String> {
        item.get(&self.partition_key)
            .and_then(|v| v.get("S"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// The IAM requests of one HTTP request (`target` its `X-Amz-Target`, `body` its body).
    pub fn map(&self, target: Option<&str>, body: &[u8]) -> Mapped {
        let mut out = match target {
            Some(t) if t.starts_with("DynamoDB_20120810.") => {
                self.dynamodb(&t["DynamoDB_20120810.".len()..], body)?
            }
            Some(t) if t.starts_with("AWSStepFunctions.") => {
                let op = &t["AWSStepFunctions.".len()..];
                let json: Value = serde_json::from_slice(body).unwrap_or_default();
                let resource = ["executionArn", "stateMachineArn", "mapRunArn"]
                    .iter()
                    .find_map(|k| json.get(*k).and_then(Value::as_str))
                    .unwrap_or("*");
                vec![Request::new(format!("states:{op}"), resource)]
            }
            Some(t) if t.starts_with("AmazonSQS.") => {
                let json: Value = serde_json::from_slice(body).unwrap_or_default();
                self.sqs(
                    &t["AmazonSQS.".len()..],
                    json.get("QueueUrl").and_then(Value::as_str),
                )
            }
            Some(t) => {
                return Err(format!(
                    "X-Amz-Target {t} is not a service the local IAM check maps"
                ));
            }
            None => {
                let form: BTreeMap<String, String> =
                    serde_urlencoded::from_bytes(body).unwrap_or_default();
                let action = form
                    .get("Action")
                    .ok_or("a request without X-Amz-Target or Action")?;
                if let Some(topic) = form.get("TopicArn") {
                    let action = if action == "PublishBatch" {
                        "Publish"
                    } else {
                        action
                    };
                    let mut out = vec![Request::new(format!("sns:{action}"), topic.clone())];
                    if action == "Publish" {
                        self.kms(topic, "sns", true, &mut out);
                    }
                    out
                } else if form.contains_key("QueueUrl") {
                    self.sqs(action, form.get("QueueUrl").map(String::as_str))
                } else {
                    return Err(format!(
                        "Action={action} is not a request the local IAM check maps"
                    ));
                }
            }
        };
        for r in &mut out {
            r.context
                .insert("aws:RequestedRegion".to_owned(), vec![self.region.clone()]);
        }
        Ok(out)
    }

    fn sqs(&self, op: &str, url: Option<&str>) -> Vec<Request> {
        // http://HOST/ACCOUNT/NAME → arn:aws:sqs:REGION:ACCOUNT:NAME
        let arn = url
            .and_then(|u| {
                let mut parts = u.trim_end_matches('/').rsplit('/');
                let name = parts.next()?;
                let account = parts.next()?;
                Some(format!("arn:aws:sqs:{}:{account}:{name}", self.region))
            })
            .unwrap_or_else(|| "*".to_owned());
        let mut out = vec![Request::new(format!("sqs:{op}"), arn.clone())];
        match op {
            "ReceiveMessage" => self.kms(&arn, "sqs", false, &mut out),
            "SendMessage" | "SendMessageBatch" => self.kms(&arn, "sqs", true, &mut out),
            _ => {}
        }
        out
    }

    fn dynamodb(&self, op: &str, body: &[u8]) -> Mapped {
        let req: Value = serde_json::from_slice(body)
            .map_err(|e| format!("a DynamoDB {op} whose body is not JSON: {e}"))?;
        let mut out = Vec::new();
        let mut keys: Vec<(String, String, Option<String>, bool)> = Vec::new(); // (action, table, leading key, write)
        let table = |v: &Value| {
            v.get("TableName")
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match op {
            "GetItem" | "PutItem" | "UpdateItem" | "DeleteItem" => {
                let t = table(&req).ok_or("no TableName")?;
                let item = req
                    .get("Key")
                    .or_else(|| req.get("Item"))
                    .unwrap_or(&Value::Null);
                keys.push((op.to_owned(), t, self.leading_key(item), op != "GetItem"));
            }
            "BatchWriteItem" | "BatchGetItem" => {
                for (t, requests) in req
                    .get("RequestItems")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let items: Vec<&Value> = if op == "BatchGetItem" {
                        requests
                            .get("Keys")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .collect()
                    } else {
                        requests
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|w| {
                                w.pointer("/PutRequest/Item")
                                    .or_else(|| w.pointer("/DeleteRequest/Key"))
                            })
                            .collect()
                    };
                    let mut leading: Vec<String> =
                        items.iter().filter_map(|i| self.leading_key(i)).collect();
                    leading.sort();
                    leading.dedup();
                    out.push(
                        Request::new(format!("dynamodb:{op}"), self.table_arn(t)).with(
                            "dynamodb:LeadingKeys",
                            &leading.iter().map(String::as_str).collect::<Vec<_>>(),
                        ),
                    );
                    self.kms(t, "dynamodb", op == "BatchWriteItem", &mut out);
                }
            }
            "TransactWriteItems" | "TransactGetItems" => {
                for part in req
                    .get("TransactItems")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let Some((kind, p)) = part.as_object().and_then(|o| o.iter().next()) else {
                        continue;
                    };
                    let action = match kind.as_str() {
                        "Put" => "PutItem",
                        "Update" => "UpdateItem",
                        "Delete" => "DeleteItem",
                        "ConditionCheck" => "ConditionCheckItem",
                        "Get" => "GetItem",
                        other => return Err(format!("a transaction part {other}")),
                    };
                    let t = table(p).ok_or("a transaction part without TableName")?;
                    let item = p
                        .get("Key")
                        .or_else(|| p.get("Item"))
                        .unwrap_or(&Value::Null);
                    keys.push((
                        action.to_owned(),
                        t,
                        self.leading_key(item),
                        op == "TransactWriteItems",
                    ));
                }
            }
            _ => {
                let t = table(&req).ok_or_else(|| format!("a DynamoDB {op} without TableName"))?;
                let resource = match req.get("IndexName").and_then(Value::as_str) {
                    Some(index) => format!("{}/index/{index}", self.table_arn(&t)),
                    None => self.table_arn(&t),
                };
                out.push(Request::new(format!("dynamodb:{op}"), resource));
                self.kms(&t, "dynamodb", false, &mut out);
            }
        }
        for (action, t, leading, write) in keys {
            let mut r = Request::new(format!("dynamodb:{action}"), self.table_arn(&t));
            if let Some(k) = leading {
                r = r.with("dynamodb:LeadingKeys", &[&k]);
            }
            if !out.contains(&r) {
                out.push(r);
            }
            self.kms(&t, "dynamodb", write, &mut out);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> HubResources {
        HubResources {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            partition_key: "pk".into(),
            keys: BTreeMap::from([
                (
                    "t".to_owned(),
                    "arn:aws:kms:us-east-1:123456789012:key/k".to_owned(),
                ),
                (
                    "arn:aws:sns:us-east-1:123456789012:ops".to_owned(),
                    "arn:aws:kms:us-east-1:123456789012:key/k".to_owned(),
                ),
            ]),
        }
    }

    fn actions(m: &Mapped) -> Vec<String> {
        m.as_ref()
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.action, r.resource))
            .collect()
    }

    #[test]
    fn a_transaction_is_authorized_part_by_part_with_the_key() {
        let body = br#"{"TransactItems":[{"Delete":{"TableName":"t","Key":{"pk":{"S":"NIGHT#1"},"sk":{"S":"a"}}}},{"Put":{"TableName":"t","Item":{"pk":{"S":"NIGHT#1"},"sk":{"S":"b"}}}}]}"#;
        let m = hub().map(Some("DynamoDB_20120810.TransactWriteItems"), body);
        assert_eq!(
            actions(&m),
            [
                "dynamodb:DeleteItem arn:aws:dynamodb:us-east-1:123456789012:table/t",
                "kms:Decrypt arn:aws:kms:us-east-1:123456789012:key/k",
                "kms:GenerateDataKey arn:aws:kms:us-east-1:123456789012:key/k",
                "dynamodb:PutItem arn:aws:dynamodb:us-east-1:123456789012:table/t",
            ]
        );
        let r = &m.unwrap()[0];
        assert_eq!(r.context["dynamodb:LeadingKeys"], ["NIGHT#1"]);
        assert_eq!(r.context["aws:RequestedRegion"], ["us-east-1"]);
    }

    #[test]
    fn a_query_of_the_index_names_the_index_and_publish_batch_is_publish() {
        let m = hub().map(
            Some("DynamoDB_20120810.Query"),
            br#"{"TableName":"t","IndexName":"by_service"}"#,
        );
        assert_eq!(
            actions(&m)[0],
            "dynamodb:Query arn:aws:dynamodb:us-east-1:123456789012:table/t/index/by_service"
        );
        let m = hub().map(
            None,
            b"Action=PublishBatch&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aops",
        );
        assert_eq!(
            actions(&m),
            [
                "sns:Publish arn:aws:sns:us-east-1:123456789012:ops",
                "kms:Decrypt arn:aws:kms:us-east-1:123456789012:key/k",
                "kms:GenerateDataKey arn:aws:kms:us-east-1:123456789012:key/k",
            ]
        );
        assert!(
            hub()
                .map(Some("Logs_20140328.FilterLogEvents"), b"{}")
                .is_err()
        );
    }
}
