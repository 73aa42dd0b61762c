//! The layers of the crate, as data, and the test that holds them: a
//! module may use the modules of its own layer and the ones below, never
//! one above (ARCHITECTURE.md says why each module sits where it does).

/// From the ground up; a module's index is its layer.
#[cfg(test)]
const LAYERS: &[&[&str]] = &[
    &[
        "units",
        "procfs",
        "cgroup",
        "sync",
        "tail",
        "untrusted",
        "signals",
        "test_support",
        "fuzz",
    ],
    &["wasm"],
    &["config"],
    &["journal"],
    &["supervisor"],
    &["control", "replay"],
    &["daemon"],
    &["app"],
    &["cli", "commands", "probe"],
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::LAYERS;

    fn layer_of(module: &str) -> Option<usize> {
        LAYERS.iter().position(|layer| layer.contains(&module))
    }

    /// Every `crate::MODULE` named outside comments in `source`.
    fn uses(source: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for line in source.lines() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
        found
    }

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The edges between top-level modules, `(from, to)`.
    fn edges() -> BTreeSet<(String, String)> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut edges = BTreeSet::new();
        for file in files {
            let relative = file.strip_prefix(&src).expect("under src");
            let first = relative
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .expect("utf-8 path");
            let module = first.trim_end_matches(".rs");
            if matches!(module, "main" | "lib" | "layers") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("read source");
            for used in uses(&text) {
                if used != module {
                    edges.insert((module.to_owned(), used));
                }
            }
        }
        edges
    }

    #[test]
    fn every_module_has_a_layer() {
        for (from, to) in edges() {
            assert!(
                layer_of(&from).is_some(),
                "module `{from}` has no layer in LAYERS"
            );
            assert!(
                layer_of(&to).is_some(),
                "module `{to}` has no layer in LAYERS"
            );
        }
    }

    #[test]
    fn no_module_uses_a_higher_layer() {
        let mut upward = BTreeSet::new();
        for (from, to) in edges() {
            if let (Some(a), Some(b)) = (layer_of(&from), layer_of(&to))
                && b > a
            {
                upward.insert((from, to));
            }
        }
        assert!(
            upward.is_empty(),
            "these modules use a higher layer (see ARCHITECTURE.md): {upward:?}"
        );
    }

    #[test]
    fn the_scanner_sees_paths_and_skips_comments() {
        let found = uses(
            "use crate::wasm::Engine;\n// crate::app is only named here\nlet x = crate::journal::FILE; // crate::cli\n",
        );
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec!["journal".to_owned(), "wasm".to_owned()]
        );
    }
}
