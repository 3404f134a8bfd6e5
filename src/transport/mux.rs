//! The server side of a hashicorp/yamux session over one connection.
//!
//! Spec: hashicorp/yamux `spec.md` (summary in `docs/wire/go-plugin-netrpc.md`). The host opens
//! every stream; we accept them, acknowledge each one at once (hashicorp/yamux closes the whole session when
//! an opened stream is not ACKed within `StreamOpenTimeout`, and go-plugin's stdout/stderr streams stay idle),
//! enforce the 256 KiB receive window the peer must respect, grant window as the reader consumes, honour the
//! peer's window when sending, answer pings, and end on GoAway, protocol errors or EOF.
//!
//! Tasks: one reads frames and dispatches them, one writes queued frames in order; [`Stream`] halves talk
//! to them through shared per-stream state.
use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, watch, Notify};

use super::frame::{self, Flags, FrameType, Header, HEADER_LEN};

/// The window every stream starts with in both directions (yamux `initialStreamWindow`).
pub const INITIAL_WINDOW: u32 = 256 * 1024;
/// Consumed bytes after which the reader grants window back (hashicorp grants at half the window too).
const WINDOW_UPDATE_THRESHOLD: u32 = INITIAL_WINDOW / 2;
/// The most payload we put in one Data frame.
pub const MAX_DATA_FRAME: usize = 64 * 1024;
/// Streams the peer may have open at once: bounds what a peer can make us track.
pub const MAX_STREAMS: usize = 1024;
/// Opened streams waiting for the application to accept them (yamux `AcceptBacklog`).
pub const ACCEPT_BACKLOG: usize = 256;

/// Why a stream or session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("yamux: stream {0} was reset")]
    StreamReset(u32),
    #[error("yamux: stream {0} is closed for writing")]
    StreamClosed(u32),
    #[error("yamux: session closed")]
    SessionClosed,
}

#[derive(Debug)]
enum Outbound {
    Frame(Vec<u8>),
    /// Flush, shut the connection's write side and stop.
    Close,
}

struct StreamState {
    /// Inbound payload for the reader half; dropped on FIN/RST so the reader sees the end.
    data: Option<mpsc::UnboundedSender<Bytes>>,
    /// What the peer may still send before we grant more.
    recv_window: u32,
    /// What we may still send before the peer grants more.
    send_window: u32,
    /// Wakes writers waiting for window, a reset or the session's end.
    send_ready: Arc<Notify>,
    reset: bool,
    local_closed: bool,
    remote_closed: bool,
}

struct Shared {
    streams: Mutex<HashMap<u32, StreamState>>,
    outbound: mpsc::UnboundedSender<Outbound>,
    /// Becomes true once the session is over.
    closed: watch::Sender<bool>,
    /// Becomes true once the writer flushed its last frame and stopped.
    writer_done: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<u32, StreamState>> {
        // A panic while holding the lock cannot leave the map half-updated in a way we rely on.
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, frame_type: FrameType, flags: Flags, stream_id: u32, length: u32) {
        let header = frame::encode(&Header {
            frame_type,
            flags,
            stream_id,
            length,
        });
        let _ = self.outbound.send(Outbound::Frame(header.to_vec()));
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Ends the session: every stream sees its end, the writer flushes and stops.
    fn shut_down(&self, go_away: Option<u32>) {
        if self.closed.send_replace(true) {
            return;
        }
        if let Some(code) = go_away {
            self.send(
                FrameType::GoAway,
                Flags::NONE,
                frame::SESSION_STREAM_ID,
                code,
            );
        }
        let _ = self.outbound.send(Outbound::Close);
        for (_, state) in self.lock().drain() {
            state.send_ready.notify_waiters();
        }
    }
}

/// A yamux server session; accept the host's streams with [`Session::accept`].
pub struct Session {
    incoming: mpsc::Receiver<Stream>,
    handle: SessionHandle,
}

/// A cloneable handle to close a session or wait for its end.
#[derive(Clone)]
pub struct SessionHandle {
    shared: Arc<Shared>,
}

impl SessionHandle {
    /// Sends GoAway (normal), flushes what is queued and closes the connection.
    pub fn close(&self) {
        self.shared.shut_down(Some(frame::GO_AWAY_NORMAL));
    }

