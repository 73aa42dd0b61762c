//! Fuzz target (see `crate::fuzz`) for the query strings of the control
//! API and the `--http` listener, taken apart exactly as the routes take
//! them (axum's `Query`): a query, or a rejection that says why.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::Uri;
use axum::response::IntoResponse;

use super::api::JournalQuery;
use super::server::HistoryQuery;
use crate::fuzz::{self, text};
use crate::journal::{Event, Line};

#[test]
fn fuzz_query_strings() {
    let dict = &[
        "service=",
        "follow=true",
        "follow=1",
        "lines=",
        "since=",
        "kind=",
        "exited,killed",
        "verbose",
        "&",
        "=",
        "%",
        "%ff",
        "%00",
        "%2",
        "+",
        "#",
        "?",
        ";",
        "lines=-1",
        "lines=18446744073709551616",
        "since=2026-12-06T22:00:00.000Z",
    ];
    let lines = [
        Line {
            ts: "2026-12-06T22:00:00.000Z".into(),
            service: Some("web".into()),
            event: Event::Warning {
                message: "m".into(),
            },
        },
        Line {
            ts: "2026-12-06T22:00:01.000Z".into(),
            service: None,
            event: Event::Acquired { pid: 1 },
        },
    ];
    fuzz::run("query-strings", dict, 4096, |input| {
        let query = text(input);
        // What hyper refuses never reaches a route.
        let Ok(uri) = format!("/v1/journal?{query}").parse::<Uri>() else {
            return;
        };
        match Query::<JournalQuery>::try_from_uri(&uri) {
            Ok(Query(q)) => {
                for line in &lines {
                    let _ = q.matches(line);
                }
            }
            Err(rejection) => {
                let response = rejection.into_response();
                assert!(response.status().is_client_error());
            }
        }
        if let Err(rejection) = Query::<HistoryQuery>::try_from_uri(&uri) {
            assert!(rejection.into_response().status().is_client_error());
        }
        if let Err(rejection) = Query::<HashMap<String, String>>::try_from_uri(&uri) {
            assert!(rejection.into_response().status().is_client_error());
        }
    });
}
