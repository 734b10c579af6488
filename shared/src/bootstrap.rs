//! Creates Herald's table, KMS key and queues in the local AWS emulation, from [`crate::schema`].
//! Idempotent: what exists already is left as it is.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::BoxError;
use crate::aws::AwsClients;
use crate::schema::{
    DLQ_RETENTION_SECONDS, GSIS, PARTITION_KEY, ResourceNames, SORT_KEY, TTL_ATTRIBUTE, WORK_QUEUE_MAX_RECEIVES,
    WORK_QUEUE_VISIBILITY_SECONDS,
};

/// What the bootstrap made: everything the functions' configuration needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub table: String,
    pub key_id: String,
    pub work_queue_url: String,
    pub dead_letter_queue_url: String,
}

pub async fn bootstrap(aws: &AwsClients, names: &ResourceNames) -> Result<Resources, BoxError> {
    create_table(&aws.dynamodb, &names.table).await?;
    let key_id = create_key(&aws.kms, &names.key_alias).await?;
    let (work_queue_url, dead_letter_queue_url) = create_queues(&aws.sqs, names).await?;
    Ok(Resources { table: names.table.clone(), key_id, work_queue_url, dead_letter_queue_url })
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("name and type are set")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type are set")
}

async fn create_table(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), BoxError> {
    let mut create = dynamodb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PARTITION_KEY, KeyType::Hash))
        .key_schema(key(SORT_KEY, KeyType::Range))
        .attribute_definitions(string_attribute(PARTITION_KEY))
        .attribute_definitions(string_attribute(SORT_KEY));
    for gsi in GSIS {
        create = create
            .attribute_definitions(string_attribute(gsi.partition_key))
            .attribute_definitions(string_attribute(gsi.sort_key))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(gsi.name)
                    .key_schema(key(gsi.partition_key, KeyType::Hash))
                    .key_schema(key(gsi.sort_key, KeyType::Range))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()?,
            );
    }
    match create.send().await {
        Ok(_) => {}
        Err(err) => match aws_sdk_dynamodb::Error::from(err) {
            aws_sdk_dynamodb::Error::ResourceInUseException(_) => return Ok(()),
            other => return Err(other.into()),
        },
    }
    dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder().enabled(true).attribute_name(TTL_ATTRIBUTE).build()?,
        )
        .send()
        .await?;
    Ok(())
}

/// Stores the platform apps' credentials (JSON, as [`crate::secrets`] reads them; X, Meta, LinkedIn,
/// Threads in the order of [`ResourceNames::app_secrets`]) as secrets, replacing what they held, and
/// names them for the functions' configuration.
pub async fn store_app_secrets(
    secrets: &aws_sdk_secretsmanager::Client,
    names: &ResourceNames,
    values: [&str; 4],
) -> Result<crate::config::AppSecretIds, BoxError> {
    let mut arns = Vec::with_capacity(4);
    for (name, value) in names.app_secrets.iter().zip(values) {
        let arn = match secrets.create_secret().name(name).secret_string(value).send().await {
            Ok(created) => created.arn,
            Err(err) => match aws_sdk_secretsmanager::Error::from(err) {
                aws_sdk_secretsmanager::Error::ResourceExistsException(_) => {
                    secrets.put_secret_value().secret_id(name).secret_string(value).send().await?.arn
                }
                other => return Err(other.into()),
            },
        };
        arns.push(arn.ok_or("Secrets Manager returned no ARN")?);
    }
    let mut arns = arns.into_iter().map(Some);
    Ok(crate::config::AppSecretIds {
        x: arns.next().flatten(),
        meta: arns.next().flatten(),
        linkedin: arns.next().flatten(),
        threads: arns.next().flatten(),
    })
}

async fn create_key(kms: &aws_sdk_kms::Client, alias: &str) -> Result<String, BoxError> {
    if let Ok(found) = kms.describe_key().key_id(alias).send().await
        && let Some(arn) = found.key_metadata.and_then(|m| m.arn)
    {
        return Ok(arn);
    }
    let key = kms
        .create_key()
        .description("Herald token data-key wrapping key (local)")
        .send()
        .await?
        .key_metadata
        .and_then(|m| m.arn)
        .ok_or("CreateKey returned no key ARN")?;
    kms.create_alias().alias_name(alias).target_key_id(&key).send().await?;
    Ok(key)
}

async fn create_queues(sqs: &aws_sdk_sqs::Client, names: &ResourceNames) -> Result<(String, String), BoxError> {
    let dlq_url = sqs
        .create_queue()
        .queue_name(&names.dead_letter_queue)
        .attributes(QueueAttributeName::MessageRetentionPeriod, DLQ_RETENTION_SECONDS.to_string())
        .send()
        .await?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or("GetQueueAttributes returned no ARN")?;
    let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": WORK_QUEUE_MAX_RECEIVES });
    let work_url = sqs
        .create_queue()
        .queue_name(&names.work_queue)
        .attributes(QueueAttributeName::VisibilityTimeout, WORK_QUEUE_VISIBILITY_SECONDS.to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    Ok((work_url, dlq_url))
}
