//! `vigil:health/tcp`: outbound connections to granted destinations.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasmtime::component::Resource;

use super::HostError;
use crate::wasm::bindings::ErrorCode;
use crate::wasm::bindings::checker::vigil::health::tcp::{self, HostConnection};
use crate::wasm::grants::{Grants, Scheme, host_entry, host_grant_fix, parse_ip_literal};
use crate::wasm::store::{HostState, MAX_TRANSFER};

/// Open connections one call may hold at once.
const MAX_CONNECTIONS: usize = 16;

/// A guest's TCP connection; closed when the guest drops it or the call ends.
pub struct Connection {
    stream: TcpStream,
}

/// The addresses a request for `scheme://host:port` may connect to: the
/// IP literal itself, or what the name resolves to, each kept only when
/// [`Grants::allows`] says so for this scheme and port. The caller must
/// connect to these and nothing else (no second lookup), so `tcp` and
/// every `http` hop apply one rule to the very addresses they use.
pub(crate) async fn granted_addresses(
    grants: &Grants,
    scheme: Scheme,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ErrorCode> {
    if !grants.allows_destination(scheme, host, port) {
        let entry = host_entry(scheme, host, port);
        return Err(ErrorCode::Denied(format!(
            "{entry} is not granted: {}",
            host_grant_fix(&entry)
        )));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let resolved: Vec<SocketAddr> = match parse_ip_literal(bare) {
        // A zone id (`fe80::1%eth0`) is left to getaddrinfo, which turns
        // it into the scope id; the address is checked all the same.
        Some(ip) if !bare.contains('%') => vec![SocketAddr::new(ip, port)],
        _ => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| ErrorCode::NotFound)?
            .collect(),
    };
    let allowed = allowed_addresses(grants, scheme, port, host, &resolved);
    if allowed.is_empty() {
        let shown: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
        let verb = if parse_ip_literal(bare).is_some() {
            "is"
        } else {
            "resolves to"
        };
        let fix = resolved
            .first()
            .map(|addr| host_grant_fix(&host_entry(scheme, &addr.ip().to_string(), port)))
            .unwrap_or_default();
        return Err(ErrorCode::Denied(format!(
            "{host} {verb} {}, which no grant for {} on port {port} reaches (`*` and names reach public addresses only; loopback, private and link-local ones need a grant naming them): {fix}",
            shown.join(", "),
            scheme.as_str()
        )));
    }
    Ok(allowed)
}

/// The addresses of `addresses` (what `host` is or resolves to) that the
/// grants let a `scheme` request on `port` reach: the one filter that
/// [`granted_addresses`] applies at lookup and the http client's resolver
/// applies again at connect.
pub(crate) fn allowed_addresses(
    grants: &Grants,
    scheme: Scheme,
    port: u16,
    host: &str,
    addresses: &[SocketAddr],
) -> Vec<SocketAddr> {
    addresses
        .iter()
        .copied()
        .filter(|addr| grants.allows(scheme, port, host, addr.ip()))
        .collect()
}

pub(crate) fn connect_error(err: &std::io::Error) -> ErrorCode {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset => {
            ErrorCode::Refused
        }
        std::io::ErrorKind::TimedOut => ErrorCode::Timeout,
        _ => ErrorCode::Io(err.to_string()),
    }
}

/// Tries each address in turn until one accepts or the deadline passes.
pub(crate) async fn connect_any(
    addresses: &[SocketAddr],
    deadline: tokio::time::Instant,
) -> Result<TcpStream, ErrorCode> {
    let mut last = ErrorCode::NotFound;
    for addr in addresses {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(err)) => last = connect_error(&err),
            Err(_) => return Err(ErrorCode::Timeout),
        }
    }
    Err(last)
}

async fn with_timeout<T>(
    timeout: Duration,
    work: impl Future<Output = std::io::Result<T>>,
) -> Result<T, ErrorCode> {
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result.map_err(|err| connect_error(&err)),
        Err(_) => Err(ErrorCode::Timeout),
    }
}

impl tcp::Host for HostState {}

impl HostConnection for HostState {
    async fn connect(
        &mut self,
        host: String,
        port: u16,
        timeout_ms: u32,
    ) -> Result<Resource<Connection>, HostError> {
        if self.caps.open_connections >= MAX_CONNECTIONS {
            return Err(ErrorCode::Io(format!(
                "at most {MAX_CONNECTIONS} connections may be open at once"
            ))
            .into());
        }
        let deadline = tokio::time::Instant::now() + self.caps.call_timeout(Some(timeout_ms));
        let addresses = tokio::time::timeout_at(
            deadline,
            granted_addresses(&self.caps.grants, Scheme::Tcp, &host, port),
        )
        .await
        .map_err(|_| ErrorCode::Timeout)??;
        let stream = connect_any(&addresses, deadline).await?;
        let _ = stream.set_nodelay(true);
        let connection = self
            .table
            .push(Connection { stream })
            .map_err(|err| ErrorCode::Io(err.to_string()))?;
        // Counted once the guest holds it: `drop` uncounts exactly these.
        self.caps.open_connections += 1;
        Ok(connection)
    }

