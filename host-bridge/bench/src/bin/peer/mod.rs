//! What the two benchmark peers (`tt-reverse-server`, `fws-reverse-server`) share
//! and must keep the same for a fair comparison: the runtime (`--threads`) and the
//! accept loop (`listening on ADDR` first, one task per connection, errors logged
//! unless `--quiet`). Only the WebSocket library differs between them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser};
use tokio::net::{TcpListener, TcpStream};

/// The options both peers take, as `host-bridge serve` does.
#[derive(Args, Debug)]
pub struct Options {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// The WebSocket path; other paths get 404.
    #[arg(long, default_value = "/ws")]
    pub path: String,
    /// Worker threads: 1 runs tokio's current-thread runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print nothing per connection.
    #[arg(long)]
    pub quiet: bool,
}

/// Parses the command line into `A` (whose peer [`Options`] `options` picks
/// out), listens on `--listen` and hands each accepted stream to `connection`
/// in its own task, on tokio's current-thread runtime for `--threads 1` (to
/// match `host-bridge serve --threads 1`), else on a multi-thread one; `name`
/// prefixes the per-connection error lines (unless `--quiet`).
pub fn run<A, F, Fut>(name: &'static str, options: fn(&A) -> &Options, connection: F) -> Result<()>
where
    A: Parser + Send + Sync + 'static,
    F: Fn(TcpStream, Arc<A>) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let args = Arc::new(A::parse());
    let options = options(&args);
    let rt = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()?
    };
    let (listen, quiet) = (options.listen, options.quiet);
    rt.block_on(async move {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("listen on {listen}"))?;
        // Always, first: where it listens (port 0 picks a free one), for the caller.
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (stream, peer) = listener.accept().await?;
            let task = connection(stream, args.clone());
            tokio::spawn(async move {
                if let Err(e) = task.await {
                    if !quiet {
                        eprintln!("{name}: {peer}: {e:#}");
                    }
                }
            });
        }
    })
}
