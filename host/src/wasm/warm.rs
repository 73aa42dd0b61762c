//! Idle instances of the bundled checks, kept for the next call.
//!
//! A check from a file gets a fresh instance per call: it is third-party
//! code, and nothing it leaves in its memory may reach the next call. The
//! bundled checks (`builtin:*`) are compiled from this repository, keep no
//! state between calls (no statics in them or in vigil-sdk), and are by far
//! the most frequent: a thousand services with a 1 s `builtin:tcp` check
//! make a thousand calls a second. For them, creating, instantiating and
//! dropping a store was a third of Vigil's CPU, so a finished instance is
//! parked here and the next call of the same builtin, for any service,
//! takes it with that call's capabilities, deadline and memory cap swapped
//! in. Only an instance that finished cleanly comes back: a trap, a
//! timeout, a hit memory cap or a resource left open drops it.

use std::sync::Mutex;

use wasmtime::Store;

use super::bindings;
use super::output::BoundedOutput;
use super::store::HostState;
use crate::sync::LockExt;

/// Idle instances kept per builtin. Checks rarely overlap (a builtin call
/// takes well under a millisecond), so a few cover a thousand services;
/// each holds a pool slot and its touched memory (~100 KiB).
const MAX_IDLE: usize = 8;

/// A finished instance with its store and captured output.
pub(crate) struct WarmInstance {
    pub store: Store<HostState>,
    pub instance: bindings::checker::Checker,
    pub output: BoundedOutput,
}

/// The idle instances of one builtin, shared by every service naming it.
#[derive(Default)]
pub(crate) struct WarmInstances {
    idle: Mutex<Vec<WarmInstance>>,
}

impl WarmInstances {
    /// An idle instance whose memories and tables fit under `memory_limit`
    /// (a service with a lower cap than the one that grew it must not
    /// inherit it).
    pub fn take(&self, memory_limit: usize) -> Option<WarmInstance> {
        let mut idle = self.idle.lock_unpoisoned();
        let index = idle
            .iter()
            .rposition(|warm| warm.store.data().limits.used() <= memory_limit)?;
        Some(idle.swap_remove(index))
    }

    /// Parks an instance after a call that returned an outcome, unless it
    /// may carry anything into the next call.
    pub fn put(&self, warm: WarmInstance) {
        let data = warm.store.data();
        if data.limits.hit || !data.table.is_empty() || data.caps.open_connections != 0 {
            return;
        }
        let mut idle = self.idle.lock_unpoisoned();
        if idle.len() < MAX_IDLE {
            idle.push(warm);
        }
    }
}

/// The guard that makes reuse safe: a bundled check, or the SDK they are
/// built with, must keep no state between calls. It walks their sources
/// (`checks/*/src`, `guest-sdk/src`, `guest-sdk/macros/src`, including what
/// macros expand to) and fails on `static mut`, `thread_local!`, and any
/// `static` whose type mentions a type with interior mutability. What it
/// cannot see: a `static` of a type alias or of a struct that hides a
/// `Cell` (name such types here too), and the statics wit-bindgen
/// generates (a return area the next call overwrites).
#[cfg(test)]
mod stateless_guard {
    use std::path::{Path, PathBuf};

    use proc_macro2::{TokenStream, TokenTree};

    /// Names of types through which a `static` can change; any name that
    /// starts with `Atomic`, `Once` or `Lazy` counts too.
    const INTERIOR_MUTABILITY: &[&str] = &[
        "Cell",
        "RefCell",
        "UnsafeCell",
        "SyncUnsafeCell",
        "Mutex",
        "RwLock",
        "ReentrantMutex",
        "Condvar",
    ];

