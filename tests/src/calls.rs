//! What each function asks of AWS during the tests, for the roles check (`infra/check_roles.py`,
//! run by `./infra/dev test`): an SDK interceptor on every client built for a function records
//! each call as the IAM action it needs on the template resource it touches, one JSON line per
//! distinct (function, action, resource) in `$HERALD_AWS_CALLS/<process id>.jsonl`.
//!
//! Resources are named as the template names them (`Table`, `Table/index/gsi1`, `WorkQueue`,
//! `TokenKey`, `XAppSecret`…), from this test environment's own names; a resource the recorder
//! does not know is written as `?` and its name, and fails the check.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use herald::aws::{ConfigBag, Intercept};
use herald::bootstrap::Resources;
use herald::config::AppSecretIds;
use serde_json::Value;

/// The environment variable naming the directory calls are recorded in; unset, nothing is.
pub const CALLS_DIR: &str = "HERALD_AWS_CALLS";

/// The template's names for one test environment's resources.
#[derive(Debug)]
pub struct ResourceMap {
    table: String,
    work_queue: String,
    dead_letter_queue: String,
    secrets: Vec<(String, &'static str)>,
}

impl ResourceMap {
    pub fn new(resources: &Resources, secrets: &AppSecretIds) -> Self {
        let named = [
            (&secrets.x, "XAppSecret"),
            (&secrets.meta, "MetaAppSecret"),
            (&secrets.linkedin, "LinkedinAppSecret"),
            (&secrets.threads, "ThreadsAppSecret"),
        ];
        Self {
            table: resources.table.clone(),
            work_queue: resources.work_queue_url.clone(),
            dead_letter_queue: resources.dead_letter_queue_url.clone(),
            secrets: named.into_iter().filter_map(|(id, name)| id.clone().map(|id| (id, name))).collect(),
        }
    }

    fn table(&self, body: &Value) -> String {
        let name = body["TableName"].as_str().unwrap_or_default();
        let table = if name == self.table { "Table".to_owned() } else { format!("?{name}") };
        match body["IndexName"].as_str() {
            Some(index) => format!("{table}/index/{index}"),
            None => table,
        }
    }

    fn queue(&self, body: &Value) -> String {
        match body["QueueUrl"].as_str().unwrap_or_default() {
            url if url == self.work_queue => "WorkQueue".to_owned(),
            url if url == self.dead_letter_queue => "DeadLetterQueue".to_owned(),
            other => format!("?{other}"),
        }
    }

    fn secret(&self, body: &Value) -> String {
        let id = body["SecretId"].as_str().unwrap_or_default();
        self.secrets
            .iter()
            .find(|(known, _)| known == id)
            .map_or_else(|| format!("?{id}"), |(_, name)| (*name).to_owned())
    }

    /// The (IAM action, resource) pairs one call needs. Transactions and batches need the
    /// action of each item (AWS's service authorization reference lists `TransactWriteItems`
    /// as requiring the item actions, and `SendMessageBatch` as `sqs:SendMessage`).
    fn needs(&self, service: &str, operation: &str, body: &Value) -> Vec<(String, String)> {
        match service {
            "DynamoDB" => match operation {
                "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .flat_map(|item| item.iter())
                    .map(|(kind, op)| {
                        let action = match kind.as_str() {
                            "Put" => "PutItem",
                            "Update" => "UpdateItem",
                            "Delete" => "DeleteItem",
                            "ConditionCheck" => "ConditionCheckItem",
                            "Get" => "GetItem",
                            other => other,
                        };
                        (format!("dynamodb:{action}"), self.table(op))
                    })
                    .collect(),
                // No resource-level permissions: AWS requires `*`.
                "DescribeEndpoints" => vec![("dynamodb:DescribeEndpoints".into(), "*".into())],
                other => vec![(format!("dynamodb:{other}"), self.table(body))],
            },
            "SQS" => {
                let action = operation.strip_suffix("Batch").unwrap_or(operation);
                vec![(format!("sqs:{action}"), self.queue(body))]
            }
            // Herald has one key; `Decrypt` names it only inside the ciphertext.
            "KMS" => vec![(format!("kms:{operation}"), "TokenKey".into())],
            "Secrets Manager" => vec![(format!("secretsmanager:{operation}"), self.secret(body))],
            other => vec![(format!("{other}:{operation}"), "?".into())],
        }
    }
}

/// Records one function's calls.
#[derive(Debug)]
pub struct Recorder {
    function: &'static str,
    resources: Arc<ResourceMap>,
}

impl Recorder {
    /// A recorder for `function`, or `None` when calls are not being recorded.
    pub fn new(function: &'static str, resources: Arc<ResourceMap>) -> Option<Self> {
        sink().map(|_| Self { function, resources })
    }
}

struct Sink {
    seen: HashSet<(String, String, String)>,
    file: std::fs::File,
}

fn sink() -> Option<&'static Mutex<Sink>> {
    static SINK: OnceLock<Option<Mutex<Sink>>> = OnceLock::new();
    SINK.get_or_init(|| {
        let dir = std::path::PathBuf::from(std::env::var_os(CALLS_DIR)?);
        std::fs::create_dir_all(&dir).expect("the calls directory can be made");
        let path = dir.join(format!("{}.jsonl", std::process::id()));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("the calls file opens");
        Some(Mutex::new(Sink { seen: HashSet::new(), file }))
    })
    .as_ref()
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "herald-testkit-call-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let Some((service, operation)) = herald::aws::operation(cfg) else { return Ok(()) };
        let body = context.request().body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
        let Some(sink) = sink() else { return Ok(()) };
        let mut sink = sink.lock().expect("the recorder does not panic while holding it");
        for (action, resource) in self.resources.needs(service, operation, &body) {
            let key = (self.function.to_owned(), action, resource);
            if sink.seen.insert(key.clone()) {
                let line = serde_json::json!({ "function": key.0, "action": key.1, "resource": key.2 });
                writeln!(sink.file, "{line}")?;
            }
        }
        Ok(())
    }
}
