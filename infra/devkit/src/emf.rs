//! Test tooling: checks CloudWatch Embedded Metric Format lines against the specification's rules,
//! for the tests and for the local console (`make dev` shows a line that would be dropped).

use serde_json::Value;

/// At most this many values of one metric in one EMF document.
pub const MAX_VALUES: usize = 100;
/// At most this many metrics in one EMF directive.
pub const MAX_METRICS: usize = 100;

/// Checks a line against the EMF specification's rules; answers what is wrong.
pub fn validate(line: &str) -> Result<(), String> {
    let doc: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let aws = doc.get("_aws").ok_or("no _aws member")?;
    aws.get("Timestamp")
        .and_then(Value::as_i64)
        .ok_or("_aws.Timestamp is not an integer of milliseconds")?;
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics is not an array")?;
    if directives.is_empty() {
        return Err("no metric directive".into());
    }
    for directive in directives {
        let namespace = directive
            .get("Namespace")
            .and_then(Value::as_str)
            .ok_or("no Namespace")?;
        if namespace.is_empty() || namespace.len() > 1024 {
            return Err("Namespace must be 1 to 1024 characters".into());
        }
        let sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or("Dimensions is not an array")?;
        for set in sets {
            let set = set.as_array().ok_or("a dimension set is not an array")?;
            if set.len() > 30 {
                return Err("more than 30 dimensions in a set".into());
            }
            for dim in set {
                let name = dim.as_str().ok_or("a dimension name is not a string")?;
                if !doc.get(name).is_some_and(Value::is_string) {
                    return Err(format!("dimension {name} has no string value at the root"));
                }
            }
        }
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or("Metrics is not an array")?;
        if metrics.len() > MAX_METRICS {
            return Err("more than 100 metrics in a directive".into());
        }
        for metric in metrics {
            let name = metric
                .get("Name")
                .and_then(Value::as_str)
                .ok_or("a metric has no Name")?;
            if name.is_empty() || name.len() > 1024 {
                return Err("a metric Name must be 1 to 1024 characters".into());
            }
            match doc.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if values.len() <= MAX_VALUES && values.iter().all(Value::is_number) => {}
                Some(Value::Array(_)) => {
                    return Err(format!("{name}: more than 100 values, or not numbers"));
                }
                _ => return Err(format!("{name} has no numeric value at the root")),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validator_rejects_what_the_spec_forbids() {
        assert!(validate("{}").is_err());
        let no_value = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["service"]],"Metrics":[{"Name":"M"}]}]},"service":"s"}"#;
        assert!(validate(no_value).is_err());
        let no_dimension_value = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["service"]],"Metrics":[{"Name":"M"}]}]},"M":1}"#;
        assert!(validate(no_dimension_value).is_err());
        let ok = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["service"]],"Metrics":[{"Name":"M","Unit":"Count"}]}]},"service":"s","M":1}"#;
        assert!(validate(ok).is_ok());
    }
}
