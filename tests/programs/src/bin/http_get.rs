//! `GET` config `url` (`follow`: follow redirects, default true). Logs
//! `status N` and answers ok, or an error with the error code's debug text
//! (`ErrorCode::Denied("...")`).

use vigil_sdk::{Outcome, Target, check, http};

#[check]
fn check(target: Target) -> Result<Outcome, Outcome> {
    let url = target.require("url")?;
    let follow = target.parse_or("follow", true)?;
    match http::Request::get(url).follow_redirects(follow).send() {
        Ok(response) => {
            vigil_sdk::info!("status {}", response.status);
            Ok(Outcome::Ok)
        }
        Err(code) => Ok(Outcome::error(format!("{code:?}"))),
    }
}

fn main() {}
