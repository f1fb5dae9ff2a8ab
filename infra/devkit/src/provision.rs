//! Creates what template.yaml declares on the local emulators, under a name prefix so that many
//! test runs and a `make dev` session can share one DynamoDB Local.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

use crate::template::{KeyElement, PhysicalNames, TableSpec, Template, TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("creating table {table}: {message}")]
    Dynamo { table: String, message: String },
}

/// The local physical name of a table: `<prefix>-<LogicalId>`.
pub fn table_name(prefix: &str, logical_id: &str) -> String {
    format!("{prefix}-{logical_id}")
}

/// Creates every table of the template (keys, GSIs, stream, TTL) and answers their names.
pub async fn create_tables(
    client: &Client,
    template: &Template,
    prefix: &str,
) -> Result<PhysicalNames, ProvisionError> {
    let mut names = PhysicalNames::new();
    for spec in template.tables()? {
        let name = table_name(prefix, &spec.logical_id);
        create_table(client, &spec, &name).await?;
        names.insert(spec.logical_id.clone(), name);
    }
    Ok(names)
}

fn keys(elements: &[KeyElement]) -> Vec<KeySchemaElement> {
    elements
        .iter()
        .filter_map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .ok()
        })
        .collect()
}

async fn create_table(client: &Client, spec: &TableSpec, name: &str) -> Result<(), ProvisionError> {
    let fail = |message: String| ProvisionError::Dynamo {
        table: name.to_owned(),
        message,
    };
    let p = &spec.properties;
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys(&p.key_schema)));
    for a in &p.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&a.attribute_name)
                .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                .build()
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    for gsi in &p.global_secondary_indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(
                gsi.projection.projection_type.as_str(),
            ))
            .set_non_key_attributes(
                (!gsi.projection.non_key_attributes.is_empty())
                    .then(|| gsi.projection.non_key_attributes.clone()),
            )
            .build();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&gsi.index_name)
                .set_key_schema(Some(keys(&gsi.key_schema)))
                .projection(projection)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    if let Some(stream) = &p.stream_specification {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(stream.stream_view_type.as_str()))
                .build()
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    request
        .send()
        .await
        .map_err(|e| fail(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()))?;
    if let Some(ttl) = p.time_to_live_specification.as_ref().filter(|t| t.enabled) {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(&ttl.attribute_name)
                    .enabled(true)
                    .build()
                    .map_err(|e| fail(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| fail(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()))?;
    }
    Ok(())
}
