//! Runs the Argo CD health check `deploy/argocd/health.lua` on the cases of
//! `deploy/argocd/health_test.yaml`, in a Lua 5.1 sandbox shaped like Argo
//! CD's: the global `obj` contains the resource, and only the base and table
//! libraries are loaded (Argo CD also loads a restricted `os`, which the
//! script does not use).

use std::path::PathBuf;

use mlua::{Lua, LuaOptions, StdLib, Table};
use serde::Deserialize;

/// `health_test.yaml`: the layout of Argo CD's resource_customizations tests.
#[derive(Debug, Deserialize)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthTest {
    health_status: HealthStatus,
    input_path: String,
}

#[derive(Debug, Deserialize, PartialEq)]
struct HealthStatus {
    status: String,
    message: String,
}

fn argocd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/argocd")
}

fn read(path: &str) -> String {
    let path = argocd_dir().join(path);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()))
}

/// Converts a JSON value into the Lua value Argo CD passes for it: objects
/// and arrays become tables (arrays indexed from 1), numbers become Lua 5.1
/// numbers and null becomes nil.
fn to_lua(lua: &Lua, value: &serde_json::Value) -> mlua::Result<mlua::Value> {
    Ok(match value {
        serde_json::Value::Null => mlua::Value::Nil,
        serde_json::Value::Bool(flag) => mlua::Value::Boolean(*flag),
        serde_json::Value::Number(number) => {
            mlua::Value::Number(number.as_f64().expect("JSON number fits in f64"))
        }
        serde_json::Value::String(text) => mlua::Value::String(lua.create_string(text)?),
        serde_json::Value::Array(items) => {
            let table = lua.create_table()?;
            for (index, item) in items.iter().enumerate() {
                table.set(index + 1, to_lua(lua, item)?)?;
            }
            mlua::Value::Table(table)
        }
        serde_json::Value::Object(fields) => {
            let table = lua.create_table()?;
            for (key, field) in fields {
                table.set(key.as_str(), to_lua(lua, field)?)?;
            }
            mlua::Value::Table(table)
        }
    })
}

/// Runs health.lua on `object` and returns the health it reports.
fn evaluate(script: &str, object: &serde_json::Value) -> mlua::Result<HealthStatus> {
    let lua = Lua::new_with(StdLib::TABLE, LuaOptions::default())?;
    lua.globals().set("obj", to_lua(&lua, object)?)?;

    let health: Table = lua.load(script).set_name("health.lua").eval()?;
    Ok(HealthStatus {
        status: health.get("status")?,
        message: health.get("message")?,
    })
}

#[test]
fn health_cases_match_expected() {
    let script = read("health.lua");
    let tests: HealthTests =
        serde_yaml::from_str(&read("health_test.yaml")).expect("health_test.yaml parses");
    assert!(
        tests.tests.len() >= 8,
        "health_test.yaml has {} cases",
        tests.tests.len()
    );

    for test in &tests.tests {
        let object: serde_json::Value = serde_yaml::from_str(&read(&test.input_path))
            .unwrap_or_else(|error| panic!("{} is invalid YAML: {error}", test.input_path));

        let health = evaluate(&script, &object)
            .unwrap_or_else(|error| panic!("health.lua failed on {}: {error}", test.input_path));

        assert_eq!(health, test.health_status, "case {}", test.input_path);
    }
}

#[test]
fn health_covers_every_phase() {
    let tests: HealthTests =
        serde_yaml::from_str(&read("health_test.yaml")).expect("health_test.yaml parses");
    let phases: Vec<String> = tests
        .tests
        .iter()
        .filter_map(|test| {
            let object: serde_json::Value = serde_yaml::from_str(&read(&test.input_path)).ok()?;
            object["status"]["phase"].as_str().map(str::to_owned)
        })
        .collect();

    for phase in [
        "Pending",
        "Running",
        "Paused",
        "Succeeded",
        "PartiallyFailed",
        "Failed",
    ] {
        assert!(
            phases.iter().any(|seen| seen == phase),
            "no case with phase {phase}"
        );
    }
}

#[test]
fn health_unknown_phase_is_unknown() {
    let object = serde_json::json!({
        "metadata": { "name": "future", "generation": 1 },
        "status": { "observedGeneration": 1, "phase": "Archived" },
    });

    let health = evaluate(&read("health.lua"), &object).expect("health.lua runs");

    assert_eq!(health.status, "Unknown");
    assert_eq!(health.message, "Unknown phase Archived");
}

#[test]
fn health_sandbox_has_no_string_library() {
    // Argo CD loads no `string` library by default, so a script that calls
    // one fails there: this check keeps the sandbox here as strict.
    let object = serde_json::json!({ "metadata": { "name": "x" } });
    let script = "return { status = string.upper('healthy'), message = '' }";

    let result = evaluate(script, &object);

    assert!(result.is_err(), "string library is loaded: {result:?}");
}

#[test]
fn configmap_patch_embeds_health_lua() {
    let patch: serde_yaml::Value =
        serde_yaml::from_str(&read("argocd-cm-patch.yaml")).expect("argocd-cm-patch.yaml parses");
    let embedded = patch["data"]["resource.customizations.health.masreset.dev_BulkPasswordReset"]
        .as_str()
        .expect("argocd-cm-patch.yaml has the health key");

    assert_eq!(patch["metadata"]["name"].as_str(), Some("argocd-cm"));
    assert_eq!(
        embedded,
        read("health.lua"),
        "argocd-cm-patch.yaml differs from health.lua"
    );
}
