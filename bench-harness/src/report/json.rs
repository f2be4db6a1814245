//! The whole report as pretty JSON. Top-level keys: `config`, `environment`,
//! `loads`, `bandwidth`, `recovery`, `summary` (see [`crate::model::Report`];
//! latency histograms are not included: write them with [`super::hgrm`]).

use std::path::Path;

use anyhow::{Context, Result};

use crate::model::Report;

/// The report as pretty-printed JSON, ending with a newline.
pub fn to_string(report: &Report) -> Result<String> {
    let mut s = serde_json::to_string_pretty(report).context("serializing the report as JSON")?;
    s.push('\n');
    Ok(s)
}

/// Writes the report as pretty-printed JSON to `path` (creating its directory).
pub fn write(path: &Path, report: &Report) -> Result<()> {
    super::write_file(path, &to_string(report)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    #[test]
    fn round_trips_with_documented_keys() {
        let report = fixtures::report();
        let s = to_string(&report).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["bandwidth", "config", "environment", "loads", "recovery", "summary"]);
        assert_eq!(v["config"]["seconds"], 5);
        let loads = v["loads"].as_array().unwrap();
        assert_eq!(loads.len(), report.loads.len());
        assert!(loads[0].get("histogram").is_none());
        // The kind of test keeps its name in the JSON (docs/bench/*.json).
        assert_eq!(loads[0]["test"], "throughput");
        assert!(loads[0]["latency"]["p99_us"].as_f64().unwrap() > 0.0);
        assert_eq!(v["summary"][0]["ratio"], 1.08);
        assert!(v["summary"][1]["raw"].is_null());
        assert_eq!(v["recovery"][0]["torn_tail"], "15:1048576");
    }

    #[test]
    fn writes_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("report.json");
        write(&path, &fixtures::report()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["environment"]["fs_type"], "ext4");
    }
}
