//! `vigil journal [-f] [-n N] [NAME]`: the journal of a running vigil.

use std::io::Write;

use crate::cli::JournalArgs;
use crate::commands::Exit;
use crate::commands::control::{client, fail};
use crate::control::api::JournalQuery;
use crate::journal::Line;
use crate::untrusted;

pub async fn run(args: JournalArgs) -> Exit {
    let query = JournalQuery {
        service: args.name.clone(),
        follow: args.follow,
        lines: Some(args.lines),
    };
    let mut stream = match client(&args.control).journal(&query).await {
        Ok(s) => s,
        Err(e) => return fail("journal", &e),
    };
    let mut out = std::io::stdout().lock();
    while let Some(line) = stream.next().await {
        let text = match line {
            Ok(line) if args.json => serde_json::to_string(&line).unwrap_or_default(),
            Ok(line) => format_line(&line),
            Err(e) => {
                eprintln!("vigil journal: {e}");
                return Exit::Failed;
            }
        };
        // A closed pipe (`| head`) ends the command quietly.
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            return Exit::Ok;
        }
    }
    Exit::Ok
}

/// `TIME SERVICE KIND key=value ...`, one line, escaped for a terminal
/// ([`untrusted`]: the fields carry what checks and services said);
/// `--json` prints the exact line instead.
pub fn format_line(line: &Line) -> String {
    let fields = line.event.fields_text();
    let service = untrusted::line(line.service.as_deref().unwrap_or("vigil"));
    let ts = untrusted::line(&line.ts);
    format!("{ts} {service} {} {fields}", line.event.kind())
        .trim_end()
        .to_string()
}
