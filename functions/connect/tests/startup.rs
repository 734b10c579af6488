//! A function started without its configuration stops its cold start with an error that names
//! the missing variable (the same `herald::startup::init` runs in every function).

use std::process::Command;

#[test]
fn missing_variable_is_named_and_the_cold_start_fails() {
    let output = Command::new(env!("CARGO_BIN_EXE_connect"))
        .env_clear()
        .env("HERALD_TABLE", "herald")
        .env("HERALD_QUEUE_URL", "http://127.0.0.1:9/000000000000/herald-work")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "started without HERALD_KMS_KEY_ID");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("HERALD_KMS_KEY_ID"), "the error does not name the variable: {printed}");
    assert!(printed.contains("\"level\":\"ERROR\""), "no structured log line: {printed}");
}
