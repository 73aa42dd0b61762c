//! docs/writing-checks-rust.md, "builtin:redis" and "builtin:postgres":
//! the protocol probes against real redis-server and PostgreSQL servers
//! (Debian's packages) on loopback, in each state, through `vigil check`.

use std::time::{Duration, Instant};

use crate::servers::*;
use crate::support::*;

/// Runs `check` until `done` holds for its verdict or `limit` passes, and
/// returns the last verdict.
fn eventually(
    limit: Duration,
    check: impl Fn() -> Verdict,
    done: impl Fn(&Verdict) -> bool,
) -> Verdict {
    let deadline = Instant::now() + limit;
    loop {
        let verdict = check();
        if done(&verdict) || Instant::now() > deadline {
            return verdict;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn redis_check(redis_port: u16, grant: &str, extra: &[&str]) -> Verdict {
    let port = format!("port={redis_port}");
    let mut args = vec!["--allow-host", grant, "--config", &port];
    for setting in extra {
        args.extend(["--config", setting]);
    }
    vigil_check("builtin:redis", &args)
}

// ---- builtin:redis ------------------------------------------------------------

#[test]
fn redis_ok_down_and_not_granted() {
    let redis = Redis::start(&[]);
    let grant = redis.grant();
    redis_check(redis.port, &grant, &[]).expect(0, "");
    redis_check(redis.port, &grant, &["replica-link=false", "timeout=500ms"]).expect(0, "");

    // error: not granted, bad settings.
    let port = format!("port={}", redis.port);
    vigil_check("builtin:redis", &["--config", &port]).expect(1, "denied");
    redis_check(redis.port, &grant, &["user=probe"]).expect(1, "`user` needs `password`");
    redis_check(redis.port, &grant, &["replica_link=no"])
        .expect(1, "unknown config key `replica_link`");

    // retry: the wrong protocol on the other end (Redis waits for the end
    // of an inline command that never comes).
    let port = format!("port={}", redis.port);
    vigil_check(
        "builtin:postgres",
        &[
            "--allow-host",
            &grant,
            "--config",
            &port,
            "--config",
            "timeout=300ms",
        ],
    )
    .expect(75, "did not answer the startup packet within 300ms");

    // retry: the server is gone.
    let port = redis.port;
    redis.stop();
    redis_check(port, &grant, &[]).expect(75, "connection refused");
}

#[test]
fn redis_authentication_failures_are_errors() {
    let redis = Redis::start(&[
        "--requirepass",
        "s3cret",
        "--user",
        "probe",
        "on",
        ">pw",
        "+ping",
    ]);
    let grant = redis.grant();
    redis_check(redis.port, &grant, &[]).expect(1, "requires authentication: set `password`");
    redis_check(redis.port, &grant, &["password=wrong"]).expect(
        1,
        "rejected the credentials in `user`/`password`: WRONGPASS",
    );
    redis_check(redis.port, &grant, &["password=s3cret"]).expect(0, "");

    // An ACL user that may PING but not INFO: the replication check names
    // the setting that turns it off.
    redis_check(redis.port, &grant, &["user=probe", "password=pw"])
        .expect(1, "may not run INFO")
        .expect(1, "replica-link");
    redis_check(
        redis.port,
        &grant,
        &["user=probe", "password=pw", "replica-link=false"],
    )
    .expect(0, "");
    redis_check(redis.port, &grant, &["user=probe", "password=nope"]).expect(1, "WRONGPASS");

    // A password the server does not expect is a configuration error too.
    let open = Redis::start(&[]);
    redis_check(open.port, &open.grant(), &["password=s3cret"]).expect(1, "has no password set");
}

#[test]
fn redis_loading_a_dataset_is_retry() {
    // Make an RDB file of 20,000 keys ...
    let redis = Redis::start(&["--enable-debug-command", "yes"]);
    assert_eq!(redis.command("DEBUG POPULATE 20000"), "+OK");
    assert_eq!(redis.command("SAVE"), "+OK");
    let dir = redis.stop_keeping_files();
    assert!(dir.join("dump.rdb").is_file(), "SAVE wrote no dump.rdb");

    // ... and load it slowly (0.5 ms a key: about 10 s), answering clients
    // meanwhile, as a big dataset would.
    let loading = Redis::start_in(
        dir,
        &[
            "--key-load-delay",
            "500",
            "--loading-process-events-interval-bytes",
            "1024",
        ],
    );
    redis_check(loading.port, &loading.grant(), &["timeout=3s"])
        .expect(75, "is loading its dataset into memory: LOADING");
}

#[test]
fn redis_replica_without_master_link_is_retry() {
    let master_port = closed_port();
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &master_port.to_string()]);
    let grant = replica.grant();
    redis_check(replica.port, &grant, &[]).expect(
        75,
        &format!("is a replica whose link to its master 127.0.0.1:{master_port} is down"),
    );
    // Without the replication check, a stale replica that answers PING is ok.
    redis_check(replica.port, &grant, &["replica-link=false"]).expect(0, "");

    // Once its master is there and the sync is done, it is ok.
    let master = Redis::start(&[]);
    assert_eq!(
        replica.command(&format!("REPLICAOF 127.0.0.1 {}", master.port)),
        "+OK"
    );
    eventually(
        Duration::from_secs(20),
        || redis_check(replica.port, &grant, &[]),
        |v| v.code == 0,
    )
    .expect(0, "");
}

// ---- builtin:postgres ------------------------------------------------------------

fn pg_check(pg: &Postgres, extra: &[&str]) -> Verdict {
    let port = format!("port={}", pg.port);
    let grant = pg.grant();
    let mut args = vec!["--allow-host", &grant, "--config", &port];
    for setting in extra {
        args.extend(["--config", setting]);
    }
    vigil_check("builtin:postgres", &args)
}

const USER: &str = "user=vigil";

#[test]
fn postgres_accepting_refused_and_down() {
    let mut pg = Postgres::init();

    // retry: not started yet.
    pg_check(&pg, &[USER]).expect(75, "connection refused");

    pg.start(&[]);
    pg.wait_ready(Duration::from_secs(30));

    // ok: accepting connections, and a primary.
    pg_check(&pg, &[USER, "database=postgres"]).expect(0, "");
    pg_check(&pg, &[USER, "database=postgres", "primary=true"]).expect(0, "");

    // error: a database or role that does not exist (as with libpq, the
    // database defaults to the user's name), not granted, bad settings.
    pg_check(&pg, &[USER, "database=nope"])
        .expect(1, "refused the database: database \"nope\" does not exist")
        .expect(1, "SQLSTATE 3D000");
    pg_check(&pg, &[USER]).expect(1, "database \"vigil\" does not exist");
    pg_check(&pg, &["user=nobody_here", "database=postgres"])
        .expect(1, "refused the role: role \"nobody_here\" does not exist")
        .expect(1, "SQLSTATE 28000");
    let port = format!("port={}", pg.port);
    vigil_check("builtin:postgres", &["--config", &port]).expect(1, "denied");
    pg_check(&pg, &[USER, "primary=maybe"]).expect(1, "`primary`");
    // The wrong protocol: PostgreSQL hangs up on a RESP array.
    vigil_check(
        "builtin:redis",
        &["--allow-host", &pg.grant(), "--config", &port],
    )
    .expect(75, "closed the connection instead of answering PING");

    // retry: a smart shutdown waits for the open session, refusing new ones
    // with "the database system is shutting down" (SQLSTATE 57P03).
    let session = pg_session(pg.port, PG_USER, "postgres").expect("a session");
    pg.signal(libc::SIGTERM);
    eventually(
        Duration::from_secs(10),
        || pg_check(&pg, &[USER, "database=postgres"]),
        |v| v.code != 0,
    )
    .expect(
        75,
        "is not accepting connections: the database system is shutting down",
    )
    .expect(75, "57P03");

    // retry: gone.
    drop(session);
    pg.stop();
    pg_check(&pg, &[USER, "database=postgres"]).expect(75, "connection refused");
}

#[test]
fn postgres_in_recovery_is_retry() {
    let mut pg = Postgres::init();
    pg.make_standby();

    // A standby that does not serve reads while in recovery refuses
    // connections with SQLSTATE 57P03.
    pg.start(&["hot_standby=off"]);
    pg_check(&pg, &[USER, "database=postgres"])
        .expect(75, "is not accepting connections")
        .expect(75, "57P03");
    pg.stop();

    // A hot standby accepts connections (ok, as pg_isready says), but is
    // no primary.
    pg.start(&["hot_standby=on"]);
    eventually(
        Duration::from_secs(30),
        || pg_check(&pg, &[USER, "database=postgres"]),
        |v| v.code == 0,
    )
    .expect(0, "");
    pg_check(&pg, &[USER, "database=postgres", "primary=true"])
        .expect(75, "is in recovery (a standby), and `primary` is set");
}