    fn is_interior_mutable(name: &str) -> bool {
        INTERIOR_MUTABILITY.contains(&name)
            || ["Atomic", "Once", "Lazy"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
    }

    /// Every declaration in `source` of state that outlives a call, as the
    /// text of the declaration.
    fn mutable_state(source: &str) -> Result<Vec<String>, String> {
        let tokens: TokenStream = source.parse().map_err(|err| format!("{err:?}"))?;
        let mut found = Vec::new();
        scan(tokens, &mut found);
        Ok(found)
    }

    fn scan(tokens: TokenStream, found: &mut Vec<String>) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            let TokenTree::Ident(ident) = token else {
                if let TokenTree::Group(group) = token {
                    scan(group.stream(), found);
                }
                continue;
            };
            let next_is = |c: char| matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == c);
            if ident == "thread_local" && next_is('!') {
                found.push("thread_local!".to_owned());
            }
            // `'static` is a lifetime: a `'` then the ident.
            let lifetime =
                i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '\'');
            if ident != "static" || lifetime {
                continue;
            }
            let declaration: Vec<&TokenTree> = tokens[i..]
                .iter()
                .take_while(
                    |t| !matches!(t, TokenTree::Punct(p) if matches!(p.as_char(), '=' | ';')),
                )
                .collect();
            let text = declaration
                .iter()
                .map(|&t| t.clone())
                .collect::<TokenStream>()
                .to_string();
            let mutable = match declaration.get(1) {
                Some(TokenTree::Ident(word)) if word == "mut" => true,
                // `static $name: $ty` in a macro_rules!: the type is not here.
                Some(TokenTree::Punct(p)) if p.as_char() == '$' => true,
                Some(TokenTree::Ident(_)) => declaration[2..].iter().any(|t| mentions_mutable(t)),
                _ => false,
            };
            if mutable {
                found.push(text);
            }
        }
    }

    fn mentions_mutable(token: &TokenTree) -> bool {
        match token {
            TokenTree::Ident(ident) => is_interior_mutable(&ident.to_string()),
            TokenTree::Group(group) => group.stream().into_iter().any(|t| mentions_mutable(&t)),
            _ => false,
        }
    }

    fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
                .path();
            if path.is_dir() {
                rust_files(&path, files);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }

    #[test]
    fn bundled_checks_and_the_sdk_keep_no_state_between_calls() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the host crate lives inside the workspace")
            .to_path_buf();
        let mut dirs = vec![
            workspace.join("guest-sdk/src"),
            workspace.join("guest-sdk/macros/src"),
        ];
        let checks = std::fs::read_dir(workspace.join("checks")).expect("list checks/");
        for check in checks {
            let src = check.expect("list checks/").path().join("src");
            if src.is_dir() {
                dirs.push(src);
            }
        }
        let mut files = Vec::new();
        for dir in &dirs {
            rust_files(dir, &mut files);
        }
        assert!(files.len() > 10, "found only {files:?}");
        let mut problems = Vec::new();
        for file in &files {
            let source = std::fs::read_to_string(file)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", file.display()));
            let found = mutable_state(&source)
                .unwrap_or_else(|err| panic!("cannot tokenize {}: {err}", file.display()));
            let name = file.strip_prefix(&workspace).unwrap_or(file);
            problems.extend(
                found
                    .into_iter()
                    .map(|d| format!("{}: {d}", name.display())),
            );
        }
        assert!(
            problems.is_empty(),
            "bundled check instances are reused across calls and services \
             (host/src/wasm/warm.rs), so they must keep no state: use a local, \
             a `const`, or pass it through the call\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn the_guard_catches_every_form() {
        let caught = [
            "static mut COUNT: u32 = 0;",
            "fn f() { static mut SEEN: bool = false; }",
            "thread_local! { static LAST: u32 = 0; }",
            "static CALLS: AtomicU64 = AtomicU64::new(0);",
            "static A: std::sync::atomic::AtomicBool = AtomicBool::new(false);",
            "static C: Cell<u32> = Cell::new(0);",
            "static R: RefCell<Vec<u8>> = RefCell::new(Vec::new());",
            "static M: Mutex<Option<String>> = Mutex::new(None);",
            "static W: RwLock<u8> = RwLock::new(0);",
            "static O: OnceLock<String> = OnceLock::new();",
            "static L: LazyLock<Vec<u8>> = LazyLock::new(Vec::new);",
            "static Z: once_cell::sync::Lazy<u8> = Lazy::new(|| 1);",
            "static T: [Cell<u8>; 2] = [Cell::new(0), Cell::new(0)];",
            "static P: (u8, Mutex<u8>) = (0, Mutex::new(0));",
            "static X: Once = Once::new();",
            "impl S { fn f() { let _ = { static K: OnceCell<u8> = OnceCell::new(); }; } }",
            "fn expand() -> TokenStream { quote! { static mut HIDDEN: u8 = 0; } }",
            "macro_rules! state { ($n:ident, $t:ty) => { static $n: $t = todo!(); } }",
        ];
        for snippet in caught {
            let found = mutable_state(snippet).expect("tokenize");
            assert_eq!(found.len(), 1, "{snippet}: {found:?}");
        }
        let fine = [
            "pub fn as_str(&self) -> &'static str { \"static mut\" }",
            "static NAMES: &[&str] = &[\"a\", \"b\"];",
            "static TABLE: [u8; 4] = [1, 2, 3, 4];",
            "const C: Cell<u8> = Cell::new(0);",
            "fn f<T: 'static>(cell: &Cell<T>) {}",
            "/// static mut in a comment\nfn g() {}",
            "// thread_local! { static X: u8 = 0; }\nfn h() {}",
        ];
        for snippet in fine {
            assert_eq!(mutable_state(snippet), Ok(vec![]), "{snippet}");
        }
    }
}
