//! `vigil scale NAME N`: the count of a replicated service's replicas.

use crate::cli::ScaleArgs;
use crate::commands::Exit;
use crate::commands::control::{client, fail};

/// Ask for the count and print the replicas there are then: the new ones
/// started (not necessarily ready yet), the surplus ones stopped.
pub async fn run(args: ScaleArgs) -> Exit {
    match client(&args.control)
        .scale(&args.name, args.instances)
        .await
    {
        Ok(scaled) => {
            let name = crate::untrusted::line(&scaled.service);
            let replicas: Vec<String> = scaled
                .replicas
                .iter()
                .map(|r| crate::untrusted::line(r).into_owned())
                .collect();
            println!(
                "{name}: {} -> {} replicas ({})",
                scaled.from,
                scaled.to,
                replicas.join(", ")
            );
            Exit::Ok
        }
        Err(e) => fail("scale", &e),
    }
}
