//! Reads config `path`: logs the contents and answers ok, or an error with
//! the error code's debug text.

use vigil_sdk::{Outcome, Target, check, fs};

#[check]
fn check(target: Target) -> Result<Outcome, Outcome> {
    let path = target.require("path")?;
    match fs::read_to_string(path, 4096) {
        Ok(text) => {
            vigil_sdk::info!("{path}: {text}");
            Ok(Outcome::Ok)
        }
        Err(code) => Ok(Outcome::error(format!("{code:?}"))),
    }
}

fn main() {}
