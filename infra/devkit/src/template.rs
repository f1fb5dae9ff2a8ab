//! Reads template.yaml: CloudFormation's short-form tags (`!Ref`, `!GetAtt`, `!Sub`, …) become their
//! JSON long forms, and the parts local tooling needs (tables, functions' environments, parameters)
//! come out typed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("resource {0} is not in the template")]
    NoSuchResource(String),
    #[error("resource {id} has an unexpected shape: {source}")]
    Shape {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot resolve {0} locally")]
    Unresolvable(String),
}

/// The template at the root of the repository.
pub fn default_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

/// A parsed template in CloudFormation's JSON form.
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

/// One `AWS::DynamoDB::Table` of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    pub properties: TableProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableProperties {
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub key_schema: Vec<KeyElement>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<GlobalSecondaryIndex>,
    pub stream_specification: Option<StreamSpecification>,
    pub time_to_live_specification: Option<TimeToLiveSpecification>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    pub attribute_name: String,
    pub attribute_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyElement {
    pub attribute_name: String,
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GlobalSecondaryIndex {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: Projection,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Projection {
    pub projection_type: String,
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpecification {
    pub stream_view_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeToLiveSpecification {
    pub attribute_name: String,
    pub enabled: bool,
}

/// One route of the HTTP API: an `HttpApi` event of a function.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
    /// Scopes the authorizer demands; `None` for a route without authorizer.
    pub scopes: Option<Vec<String>>,
}

/// One Lambda function of the template, with what local tooling needs to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The workspace binary (`Metadata.BuildProperties.Binary`).
    pub binary: Option<String>,
    pub timeout_secs: u64,
    pub memory_mb: u64,
    pub triggers: Vec<Trigger>,
}

/// An event source of a function other than the HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A DynamoDB stream mapping.
    Stream {
        table: String,
        batch_size: i32,
        /// `FilterCriteria` patterns on `eventName` (the only kind this project uses).
        event_names: Option<Vec<String>>,
        /// `None`: retried until the record leaves the stream (`-1`).
        maximum_retry_attempts: Option<u32>,
        on_failure_queue: Option<String>,
    },
    /// An SQS mapping.
    Queue { queue: String, batch_size: i32 },
    /// An EventBridge Scheduler schedule, `rate(…)`.
    Schedule { every_secs: u64 },
}

/// How local tooling names what CloudFormation would name: the physical name of each resource.
pub type PhysicalNames = BTreeMap<String, String>;

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn load_default() -> Result<Self, TemplateError> {
        Self::load(&default_path())
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let yaml: serde_norway::Value = serde_norway::from_str(text)?;
        Ok(Self {
            root: to_json(yaml),
        })
    }

    fn resources(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.root
            .get("Resources")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
    }

    /// Logical ids of the resources of one type, in template order.
    pub fn resources_of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.resources()
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
            .map(|(id, _)| id)
    }

    /// A resource's `Properties` in CloudFormation's JSON form.
    pub fn resource_properties(&self, logical_id: &str) -> Result<&Value, TemplateError> {
        self.properties(logical_id)
    }

    fn properties(&self, logical_id: &str) -> Result<&Value, TemplateError> {
        self.resources()
            .find(|(id, _)| *id == logical_id)
            .map(|(_, r)| r.get("Properties").unwrap_or(&Value::Null))
            .ok_or_else(|| TemplateError::NoSuchResource(logical_id.to_owned()))
    }

    /// Every DynamoDB table the template declares.
    pub fn tables(&self) -> Result<Vec<TableSpec>, TemplateError> {
        self.resources_of_type("AWS::DynamoDB::Table")
            .map(|id| {
                let properties =
                    serde_json::from_value(self.properties(id)?.clone()).map_err(|source| {
                        TemplateError::Shape {
                            id: id.clone(),
                            source,
                        }
                    })?;
                Ok(TableSpec {
                    logical_id: id.clone(),
                    properties,
                })
            })
            .collect()
    }

    /// A function resource, typed (with what local tooling reads of it).
    fn function(&self, logical_id: &str) -> Result<FunctionResource, TemplateError> {
        let resource = self
            .resources()
            .find(|(id, _)| *id == logical_id)
            .map(|(_, r)| r)
            .ok_or_else(|| TemplateError::NoSuchResource(logical_id.to_owned()))?;
        serde_json::from_value(resource.clone()).map_err(|source| TemplateError::Shape {
            id: logical_id.to_owned(),
            source,
        })
    }

    /// Every HTTP API route, sorted by path and method.
    pub fn http_routes(&self) -> Result<Vec<Route>, TemplateError> {
        let mut routes = Vec::new();
        for id in self.resources_of_type("AWS::Serverless::Function") {
            for event in self.function(id)?.properties.events.into_values() {
                let EventSource::HttpApi(api) = event else {
                    continue;
                };
                let public = api.auth.authorizer.as_deref() == Some("NONE");
                routes.push(Route {
                    method: api.method.to_ascii_uppercase(),
                    path: api.path,
                    function: id.clone(),
                    scopes: (!public).then_some(api.auth.authorization_scopes),
                });
            }
        }
        routes.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
        Ok(routes)
    }

    /// Every `AWS::Serverless::Function`, with `Globals.Function` applied.
    pub fn functions(&self) -> Result<Vec<FunctionSpec>, TemplateError> {
        let globals: Globals = match self.root.get("Globals") {
            Some(globals) => {
                serde_json::from_value(globals.clone()).map_err(|source| TemplateError::Shape {
                    id: "Globals".to_owned(),
                    source,
                })?
            }
            None => Globals::default(),
        };
        let mut out = Vec::new();
        for id in self.resources_of_type("AWS::Serverless::Function") {
            let function = self.function(id)?;
            let props = function.properties;
            let mut triggers = Vec::new();
            for event in props.events.into_values() {
                match event {
                    EventSource::DynamoDB(stream) => triggers.push(Trigger::Stream {
                        table: stream.stream.resource(id, "Stream")?,
                        batch_size: stream.batch_size.unwrap_or(10),
                        event_names: stream.filter_criteria.map(|criteria| {
                            criteria
                                .filters
                                .iter()
                                .filter_map(|f| {
                                    serde_json::from_str::<EventNamePattern>(&f.pattern).ok()
                                })
                                .flat_map(|pattern| pattern.event_name)
                                .collect()
                        }),
                        // -1 (or absent, Lambda's default): retry until the record expires.
                        maximum_retry_attempts: stream
                            .maximum_retry_attempts
                            .and_then(|n| u32::try_from(n).ok()),
                        on_failure_queue: stream
                            .destination_config
                            .and_then(|d| d.on_failure.destination.target().map(str::to_owned)),
                    }),
                    EventSource::SQS(queue) => triggers.push(Trigger::Queue {
                        queue: queue.queue.resource(id, "Queue")?,
                        batch_size: queue.batch_size.unwrap_or(10),
                    }),
                    EventSource::ScheduleV2(schedule) => {
                        if let Some(every_secs) = rate_secs(&schedule.schedule_expression) {
                            triggers.push(Trigger::Schedule { every_secs });
                        }
                    }
                    EventSource::HttpApi(_) | EventSource::Other => {}
                }
            }
            out.push(FunctionSpec {
                logical_id: id.clone(),
                binary: function.metadata.build_properties.binary,
                timeout_secs: props.timeout.or(globals.function.timeout).unwrap_or(3),
                memory_mb: props
                    .memory_size
                    .or(globals.function.memory_size)
                    .unwrap_or(128),
                triggers,
            });
        }
        Ok(out)
    }

    /// One `AWS::Serverless::Function` by logical id, with `Globals.Function` applied.
    pub fn function_spec(&self, logical_id: &str) -> Result<FunctionSpec, TemplateError> {
        self.functions()?
            .into_iter()
            .find(|f| f.logical_id == logical_id)
            .ok_or_else(|| TemplateError::NoSuchResource(logical_id.to_owned()))
    }

    /// Whether the template declares this parameter.
    pub fn has_parameter(&self, name: &str) -> bool {
        self.root
            .get("Parameters")
            .and_then(|p| p.get(name))
            .is_some()
    }

    pub fn parameter_default(&self, name: &str) -> Option<String> {
        let default = self.root.get("Parameters")?.get(name)?.get("Default")?;
        scalar(default)
    }

    /// The environment a function gets: `Globals.Function.Environment` merged with its own, with
    /// `!Ref`s resolved to the local physical names or to parameter values (`overrides` first, then
    /// the parameter's default).
    pub fn function_env(
        &self,
        logical_id: &str,
        names: &PhysicalNames,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, TemplateError> {
        let global = self
            .root
            .pointer("/Globals/Function/Environment/Variables")
            .and_then(Value::as_object);
        let own = self
            .properties(logical_id)?
            .pointer("/Environment/Variables")
            .and_then(Value::as_object);
        let mut env = BTreeMap::new();
        for (name, value) in global
            .into_iter()
            .flatten()
            .chain(own.into_iter().flatten())
        {
            env.insert(name.clone(), self.resolve(value, names, overrides)?);
        }
        Ok(env)
    }

    fn resolve(
        &self,
        value: &Value,
        names: &PhysicalNames,
        overrides: &BTreeMap<String, String>,
    ) -> Result<String, TemplateError> {
        if let Some(s) = scalar(value) {
            return Ok(s);
        }
        if let Some(target) = value.get("Ref").and_then(Value::as_str) {
            if let Some(name) = names.get(target) {
                return Ok(name.clone());
            }
            if let Some(v) = overrides.get(target) {
                return Ok(v.clone());
            }
            if let Some(v) = self.parameter_default(target) {
                return Ok(v);
            }
        }
        // `!Sub "text ${Name}"`: each `${Name}` resolved as a `!Ref Name`.
        if let Some(text) = value.get("Fn::Sub").and_then(Value::as_str) {
            let mut out = String::new();
            let mut rest = text;
            while let Some(start) = rest.find("${") {
                let end = rest[start..]
                    .find('}')
                    .ok_or_else(|| TemplateError::Unresolvable(value.to_string()))?;
                out.push_str(&rest[..start]);
                let name = &rest[start + 2..start + end];
                out.push_str(&self.resolve(
                    &serde_json::json!({ "Ref": name }),
                    names,
                    overrides,
                )?);
                rest = &rest[start + end + 1..];
            }
            out.push_str(rest);
            return Ok(out);
        }
        Err(TemplateError::Unresolvable(value.to_string()))
    }
}

