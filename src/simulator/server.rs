//! Listener and connections: accepts TCP connections, runs TLS when configured, serves
//! HTTP/1.1 with hyper, and carries out connection faults.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::dispatch;
use super::state::State;

/// Time a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish their requests after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Time an aborted connection waits for the client's first bytes (the TLS ClientHello or
/// the request head) before it is reset.
const ABORT_READ_WAIT: Duration = Duration::from_secs(2);

/// Accepts connections until `shutdown` changes or its sender is dropped, then gives open
/// connections [`SHUTDOWN_GRACE`] to finish and aborts the rest.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let connection = serve_connection(stream, tls.clone(), state.clone(), shutdown.clone());
                    connections.spawn(connection);
                    tracing::trace!(%peer, "connection accepted");
                }
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed; retrying in 10 ms");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }

    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period; aborting them"
        );
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "setting TCP_NODELAY failed");
    }
    if state.take_connection_abort() {
        abort_connection(stream).await;
        return;
    }

    let reset_requested = Arc::new(AtomicBool::new(false));
    let stream = ResettableStream {
        inner: stream,
        reset_requested: reset_requested.clone(),
    };
    match tls {
        None => serve_http(stream, state, reset_requested, shutdown).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => {
                    serve_http(tls_stream, state, reset_requested, shutdown).await;
                }
                Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

/// Resets a connection once the client has sent its first bytes, or after a short wait.
/// On TLS the client is then still in the handshake, so its request fails with a connect error.
async fn abort_connection(mut stream: TcpStream) {
    let mut first_bytes = [0_u8; 1024];
    let _ = tokio::time::timeout(ABORT_READ_WAIT, stream.read(&mut first_bytes)).await;
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "setting SO_LINGER to zero failed");
    }
    tracing::debug!("connection aborted by an injected fault");
}

async fn serve_http<I>(
    io: I,
    state: Arc<State>,
    reset_requested: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let keep_alive = state.config.keep_alive;
    let idle_timeout = Duration::from_secs(state.config.idle_timeout_secs);
    let service = service_fn(move |request| {
        let state = state.clone();
        let reset_requested = reset_requested.clone();
        async move {
            let result = dispatch::handle(state, request).await;
            if result.is_err() {
                reset_requested.store(true, Ordering::SeqCst);
            }
            result
        }
    });

    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(keep_alive)
        .header_read_timeout(idle_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);

    tokio::select! {
        result = connection.as_mut() => log_connection_end(result),
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            log_connection_end(connection.await);
        }
    }
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// A TCP stream that sends a reset (RST) instead of a normal close (FIN) when it is dropped
/// after a handler requested it, as a connection reset fault requires.
struct ResettableStream {
    inner: TcpStream,
    reset_requested: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset_requested.load(Ordering::SeqCst)
            && let Err(error) = self.inner.set_zero_linger()
        {
            tracing::debug!(%error, "setting SO_LINGER to zero failed");
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(context, buffer)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}