    /// Closes the session like [`SessionHandle::close`] and waits (at most `grace`) until every queued frame
    /// was written, so replies sent just before shutting down reach the host.
    pub async fn close_and_flush(&self, grace: std::time::Duration) {
        self.close();
        let mut done = self.shared.writer_done.subscribe();
        let _ = tokio::time::timeout(grace, done.wait_for(|d| *d)).await;
    }

    /// Resolves once the session is over (closed by us, by the peer, or by an error).
    pub async fn closed(&self) {
        let mut rx = self.shared.closed.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }
}

impl Session {
    /// Starts the server side of a session over `io`.
    pub fn server<T>(io: T) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (outbound, outbound_rx) = mpsc::unbounded_channel();
        let (accept_tx, incoming) = mpsc::channel(ACCEPT_BACKLOG);
        let shared = Arc::new(Shared {
            streams: Mutex::new(HashMap::new()),
            outbound,
            closed: watch::Sender::new(false),
            writer_done: watch::Sender::new(false),
        });
        let writer_shared = shared.clone();
        tokio::spawn(async move {
            write_loop(write, outbound_rx).await;
            writer_shared.writer_done.send_replace(true);
        });
        let reader_shared = shared.clone();
        tokio::spawn(async move {
            // `accept_tx` lives until the session is shut down: were it dropped first, `accept` would see the
            // channel end and the serve loop's normal `close` could race this task's GoAway(protocol error).
            let outcome = read_loop(read, &reader_shared, &accept_tx).await;
            let go_away = match outcome {
                Ok(()) => None,
                Err(ReadEnd::Protocol(reason)) => {
                    tracing::warn!(%reason, "yamux protocol error, closing the session");
                    Some(frame::GO_AWAY_PROTOCOL_ERROR)
                }
                Err(ReadEnd::Io(error)) => {
                    tracing::debug!(%error, "yamux connection read failed");
                    None
                }
            };
            reader_shared.shut_down(go_away);
            drop(accept_tx);
        });
        Session {
            incoming,
            handle: SessionHandle { shared },
        }
    }

    /// The next stream the host opened; `None` once the session is over.
    pub async fn accept(&mut self) -> Option<Stream> {
        let mut closed = self.handle.shared.closed.subscribe();
        tokio::select! {
            biased;
            stream = self.incoming.recv() => stream,
            _ = closed.wait_for(|c| *c) => None,
        }
    }

    pub fn handle(&self) -> SessionHandle {
        self.handle.clone()
    }
}