    async fn write(
        &mut self,
        connection: Resource<Connection>,
        data: Vec<u8>,
        timeout_ms: u32,
    ) -> Result<(), HostError> {
        let timeout = self.caps.call_timeout(Some(timeout_ms));
        // The component model hands us only live handles of this type: a
        // miss is the host's own bug.
        let conn = self.table.get_mut(&connection).map_err(HostError::fault)?;
        Ok(with_timeout(timeout, conn.stream.write_all(&data)).await?)
    }

    async fn read(
        &mut self,
        connection: Resource<Connection>,
        max_bytes: u32,
        timeout_ms: u32,
    ) -> Result<Vec<u8>, HostError> {
        let timeout = self.caps.call_timeout(Some(timeout_ms));
        let conn = self.table.get_mut(&connection).map_err(HostError::fault)?;
        let mut buffer = vec![0; (max_bytes as usize).min(MAX_TRANSFER)];
        let read = with_timeout(timeout, conn.stream.read(&mut buffer)).await?;
        buffer.truncate(read);
        Ok(buffer)
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        self.caps.open_connections = self.caps.open_connections.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use wasmtime::component::ResourceTable;
    use wasmtime_wasi::WasiCtxBuilder;

    use super::*;
    use crate::wasm::limits::MemoryCap;
    use crate::wasm::{Engine, Sandbox};

    const LONG: Duration = Duration::from_secs(60);

    fn state(grants: Grants) -> HostState {
        let sandbox = Sandbox::new(grants, LONG, 1 << 20);
        HostState {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limits: MemoryCap::new(1 << 20, 1 << 30, Default::default()),
            caps: Engine::capabilities(Some(&sandbox), None, None, Instant::now() + LONG),
        }
    }

    /// A connection the resource table refuses is closed, never handed to
    /// the guest, and so never counted: a miscount would keep the warm
    /// instance from being reused and eat into `MAX_CONNECTIONS`.
    #[tokio::test]
    async fn only_connections_the_guest_holds_are_counted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let grant = format!("tcp://127.0.0.1:{port}");
        let mut state = state(Grants::parse(&[grant], &[]).expect("grants"));
        let timeout_ms = LONG.as_millis() as u32;

        state.table.set_max_capacity(0);
        let refused =
            HostConnection::connect(&mut state, "127.0.0.1".into(), port, timeout_ms).await;
        assert!(
            matches!(refused, Err(HostError::Guest(ErrorCode::Io(_)))),
            "{refused:?}"
        );
        assert_eq!(state.caps.open_connections, 0);

        state.table.set_max_capacity(16);
        let held = HostConnection::connect(&mut state, "127.0.0.1".into(), port, timeout_ms)
            .await
            .expect("connect");
        assert_eq!(state.caps.open_connections, 1);
        HostConnection::drop(&mut state, held).await.expect("drop");
        assert_eq!(state.caps.open_connections, 0);
    }

    /// A handle the host's own table does not hold is a fault of the host:
    /// it traps the call, and never reaches the guest as an `error-code`
    /// (once it came back as `invalid`, as if the guest had erred).
    #[tokio::test]
    async fn a_missing_resource_is_a_host_fault_and_traps() {
        use crate::wasm::bindings::checker::vigil::health::types::Host as _;
        let mut state = state(Grants::none());
        let stale: Resource<Connection> = Resource::new_own(4242);
        let wrote = HostConnection::write(&mut state, stale, b"x".to_vec(), 1000).await;
        let err = wrote.expect_err("no such connection");
        assert!(matches!(err, HostError::Fault(_)), "{err:?}");
        assert!(state.convert_error_code(err).is_err(), "reached the guest");
        let stale: Resource<Connection> = Resource::new_own(4242);
        let read = HostConnection::read(&mut state, stale, 16, 1000).await;
        assert!(matches!(read, Err(HostError::Fault(_))), "{read:?}");
        // What the guest caused is still an answer, not a trap.
        let denied = HostConnection::connect(&mut state, "127.0.0.1".into(), 1, 1000).await;
        let err = denied.expect_err("nothing granted");
        assert!(matches!(
            state.convert_error_code(err),
            Ok(ErrorCode::Denied(_))
        ));
    }
}
