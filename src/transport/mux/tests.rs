//! Unit tests of `mux`.
use super::*;
use tokio::io::duplex;

fn header(frame_type: FrameType, flags: Flags, stream_id: u32, length: u32) -> [u8; HEADER_LEN] {
    frame::encode(&Header {
        frame_type,
        flags,
        stream_id,
        length,
    })
}

async fn next_header(peer: &mut tokio::io::DuplexStream) -> Header {
    let mut raw = [0u8; HEADER_LEN];
    peer.read_exact(&mut raw).await.expect("frame");
    frame::decode(&raw).expect("header")
}

#[tokio::test]
async fn acks_new_streams_at_once_and_answers_pings() {
    let (ours, mut peer) = duplex(1 << 20);
    let mut session = Session::server(ours);
    peer.write_all(&header(FrameType::WindowUpdate, Flags::SYN, 1, 0))
        .await
        .expect("write");
    let ack = next_header(&mut peer).await;
    assert_eq!(
        (ack.frame_type, ack.flags, ack.stream_id),
        (FrameType::WindowUpdate, Flags::ACK, 1)
    );
    let stream = session.accept().await.expect("stream");
    assert_eq!(stream.id(), 1);
    peer.write_all(&header(FrameType::Ping, Flags::SYN, 0, 77))
        .await
        .expect("write");
    let pong = next_header(&mut peer).await;
    assert_eq!(
        (pong.frame_type, pong.flags, pong.length),
        (FrameType::Ping, Flags::ACK, 77)
    );
    // Dropping our half-closes the stream (FIN on a WindowUpdate, as hashicorp/yamux does).
    drop(stream);
    let fin = next_header(&mut peer).await;
    assert_eq!(
        (fin.frame_type, fin.flags, fin.stream_id),
        (FrameType::WindowUpdate, Flags::FIN, 1)
    );
}

#[tokio::test]
async fn data_beyond_the_window_is_a_protocol_error() {
    let (ours, mut peer) = duplex(1 << 20);
    let _session = Session::server(ours);
    peer.write_all(&header(FrameType::WindowUpdate, Flags::SYN, 1, 0))
        .await
        .expect("write");
    let _ack = next_header(&mut peer).await;
    peer.write_all(&header(FrameType::Data, Flags::NONE, 1, INITIAL_WINDOW + 1))
        .await
        .expect("write");
    let go_away = next_header(&mut peer).await;
    assert_eq!(
        (go_away.frame_type, go_away.length),
        (FrameType::GoAway, frame::GO_AWAY_PROTOCOL_ERROR)
    );
}

/// The serve loop closes the session (GoAway normal) as soon as `accept` ends; after a protocol error the
/// host must still see GoAway(protocol error), whichever task runs first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_error_is_reported_even_when_the_acceptor_closes_at_once() {
    for _ in 0..200 {
        let (ours, mut peer) = duplex(1 << 16);
        let mut session = Session::server(ours);
        let handle = session.handle();
        let acceptor = tokio::spawn(async move {
            while session.accept().await.is_some() {}
            handle.close();
        });
        let mut bad = header(FrameType::WindowUpdate, Flags::SYN, 1, 0);
        bad[0] = 1;
        peer.write_all(&bad).await.expect("write");
        let go_away = next_header(&mut peer).await;
        assert_eq!(
            (go_away.frame_type, go_away.length),
            (FrameType::GoAway, frame::GO_AWAY_PROTOCOL_ERROR)
        );
        acceptor.await.expect("acceptor");
    }
}

#[tokio::test]
async fn writes_wait_for_window_and_reads_grant_it() {
    let (ours, mut peer) = duplex(4 << 20);
    let mut session = Session::server(ours);
    peer.write_all(&header(FrameType::WindowUpdate, Flags::SYN, 1, 0))
        .await
        .expect("write");
    let _ack = next_header(&mut peer).await;
    let (mut reader, writer) = session.accept().await.expect("stream").into_split();
    let big = vec![7u8; INITIAL_WINDOW as usize + 10];
    let send = tokio::spawn(async move { writer.write_all(&big).await.map(|()| writer) });
    let mut received = 0usize;
    while received < INITIAL_WINDOW as usize {
        let h = next_header(&mut peer).await;
        assert_eq!(h.frame_type, FrameType::Data);
        let mut payload = vec![0u8; h.length as usize];
        peer.read_exact(&mut payload).await.expect("payload");
        received += payload.len();
    }
    assert_eq!(
        received, INITIAL_WINDOW as usize,
        "never more than the window"
    );
    assert!(!send.is_finished());
    peer.write_all(&header(FrameType::WindowUpdate, Flags::NONE, 1, 10))
        .await
        .expect("write");
    let h = next_header(&mut peer).await;
    assert_eq!((h.frame_type, h.length), (FrameType::Data, 10));
    let mut rest = [0u8; 10];
    peer.read_exact(&mut rest).await.expect("payload");
    let _writer = send.await.expect("join").expect("sent");
    // Inbound: consuming half a window grants it back.
    let half = WINDOW_UPDATE_THRESHOLD as usize;
    let mut frame_bytes = header(FrameType::Data, Flags::NONE, 1, half as u32).to_vec();
    frame_bytes.extend(std::iter::repeat_n(1u8, half));
    peer.write_all(&frame_bytes).await.expect("write");
    let mut got = 0;
    while got < half {
        got += reader.read().await.expect("chunk").len();
    }
    let grant = next_header(&mut peer).await;
    assert_eq!(
        (grant.frame_type, grant.length),
        (FrameType::WindowUpdate, half as u32)
    );
}