enum ReadEnd {
    Protocol(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for ReadEnd {
    fn from(e: std::io::Error) -> Self {
        ReadEnd::Io(e)
    }
}

async fn write_loop<W: AsyncWrite>(write: W, mut outbound: mpsc::UnboundedReceiver<Outbound>) {
    let mut write = pin!(BufWriter::new(write));
    while let Some(item) = outbound.recv().await {
        let result = match item {
            Outbound::Frame(bytes) => write.write_all(&bytes).await,
            Outbound::Close => {
                let _ = write.flush().await;
                let _ = write.shutdown().await;
                return;
            }
        };
        let result = match result {
            Ok(()) if outbound.is_empty() => write.flush().await,
            other => other,
        };
        if let Err(error) = result {
            tracing::debug!(%error, "yamux connection write failed");
            return;
        }
    }
}

async fn read_loop<R: AsyncRead>(
    read: R,
    shared: &Arc<Shared>,
    accept: &mpsc::Sender<Stream>,
) -> Result<(), ReadEnd> {
    let mut read = pin!(BufReader::new(read));
    let mut remote_go_away = false;
    loop {
        let mut raw = [0u8; HEADER_LEN];
        match read.read_exact(&mut raw).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let header = frame::decode(&raw).map_err(|e| ReadEnd::Protocol(e.to_string()))?;
        match header.frame_type {
            FrameType::Ping => {
                if header.flags.contains(Flags::SYN) {
                    shared.send(
                        FrameType::Ping,
                        Flags::ACK,
                        frame::SESSION_STREAM_ID,
                        header.length,
                    );
                }
            }
            FrameType::GoAway => {
                tracing::debug!(code = header.length, "host sent yamux GoAway");
                remote_go_away = true;
            }
            FrameType::Data | FrameType::WindowUpdate => {
                if header.stream_id == frame::SESSION_STREAM_ID {
                    return Err(ReadEnd::Protocol("stream frame on stream 0".into()));
                }
                if header.flags.contains(Flags::SYN) {
                    open_stream(shared, accept, header.stream_id, remote_go_away)?;
                }
                stream_frame(&mut read, shared, header).await?;
            }
        }
    }
}

fn open_stream(
    shared: &Arc<Shared>,
    accept: &mpsc::Sender<Stream>,
    id: u32,
    remote_go_away: bool,
) -> Result<(), ReadEnd> {
    let mut streams = shared.lock();
    if streams.contains_key(&id) {
        return Err(ReadEnd::Protocol(format!("duplicate stream {id}")));
    }
    if id % 2 == 0 {
        return Err(ReadEnd::Protocol(format!("host opened even stream {id}")));
    }
    if remote_go_away || streams.len() >= MAX_STREAMS {
        drop(streams);
        shared.send(FrameType::WindowUpdate, Flags::RST, id, 0);
        return Ok(());
    }
    let (data, data_rx) = mpsc::unbounded_channel();
    let send_ready = Arc::new(Notify::new());
    streams.insert(
        id,
        StreamState {
            data: Some(data),
            recv_window: INITIAL_WINDOW,
            send_window: INITIAL_WINDOW,
            send_ready: send_ready.clone(),
            reset: false,
            local_closed: false,
            remote_closed: false,
        },
    );
    drop(streams);
    // ACK at once: the host's stdout/stderr streams never carry data from us, and the ACK must precede
    // anything the acceptor writes.
    shared.send(FrameType::WindowUpdate, Flags::ACK, id, 0);
    let stream = Stream {
        reader: StreamReader {
            id,
            shared: shared.clone(),
            data: data_rx,
            consumed: 0,
        },
        writer: StreamWriter {
            id,
            shared: shared.clone(),
            send_ready,
        },
    };
    if let Err(refused) = accept.try_send(stream) {
        // Backlog full: refuse the stream like hashicorp/yamux does.
        shared.lock().remove(&id);
        drop(refused);
        shared.send(FrameType::WindowUpdate, Flags::RST, id, 0);
    }
    Ok(())
}

async fn stream_frame<R: AsyncRead>(
    read: &mut std::pin::Pin<&mut BufReader<R>>,
    shared: &Arc<Shared>,
    header: Header,
) -> Result<(), ReadEnd> {
    let id = header.stream_id;
    if header.frame_type == FrameType::Data {
        let window_ok = {
            let mut streams = shared.lock();
            match streams.get_mut(&id) {
                Some(state) if header.length <= state.recv_window => {
                    state.recv_window -= header.length;
                    true
                }
                Some(_) => {
                    return Err(ReadEnd::Protocol(format!(
                        "stream {id} sent {} bytes beyond its receive window",
                        header.length
                    )))
                }
                None => false,
            }
        };
        // The window check above caps this allocation at INITIAL_WINDOW for known streams.
        if window_ok {
            let mut payload = vec![0u8; header.length as usize];
            read.read_exact(&mut payload).await?;
            if let Some(state) = shared.lock().get_mut(&id) {
                if let Some(data) = &state.data {
                    let _ = data.send(Bytes::from(payload));
                }
            }
        } else {
            // A stream we already forgot (reset or refused): skip its payload without buffering it.
            let skipped = tokio::io::copy(
                &mut read.as_mut().take(u64::from(header.length)),
                &mut tokio::io::sink(),
            )
            .await?;
            if skipped < u64::from(header.length) {
                return Ok(());
            }
        }
    }
    let mut streams = shared.lock();
    let Some(state) = streams.get_mut(&id) else {
        return Ok(());
    };
    if header.frame_type == FrameType::WindowUpdate && header.length > 0 {
        state.send_window = state.send_window.saturating_add(header.length);
        state.send_ready.notify_waiters();
    }
    if header.flags.contains(Flags::RST) {
        state.reset = true;
        state.data = None;
        state.send_ready.notify_waiters();
        streams.remove(&id);
    } else if header.flags.contains(Flags::FIN) {
        state.remote_closed = true;
        state.data = None;
        if state.local_closed {
            streams.remove(&id);
        }
    }
    Ok(())
}

/// One accepted stream; split it to read and write from different tasks.
pub struct Stream {
    reader: StreamReader,
    writer: StreamWriter,
}

impl Stream {
    pub fn id(&self) -> u32 {
        self.reader.id
    }

    pub fn into_split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }
}

/// The receiving half: payload in order, then `None` at FIN, RST or the session's end.
pub struct StreamReader {
    id: u32,
    shared: Arc<Shared>,
    data: mpsc::UnboundedReceiver<Bytes>,
    /// Bytes handed out since the last window update.
    consumed: u32,
}

impl StreamReader {
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The next chunk of payload; `None` once the peer half-closed or reset the stream or the session ended.
    pub async fn read(&mut self) -> Option<Bytes> {
        let mut closed = self.shared.closed.subscribe();
        let chunk = tokio::select! {
            biased;
            chunk = self.data.recv() => chunk?,
            _ = closed.wait_for(|c| *c) => return None,
        };
        self.consumed = self.consumed.saturating_add(chunk.len() as u32);
        if self.consumed >= WINDOW_UPDATE_THRESHOLD {
            let delta = std::mem::take(&mut self.consumed);
            let granted = match self.shared.lock().get_mut(&self.id) {
                Some(state) if !state.remote_closed => {
                    state.recv_window = state.recv_window.saturating_add(delta);
                    true
                }
                _ => false,
            };
            if granted {
                self.shared
                    .send(FrameType::WindowUpdate, Flags::NONE, self.id, delta);
            }
        }
        Some(chunk)
    }
}

/// The sending half. Dropping it half-closes the stream (FIN) if [`StreamWriter::close`] was not called.
pub struct StreamWriter {
    id: u32,
    shared: Arc<Shared>,
    send_ready: Arc<Notify>,
}

impl StreamWriter {
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends all of `data`, waiting for the peer to grant window when needed.
    pub async fn write_all(&self, mut data: &[u8]) -> Result<(), MuxError> {
        while !data.is_empty() {
            let mut ready = pin!(self.send_ready.notified());
            ready.as_mut().enable();
            let sent = {
                let mut streams = self.shared.lock();
                if self.shared.is_closed() {
                    return Err(MuxError::SessionClosed);
                }
                let Some(state) = streams.get_mut(&self.id) else {
                    return Err(MuxError::StreamReset(self.id));
                };
                if state.reset {
                    return Err(MuxError::StreamReset(self.id));
                }
                if state.local_closed {
                    return Err(MuxError::StreamClosed(self.id));
                }
                let n = data
                    .len()
                    .min(MAX_DATA_FRAME)
                    .min(state.send_window as usize);
                if n > 0 {
                    state.send_window -= n as u32;
                    let mut bytes = frame::encode(&Header {
                        frame_type: FrameType::Data,
                        flags: Flags::NONE,
                        stream_id: self.id,
                        length: n as u32,
                    })
                    .to_vec();
                    bytes.extend_from_slice(&data[..n]);
                    let _ = self.shared.outbound.send(Outbound::Frame(bytes));
                }
                n
            };
            if sent == 0 {
                ready.await;
            } else {
                data = &data[sent..];
            }
        }
        Ok(())
    }

    /// Half-closes the stream (FIN): we send nothing more; the peer may still send.
    pub fn close(&self) {
        let mut streams = self.shared.lock();
        let Some(state) = streams.get_mut(&self.id) else {
            return;
        };
        if state.local_closed {
            return;
        }
        state.local_closed = true;
        if state.remote_closed {
            streams.remove(&self.id);
        }
        drop(streams);
        self.shared
            .send(FrameType::WindowUpdate, Flags::FIN, self.id, 0);
    }

    /// Resets the stream (RST): both directions end at once.
    pub fn reset(&self) {
        let Some(state) = self.shared.lock().remove(&self.id) else {
            return;
        };
        state.send_ready.notify_waiters();
        self.shared
            .send(FrameType::WindowUpdate, Flags::RST, self.id, 0);
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
