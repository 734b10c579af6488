//! `template.yaml` and the local bootstrap describe the same table and queues: the test reads the
//! template and compares it with what the bootstrap created in the emulation.

use std::collections::BTreeSet;

use aws_sdk_sqs::types::QueueAttributeName;
use herald::schema;
use herald_testkit::{TestEnv, repo_root};
use serde_yaml_ng::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    &template["Resources"][name]["Properties"]
}

/// An index as (name, key schema, projection type).
type IndexShape = (String, Vec<(String, String)>, String);

fn key_schema(elements: &Value) -> Vec<(String, String)> {
    elements
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["AttributeName"].as_str().unwrap().to_owned(), e["KeyType"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn template_agrees_with_bootstrap() {
    let template = template();
    let env = TestEnv::fresh().await;

    // --- Table: keys, attribute types, GSIs, TTL, billing. ---
    let table = resource(&template, "Table");
    let described =
        env.aws.dynamodb.describe_table().table_name(&env.resources.table).send().await.unwrap().table.unwrap();

    let local_keys: Vec<(String, String)> = described
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
        .collect();
    assert_eq!(key_schema(&table["KeySchema"]), local_keys);
    assert_eq!(local_keys[0].0, schema::PARTITION_KEY);
    assert_eq!(local_keys[1].0, schema::SORT_KEY);

    let template_attributes: BTreeSet<(String, String)> = table["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| (a["AttributeName"].as_str().unwrap().to_owned(), a["AttributeType"].as_str().unwrap().to_owned()))
        .collect();
    let local_attributes: BTreeSet<(String, String)> = described
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name().to_owned(), a.attribute_type().as_str().to_owned()))
        .collect();
    assert_eq!(template_attributes, local_attributes);

    let template_gsis: BTreeSet<IndexShape> = table["GlobalSecondaryIndexes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["IndexName"].as_str().unwrap().to_owned(),
                key_schema(&g["KeySchema"]),
                g["Projection"]["ProjectionType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let local_gsis: BTreeSet<IndexShape> = described
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            (
                g.index_name().unwrap().to_owned(),
                g.key_schema()
                    .iter()
                    .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
                    .collect(),
                g.projection().and_then(|p| p.projection_type()).unwrap().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(template_gsis, local_gsis);
    assert_eq!(local_gsis.len(), schema::GSIS.len());

    let ttl = env.aws.dynamodb.describe_time_to_live().table_name(&env.resources.table).send().await.unwrap();
    let ttl = ttl.time_to_live_description.unwrap();
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"].as_str(), ttl.attribute_name());
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"].as_bool(), Some(true));
    assert_eq!(ttl.attribute_name(), Some(schema::TTL_ATTRIBUTE));
    // On demand by default, as the emulation's table; provisioned on the operator's choice, with
    // capacity for the table and every index, each scaled for reads and writes.
    assert_eq!(template["Parameters"]["TableCapacity"]["Default"].as_str(), Some("on-demand"));
    let choice = |value: &Value| match value {
        Value::Tagged(tagged) if tagged.tag == "If" => tagged.value.as_sequence().cloned().unwrap_or_default(),
        other => panic!("not an !If: {other:?}"),
    };
    let billing = choice(&table["BillingMode"]);
    assert_eq!(
        billing.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
        [Some("ProvisionedTable"), Some("PROVISIONED"), Some("PAY_PER_REQUEST")]
    );
    let mut scaled = vec![(String::from("table"), "table/${Table}".to_owned())];
    for gsi in table["GlobalSecondaryIndexes"].as_sequence().unwrap() {
        let name = gsi["IndexName"].as_str().unwrap();
        assert_eq!(choice(&gsi["ProvisionedThroughput"])[0].as_str(), Some("ProvisionedTable"), "{name}");
        scaled.push((String::from("index"), format!("table/${{Table}}/index/{name}")));
    }
    let targets: BTreeSet<(String, String)> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget")
        .map(|r| {
            let id = match &r["Properties"]["ResourceId"] {
                Value::Tagged(sub) => sub.value.as_str().unwrap().to_owned(),
                other => other.as_str().unwrap().to_owned(),
            };
            (id, r["Properties"]["ScalableDimension"].as_str().unwrap().to_owned())
        })
        .collect();
    let expected: BTreeSet<(String, String)> = scaled
        .iter()
        .flat_map(|(kind, id)| {
            ["Read", "Write"].map(|unit| (id.clone(), format!("dynamodb:{kind}:{unit}CapacityUnits")))
        })
        .collect();
    assert_eq!(targets, expected, "each of the table's and its indexes' capacities is scaled");
    assert_eq!(
        described.billing_mode_summary().and_then(|b| b.billing_mode()).map(|m| m.as_str()),
        Some("PAY_PER_REQUEST")
    );

    // --- Queues: visibility timeout, redrive to the DLQ, DLQ retention. ---
    let work = env.queue_attributes(&env.resources.work_queue_url).await;
    let dlq = env.queue_attributes(&env.resources.dead_letter_queue_url).await;
    let work_template = resource(&template, "WorkQueue");
    assert_eq!(
        work_template["VisibilityTimeout"].as_i64().map(|v| v.to_string()).as_ref(),
        work.get(&QueueAttributeName::VisibilityTimeout)
    );
    let redrive: serde_json::Value = serde_json::from_str(&work[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(redrive["deadLetterTargetArn"].as_str(), dlq.get(&QueueAttributeName::QueueArn).map(String::as_str));
    assert_eq!(
        work_template["RedrivePolicy"]["maxReceiveCount"].as_i64(),
        redrive["maxReceiveCount"]
            .as_i64()
            .or_else(|| redrive["maxReceiveCount"].as_str().and_then(|s| s.parse().ok()))
    );
    // The template's redrive target is the DLQ resource.
    let target = &work_template["RedrivePolicy"]["deadLetterTargetArn"];
    assert!(format!("{target:?}").contains("DeadLetterQueue.Arn"), "{target:?}");
    assert_eq!(
        resource(&template, "DeadLetterQueue")["MessageRetentionPeriod"].as_i64().map(|v| v.to_string()).as_ref(),
        dlq.get(&QueueAttributeName::MessageRetentionPeriod)
    );

    // --- The retries function consumes the work queue with partial batch responses. ---
    let event = resource(&template, "RetriesWork");
    assert_eq!(template["Resources"]["RetriesWork"]["Type"], "AWS::Lambda::EventSourceMapping");
    assert!(format!("{:?}", event["FunctionName"]).contains("RetriesFunction"));
    assert!(format!("{:?}", event["EventSourceArn"]).contains("WorkQueue.Arn"));
    assert_eq!(event["FunctionResponseTypes"][0].as_str(), Some("ReportBatchItemFailures"));
    let retries_timeout = resource(&template, "RetriesFunction")["Timeout"].as_i64().unwrap();
    assert!(
        i64::from(schema::WORK_QUEUE_VISIBILITY_SECONDS) >= 6 * retries_timeout,
        "visibility timeout must be at least 6x the consumer's timeout"
    );
}

/// Least privilege: only the functions that seal new or refreshed tokens may generate data keys.
#[test]
fn only_connect_and_retries_may_encrypt() {
    let template = template();
    let policies = |function: &str| {
        let role = function.replace("Function", "Role");
        assert!(format!("{:?}", resource(&template, function)["Role"]).contains(&role), "{function}");
        format!("{:?}", resource(&template, &role)["Policies"])
    };
    for function in ["ConnectFunction", "RetriesFunction"] {
        assert!(policies(function).contains("kms:GenerateDataKey"), "{function}");
    }
    for function in ["PostsFunction", "WebhooksFunction"] {
        assert!(!policies(function).contains("kms:GenerateDataKey"), "{function} may encrypt");
        assert!(!policies(function).contains("kms:*"), "{function}");
    }
    assert!(!policies("WebhooksFunction").contains("kms:"), "webhooks needs no KMS");
    // The cold-start warm-up describes the key in the functions that use it (and only there:
    // `webhooks` starts with `init(_, false)`); without the permission AWS answers AccessDenied.
    for function in ["ConnectFunction", "PostsFunction", "RetriesFunction"] {
        assert!(policies(function).contains("kms:DescribeKey"), "{function} warms up KMS with DescribeKey");
    }
}

/// The schedule sends exactly the job the worker understands, to the work queue.
#[test]
fn the_sweep_schedule_sends_a_valid_job() {
    let template = template();
    let target = &resource(&template, "SweepSchedule")["Targets"][0];
    assert!(format!("{:?}", target["Arn"]).contains("WorkQueue.Arn"));
    let input = target["Input"].as_str().unwrap();
    let envelope: herald::queue::Envelope = serde_json::from_str(input).unwrap();
    assert_eq!(envelope.job, herald::queue::Job::Sweep);
    // `herald dev` runs the same schedule (`worker::schedule_sweeps` every `SWEEP_PERIOD`).
    let minutes = herald::sweep::SWEEP_PERIOD.as_secs() / 60;
    assert_eq!(
        resource(&template, "SweepSchedule")["ScheduleExpression"].as_str(),
        Some(format!("rate({minutes} minutes)").as_str())
    );
}

/// What the audit found missing on AWS (F12): logs that expire, alarms before the DLQ, caps on
/// concurrency, and queue retentions that keep a dead letter longer than its source.
#[test]
fn logs_expire_alarms_watch_the_queue_and_the_functions_and_concurrency_is_capped() {
    let template = template();
    for function in ["Connect", "Posts", "Webhooks", "Retries"] {
        let logs = resource(&template, &format!("{function}Logs"));
        let config = &resource(&template, &format!("{function}Function"))["LoggingConfig"];
        assert!(format!("{:?}", config["LogGroup"]).contains(&format!("{function}Logs")), "{function} logs elsewhere");
        assert!(!logs["RetentionInDays"].is_null(), "{function}'s logs never expire");
    }
    for alarm in ["DeadLetterAlarm", "WorkQueueAgeAlarm", "FunctionErrorsAlarm", "FunctionThrottlesAlarm"] {
        assert_eq!(template["Resources"][alarm]["Type"], "AWS::CloudWatch::Alarm", "{alarm}");
    }
    let retention = |queue: &str| resource(&template, queue)["MessageRetentionPeriod"].as_u64().unwrap();
    assert!(retention("WorkQueue") < retention("DeadLetterQueue"), "a moved message keeps its enqueue time");
    let work = resource(&template, "RetriesWork");
    assert!(!work["ScalingConfig"]["MaximumConcurrency"].is_null());
    assert!(!resource(&template, "WebhooksFunction")["ReservedConcurrentExecutions"].is_null());
}

/// Platform credentials live in Secrets Manager (one secret per app): no parameter takes a
/// secret, no environment holds one, and each function names exactly the secrets its code reads
/// (`herald::startup::Function::secrets`; its role may read those, as the roles check verifies).
#[test]
fn secrets_are_named_in_the_environment_never_given() {
    use herald::startup::Function;
    let template = template();
    for (name, parameter) in template["Parameters"].as_mapping().unwrap() {
        assert!(parameter.get("NoEcho").is_none(), "parameter {name:?} takes a secret");
    }
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    let text = |v: &Value| format!("{v:?}");
    for (name, value) in globals.as_mapping().unwrap() {
        assert!(!text(value).contains("Secret"), "global {name:?} = {value:?}");
    }
    let secrets = |variables: &Value| -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for (name, value) in variables.as_mapping().into_iter().flatten() {
            let name = name.as_str().unwrap();
            let names_a_secret = ["XAppSecret", "MetaAppSecret", "LinkedinAppSecret", "ThreadsAppSecret"]
                .iter()
                .any(|s| text(value).contains(s));
            assert_eq!(names_a_secret, name.ends_with("_SECRET_ID"), "{name} = {value:?}");
            if names_a_secret {
                found.insert(name.to_owned());
            }
        }
        found
    };
    let every = herald::config::AppSecretIds {
        x: Some("x".into()),
        meta: Some("m".into()),
        linkedin: Some("l".into()),
        threads: Some("t".into()),
    };
    for function in Function::ALL {
        let logical = format!("{}{}Function", function.name()[..1].to_uppercase(), &function.name()[1..]);
        let named = secrets(&resource(&template, &logical)["Environment"]["Variables"]);
        let reads = function.secrets(&every);
        let expected: BTreeSet<String> = [
            (reads.x.is_some(), herald::config::X_SECRET_ID),
            (reads.meta.is_some(), herald::config::META_SECRET_ID),
            (reads.linkedin.is_some(), herald::config::LINKEDIN_SECRET_ID),
            (reads.threads.is_some(), herald::config::THREADS_SECRET_ID),
        ]
        .into_iter()
        .filter(|(read, _)| *read)
        .map(|(_, name)| name.to_owned())
        .collect();
        assert_eq!(named, expected, "{logical}");
    }
    for secret in ["XAppSecret", "MetaAppSecret", "LinkedinAppSecret", "ThreadsAppSecret"] {
        assert_eq!(template["Resources"][secret]["Type"], "AWS::SecretsManager::Secret");
        assert_eq!(
            resource(&template, secret)["SecretString"],
            "{}",
            "{secret}: created empty, filled by the operator"
        );
    }
}
