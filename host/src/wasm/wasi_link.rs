//! WASI linked per component, for one-shot engines.
//!
//! `wasmtime_wasi::p2::add_to_linker_async` defines all of WASI 0.2: some
//! 150 functions, each with its type registered in the engine. A
//! long-lived engine does that once for every component it will load; a
//! one-shot process (`vigil check`, `vigil-probe`) links one component,
//! which imports a dozen of them (a Rust check: cli, io, clocks,
//! filesystem), and the full set was 8 % of an exec probe's run. So it
//! links the interfaces its component imports, with the same host code
//! `add_to_linker_async` would link. An import this table does not know
//! falls back to the whole set, so a component links exactly as it would
//! in the supervisor.

use std::collections::BTreeSet;

use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, io, random, sockets};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

use super::store::HostState;

/// `wasi:io`'s host code works on the resource table alone.
struct IoTable;

impl HasData for IoTable {
    type Data<'a> = &'a mut ResourceTable;
}

fn table(state: &mut HostState) -> &mut ResourceTable {
    state.ctx().table
}

type Adder = fn(&mut Linker<HostState>) -> wasmtime::Result<()>;

/// Each WASI 0.2 interface `add_to_linker_async` defines, by name
/// without version, with how it defines it.
const INTERFACES: &[(&str, Adder)] = &[
    ("wasi:io/error", |l| {
        io::error::add_to_linker::<_, IoTable>(l, table)
    }),
    ("wasi:io/poll", |l| {
        io::poll::add_to_linker::<_, IoTable>(l, table)
    }),
    ("wasi:io/streams", |l| {
        io::streams::add_to_linker::<_, IoTable>(l, table)
    }),
    ("wasi:clocks/wall-clock", |l| {
        clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, HostState::clocks)
    }),
    ("wasi:clocks/monotonic-clock", |l| {
        clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, HostState::clocks)
    }),
    ("wasi:filesystem/preopens", |l| {
        filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, HostState::filesystem)
    }),
    ("wasi:filesystem/types", |l| {
        filesystem::types::add_to_linker::<_, WasiFilesystem>(l, HostState::filesystem)
    }),
    ("wasi:random/random", |l| {
        random::random::add_to_linker::<_, WasiRandom>(l, HostState::random)
    }),
    ("wasi:random/insecure", |l| {
        random::insecure::add_to_linker::<_, WasiRandom>(l, HostState::random)
    }),
    ("wasi:random/insecure-seed", |l| {
        random::insecure_seed::add_to_linker::<_, WasiRandom>(l, HostState::random)
    }),
    ("wasi:cli/exit", |l| {
        cli::exit::add_to_linker::<_, WasiCli>(l, HostState::cli)
    }),
    ("wasi:cli/environment", |l| {
        cli::environment::add_to_linker::<_, WasiCli>(l, HostState::cli)
    }),
    ("wasi:cli/stdin", |l| {
        cli::stdin::add_to_linker::<_, WasiCli>(l, HostState::cli)
    }),
    ("wasi:cli/stdout", |l| {
        cli::stdout::add_to_linker::<_, WasiCli>(l, HostState::cli)
    }),
    ("wasi:cli/stderr", |l| {
        cli::stderr::add_to_linker::<_, WasiCli>(l, HostState::cli)
    }),
    ("wasi:cli/terminal-input", |l| {
        cli::terminal_input::add_to_linker::<_, WasiCli>(l, HostState::cli)
    }),
    ("wasi:cli/terminal-output", |l| {
        cli::terminal_output::add_to_linker::<_, WasiCli>(l, HostState::cli)
    }),
    ("wasi:cli/terminal-stdin", |l| {
        cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, HostState::cli)
    }),
    ("wasi:cli/terminal-stdout", |l| {
        cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, HostState::cli)
    }),
    ("wasi:cli/terminal-stderr", |l| {
        cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, HostState::cli)
    }),
    ("wasi:sockets/tcp-create-socket", |l| {
        sockets::tcp_create_socket::add_to_linker::<_, WasiSockets>(l, HostState::sockets)
    }),
    ("wasi:sockets/instance-network", |l| {
        sockets::instance_network::add_to_linker::<_, WasiSockets>(l, HostState::sockets)
    }),
    ("wasi:sockets/network", |l| {
        sockets::network::add_to_linker::<_, WasiSockets>(
            l,
            &Default::default(),
            HostState::sockets,
        )
    }),
    ("wasi:sockets/ip-name-lookup", |l| {
        sockets::ip_name_lookup::add_to_linker::<_, WasiSockets>(l, HostState::sockets)
    }),
    ("wasi:sockets/tcp", |l| {
        sockets::tcp::add_to_linker::<_, WasiSockets>(l, HostState::sockets)
    }),
    ("wasi:sockets/udp", |l| {
        sockets::udp::add_to_linker::<_, WasiSockets>(l, HostState::sockets)
    }),
    ("wasi:sockets/udp-create-socket", |l| {
        sockets::udp_create_socket::add_to_linker::<_, WasiSockets>(l, HostState::sockets)
    }),
];

/// Defines in `linker` the WASI interfaces `component` imports, or all
/// of WASI 0.2 when it imports one this table does not know.
pub(super) fn add_imported(
    linker: &mut Linker<HostState>,
    component: &Component,
) -> wasmtime::Result<()> {
    let imported: BTreeSet<String> = component
        .component_type()
        .imports(linker.engine())
        .filter_map(|(name, _)| {
            let interface = name
                .split_once('@')
                .map_or(name, |(interface, _)| interface);
            interface.starts_with("wasi:").then(|| interface.to_owned())
        })
        .collect();
    let known = |interface: &String| INTERFACES.iter().any(|(name, _)| name == interface);
    if !imported.iter().all(known) {
        return wasmtime_wasi::p2::add_to_linker_async(linker);
    }
    for (name, add) in INTERFACES {
        if imported.contains(*name) {
            add(linker)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every interface of the table is one `add_to_linker_async` defines
    /// (adding it again to the full set is a redefinition), and the table
    /// defines no name twice. (One it lacks only makes a component that
    /// imports it link the full set.)
    #[test]
    fn the_table_is_part_of_wasi() {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::<HostState>::new(&engine);
        for (name, add) in INTERFACES {
            add(&mut linker).unwrap_or_else(|err| panic!("{name}: {err:#}"));
        }
        let mut full = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut full).expect("full set");
        for (name, add) in INTERFACES {
            assert!(
                add(&mut full).is_err(),
                "{name} is not in add_to_linker_async"
            );
        }
    }
}