/// `Globals` of a SAM template: what local tooling reads of it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Globals {
    #[serde(default)]
    function: FunctionGlobals,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FunctionGlobals {
    timeout: Option<u64>,
    memory_size: Option<u64>,
}

/// An `AWS::Serverless::Function` resource.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FunctionResource {
    #[serde(default)]
    metadata: FunctionMetadata,
    #[serde(default)]
    properties: FunctionProperties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FunctionMetadata {
    #[serde(default)]
    build_properties: BuildProperties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BuildProperties {
    binary: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FunctionProperties {
    timeout: Option<u64>,
    memory_size: Option<u64>,
    #[serde(default)]
    events: BTreeMap<String, EventSource>,
}

/// A function's event source, by its `Type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "Type", content = "Properties")]
#[allow(clippy::upper_case_acronyms)]
enum EventSource {
    HttpApi(HttpApiEvent),
    DynamoDB(StreamEventSource),
    SQS(QueueEventSource),
    ScheduleV2(ScheduleEventSource),
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleEventSource {
    schedule_expression: String,
}

/// The period of a `rate(…)` schedule expression (`cron(…)` is not played locally).
fn rate_secs(expression: &str) -> Option<u64> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (value, unit) = inner.trim().split_once(' ')?;
    let value: u64 = value.parse().ok()?;
    let unit_secs = match unit.trim().trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    Some(value * unit_secs)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HttpApiEvent {
    method: String,
    path: String,
    #[serde(default)]
    auth: HttpApiAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HttpApiAuth {
    authorizer: Option<String>,
    #[serde(default)]
    authorization_scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamEventSource {
    stream: Reference,
    batch_size: Option<i32>,
    filter_criteria: Option<FilterCriteria>,
    maximum_retry_attempts: Option<i64>,
    destination_config: Option<DestinationConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueEventSource {
    queue: Reference,
    batch_size: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FilterCriteria {
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Filter {
    pattern: String,
}

/// A filter pattern on `eventName` (the only kind this project uses).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventNamePattern {
    #[serde(default)]
    event_name: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DestinationConfig {
    on_failure: Destination,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Destination {
    destination: Reference,
}

/// A value that names another resource (`!GetAtt Resource.Arn`), or anything else.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Reference {
    GetAtt {
        #[serde(rename = "Fn::GetAtt")]
        get_att: (String, String),
    },
    Other(serde::de::IgnoredAny),
}

impl Reference {
    /// The logical id of the resource named.
    fn target(&self) -> Option<&str> {
        match self {
            Reference::GetAtt { get_att } => Some(&get_att.0),
            Reference::Other(_) => None,
        }
    }

    /// The logical id, or why this value cannot be followed locally.
    fn resource(&self, function: &str, key: &str) -> Result<String, TemplateError> {
        self.target().map(str::to_owned).ok_or_else(|| {
            TemplateError::Unresolvable(format!("{function}: {key} is not a !GetAtt of a resource"))
        })
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// YAML with CloudFormation tags → CloudFormation JSON (`!Ref X` → `{"Ref": "X"}`,
/// `!GetAtt A.B` → `{"Fn::GetAtt": ["A", "B"]}`, `!Other v` → `{"Fn::Other": v}`).
fn to_json(value: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).unwrap_or(Value::Null),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    other => serde_norway::to_string(&other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                out.insert(key, to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = to_json(tagged.value);
            let mut out = Map::new();
            match tag {
                "Ref" | "Condition" => {
                    out.insert(tag.to_owned(), inner);
                }
                "GetAtt" => {
                    let parts = match inner {
                        Value::String(s) => match s.split_once('.') {
                            Some((a, b)) => Value::Array(vec![a.into(), b.into()]),
                            None => Value::String(s),
                        },
                        other => other,
                    };
                    out.insert("Fn::GetAtt".to_owned(), parts);
                }
                other => {
                    out.insert(format!("Fn::{other}"), inner);
                }
            }
            Value::Object(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
Parameters:
  Limit: {Type: Number, Default: 10}
Globals:
  Function:
    Environment:
      Variables:
        TABLE: !Ref Things
Resources:
  Things:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          LIMIT: !Ref Limit
  Other:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          ARN: !GetAtt Things.Arn
"#;

    #[test]
    fn short_form_tags_become_long_forms() {
        let t = Template::parse(SAMPLE).unwrap();
        let arn = t
            .properties("Other")
            .unwrap()
            .pointer("/Environment/Variables/ARN")
            .unwrap();
        assert_eq!(arn, &serde_json::json!({"Fn::GetAtt": ["Things", "Arn"]}));
    }

    #[test]
    fn tables_are_read_typed() {
        let t = Template::parse(SAMPLE).unwrap();
        let tables = t.tables().unwrap();
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].logical_id, "Things");
        assert_eq!(
            tables[0]
                .properties
                .stream_specification
                .as_ref()
                .unwrap()
                .stream_view_type,
            "NEW_IMAGE"
        );
    }

    #[test]
    fn env_refs_resolve_to_local_names_and_parameters() {
        let t = Template::parse(SAMPLE).unwrap();
        let names = PhysicalNames::from([("Things".to_owned(), "local-Things".to_owned())]);
        let env = t.function_env("Fn", &names, &BTreeMap::new()).unwrap();
        assert_eq!(env["TABLE"], "local-Things");
        assert_eq!(env["LIMIT"], "10");
        let overrides = BTreeMap::from([("Limit".to_owned(), "3".to_owned())]);
        assert_eq!(
            t.function_env("Fn", &names, &overrides).unwrap()["LIMIT"],
            "3"
        );
        let err = t
            .function_env("Other", &names, &BTreeMap::new())
            .unwrap_err();
        assert!(matches!(err, TemplateError::Unresolvable(_)));
    }

    /// infra/openapi.yaml documents exactly the routes template.yaml declares, with the same scopes.
    #[test]
    fn the_openapi_document_matches_the_template_routes() {
        let t = Template::load_default().unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml");
        let doc: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let doc = to_json(doc);
        let mut documented = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let security = op.get("security").or_else(|| doc.get("security")).unwrap();
                let scopes = security.as_array().unwrap().first().map(|req| {
                    req["bearer"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_owned())
                        .collect()
                });
                documented.push((method.to_ascii_uppercase(), path.clone(), scopes));
            }
        }
        documented.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        let declared: Vec<_> = t
            .http_routes()
            .unwrap()
            .into_iter()
            .map(|r| (r.method, r.path, r.scopes))
            .collect();
        assert_eq!(documented, declared);
    }

    #[test]
    fn the_project_functions_have_binaries_and_triggers() {
        let t = Template::load_default().unwrap();
        let functions = t.functions().unwrap();
        assert!(
            functions.iter().all(|f| f.binary.is_some()),
            "every function names its binary"
        );
        let relay = t.function_spec("OutboxRelayFunction").unwrap();
        assert!(matches!(
            t.function_spec("NoSuchFunction"),
            Err(TemplateError::NoSuchResource(id)) if id == "NoSuchFunction"
        ));
        assert_eq!(
            relay.triggers,
            [Trigger::Stream {
                table: "OutboxTable".into(),
                batch_size: 100,
                event_names: Some(vec!["INSERT".into()]),
                maximum_retry_attempts: None,
                on_failure_queue: None,
            }]
        );
        let consumer = t.function_spec("OrderEventsFunction").unwrap();
        assert_eq!(
            consumer.triggers,
            [Trigger::Queue {
                queue: "OrderEventsQueue".into(),
                batch_size: 10
            }]
        );
        assert_eq!((consumer.timeout_secs, consumer.memory_mb), (20, 128));
    }

    #[test]
    fn every_function_has_an_errors_and_throttles_alarm() {
        let t = Template::load_default().unwrap();
        let alarms: Vec<&Value> = t
            .resources()
            .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
            .map(|(_, r)| &r["Properties"])
            .collect();
        for f in t.resources_of_type("AWS::Serverless::Function") {
            let watched = |metric: &str| {
                alarms.iter().any(|a| {
                    a["Metrics"].as_array().into_iter().flatten().any(|m| {
                        let stat = &m["MetricStat"]["Metric"];
                        stat["MetricName"] == metric
                            && stat["Dimensions"][0]["Value"] == serde_json::json!({"Ref": f})
                    })
                })
            };
            assert!(
                watched("Errors") && watched("Throttles"),
                "{f} has no errors-and-throttles alarm"
            );
        }
    }

    #[test]
    fn the_relay_retries_until_records_expire_and_lag_and_dead_letters_are_alarmed() {
        let t = Template::load_default().unwrap();
        let relay = t.resource_properties("OutboxRelayFunction").unwrap();
        let mapping = &relay["Events"]["Outbox"]["Properties"];
        assert_eq!(mapping["MaximumRetryAttempts"], -1);
        assert_eq!(mapping["MaximumRecordAgeInSeconds"], -1);
        assert!(
            mapping.get("DestinationConfig").is_none(),
            "the relay sets records aside itself, whole"
        );
        let alarms: Vec<&Value> = t
            .resources()
            .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
            .map(|(_, r)| &r["Properties"])
            .collect();
        let lag = alarms
            .iter()
            .find(|a| {
                a["MetricName"] == "IteratorAge"
                    && a["Dimensions"][0]["Value"]
                        == serde_json::json!({"Ref": "OutboxRelayFunction"})
            })
            .expect("an IteratorAge alarm on the relay");
        let window = lag["Period"].as_u64().unwrap() * lag["EvaluationPeriods"].as_u64().unwrap();
        assert!(window <= 600, "the lag alarm speaks within minutes");
        assert!(lag["Threshold"].as_u64().unwrap() <= 300_000);
        assert!(
            alarms.iter().any(|a| a["Dimensions"][0]["Value"]
                == serde_json::json!({"Fn::GetAtt": ["RelayFailureQueue", "QueueName"]})),
            "the relay's dead-letter queue is alarmed"
        );
    }

    /// The statements of a function's inline policies.
    fn statements<'a>(t: &'a Template, function: &str) -> Vec<&'a Value> {
        let props = t.resource_properties(function).unwrap();
        props["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["Statement"].as_array().into_iter().flatten())
            .collect()
    }

    fn actions(statement: &Value) -> Vec<&str> {
        match &statement["Action"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    fn same_set(list: &Value, expected: &[Value]) -> bool {
        // One value, or a list of them.
        let mut got: Vec<String> = match list {
            Value::Array(items) => items.iter().map(Value::to_string).collect(),
            Value::Null => Vec::new(),
            one => vec![one.to_string()],
        };
        let mut want: Vec<String> = expected.iter().map(Value::to_string).collect();
        got.sort();
        want.sort();
        got == want
    }

    /// The roles of the functions whose policies hold this SAM policy template for `target`.
    fn granted(t: &Template, policy: &str, key: &str, target: &str) -> Vec<Value> {
        t.resources_of_type("AWS::Serverless::Function")
            .filter(|f| {
                let props = t.resource_properties(f).unwrap();
                props["Policies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p[policy][key]["Fn::GetAtt"][0].as_str() == Some(target))
            })
            .map(|f| serde_json::json!({"Fn::GetAtt": [format!("{f}Role"), "Arn"]}))
            .collect()
    }

    /// The statements of the resource policies of `kind` that apply to `target` (a `Ref`).
    fn resource_policy<'a>(
        t: &'a Template,
        kind: &str,
        list: &str,
        target: &str,
    ) -> Vec<&'a Value> {
        let reference = serde_json::json!({"Ref": target});
        t.resources()
            .filter(|(_, r)| r["Type"] == kind)
            .map(|(_, r)| &r["Properties"])
            .filter(|p| p[list].as_array().is_some_and(|l| l.contains(&reference)))
            .flat_map(|p| {
                p["PolicyDocument"]["Statement"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .collect()
    }

    fn denies_all_but(statements: &[&Value], action: &str, key: &str, allowed: &[Value]) -> bool {
        statements.iter().any(|s| {
            s["Effect"] == "Deny"
                && s["Principal"] == "*"
                && actions(s).contains(&action)
                && same_set(&s["Condition"]["ArnNotEquals"][key], allowed)
        })
    }

    #[test]
    fn only_the_functions_that_publish_or_send_may_and_queues_hear_only_their_topic() {
        let t = Template::load_default().unwrap();
        // The events topic: only the functions granted Publish may publish.
        let publishers = granted(&t, "SNSPublishMessagePolicy", "TopicName", "EventsTopic");
        assert_eq!(publishers.len(), 2, "the relay and the reconciler");
        let topic = resource_policy(&t, "AWS::SNS::TopicPolicy", "Topics", "EventsTopic");
        assert!(denies_all_but(
            &topic,
            "sns:Publish",
            "aws:PrincipalArn",
            &publishers
        ));
        // A queue subscribed to a topic hears only that topic.
        for id in t.resources_of_type("AWS::SNS::Subscription") {
            let sub = t.resource_properties(id).unwrap();
            let queue = sub["Endpoint"]["Fn::GetAtt"][0].as_str().unwrap();
            let statements = resource_policy(&t, "AWS::SQS::QueuePolicy", "Queues", queue);
            let only_topic = [sub["TopicArn"].clone()];
            assert!(
                denies_all_but(&statements, "sqs:SendMessage", "aws:SourceArn", &only_topic),
                "{queue}: only its topic may send to it"
            );
            assert!(
                granted(&t, "SQSSendMessagePolicy", "QueueName", queue).is_empty(),
                "{queue}: no function sends to it directly"
            );
        }
        // The relay's dead-letter queue: only the relay.
        let relay = granted(&t, "SQSSendMessagePolicy", "QueueName", "RelayFailureQueue");
        assert_eq!(relay.len(), 1);
        let statements =
            resource_policy(&t, "AWS::SQS::QueuePolicy", "Queues", "RelayFailureQueue");
        assert!(denies_all_but(
            &statements,
            "sqs:SendMessage",
            "aws:PrincipalArn",
            &relay
        ));
    }

    #[test]
    fn the_reconciler_waits_for_exactly_the_consumers_the_topic_delivers_to() {
        let t = Template::load_default().unwrap();
        // What the subscriptions deliver: (type, consumer name of the function on that queue).
        let mut delivered = std::collections::BTreeSet::new();
        for id in t.resources_of_type("AWS::SNS::Subscription") {
            let sub = t.resource_properties(id).unwrap();
            let queue = sub["Endpoint"]["Fn::GetAtt"][0].as_str().unwrap();
            for f in t.resources_of_type("AWS::Serverless::Function") {
                let props = t.resource_properties(f).unwrap();
                let reads_queue =
                    props["Events"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .any(|(_, e)| {
                            e["Type"] == "SQS" && e["Properties"]["Queue"]["Fn::GetAtt"][0] == queue
                        });
                if !reads_queue {
                    continue;
                }
                let name = props["Environment"]["Variables"]["CONSUMER_NAME"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{f} names itself in CONSUMER_NAME"));
                for event_type in sub["FilterPolicy"]["type"].as_array().unwrap() {
                    delivered.insert((event_type.as_str().unwrap().to_owned(), name.to_owned()));
                }
            }
        }
        // What the reconciler waits for.
        let reconciler = t.resource_properties("OutboxReconcilerFunction").unwrap();
        let raw = reconciler["Environment"]["Variables"]["EVENT_CONSUMERS"]
            .as_str()
            .unwrap();
        let mut waited = std::collections::BTreeSet::new();
        for entry in raw.split(';') {
            let (event_type, names) = entry.split_once('=').unwrap();
            for name in names.split(',') {
                waited.insert((event_type.trim().to_owned(), name.trim().to_owned()));
            }
        }
        assert!(!delivered.is_empty());
        assert_eq!(waited, delivered);
    }

    #[test]
    fn create_order_puts_orders_and_counts_quota_and_nothing_more() {
        let t = Template::load_default().unwrap();
        let orders = serde_json::json!({"Fn::GetAtt": ["OrdersTable", "Arn"]});
        let mut seen = Vec::new();
        for s in statements(&t, "CreateOrderFunction") {
            assert_eq!(s["Effect"], "Allow");
            assert_ne!(s["Resource"], "*", "{s}");
            for action in actions(s) {
                assert!(
                    !action.contains('*') && !action.ends_with("DeleteItem"),
                    "{action}"
                );
                if s["Resource"] != orders {
                    continue;
                }
                let keys = |op: &str| s["Condition"][op]["dynamodb:LeadingKeys"].clone();
                match action {
                    "dynamodb:GetItem" => {}
                    "dynamodb:PutItem" => {
                        assert_eq!(
                            keys("ForAllValues:StringNotLike"),
                            serde_json::json!(["quota#*"])
                        )
                    }
                    "dynamodb:UpdateItem" => {
                        assert_eq!(
                            keys("ForAllValues:StringLike"),
                            serde_json::json!(["quota#*"])
                        )
                    }
                    other => panic!("create-order may not {other} on OrdersTable"),
                }
                seen.push(action);
            }
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem"
            ]
        );
    }

    #[test]
    fn the_project_template_parses_and_declares_its_tables() {
        let t = Template::load_default().unwrap();
        let mut ids: Vec<_> = t
            .tables()
            .unwrap()
            .into_iter()
            .map(|t| t.logical_id)
            .collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                "InboxTable",
                "OrdersTable",
                "OutboxTable",
                "PaymentsTable",
                "ProductsTable",
                "ShipmentsTable",
                "StockAdjustmentsTable"
            ]
        );
    }
}
