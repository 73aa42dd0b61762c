//! A service whose binary carries its own checks: `cargo build` places the
//! readiness check and the loader in its `.vigil.components` section.

vigil_embed::embed! {
    readiness = env!("VIGIL_EMBED_READINESS"),
    loader = env!("VIGIL_EMBED_LOADER"),
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("embedded-service up, args {args:?}");
    // Up until stopped.
    loop {
        std::thread::park();
    }
}
