//! Unary gRPC calls answered without tonic's generic codec machinery, for the hot KV methods.
//!
//! tonic serves a unary call as a stream of one message: a decoding stream over the request
//! body, a router, a stack of layers and an encoding stream for the answer. Profiles of
//! linearizable reads put that at a fifth of a member's gRPC time. Here the request's one
//! message is read from the body and decoded with prost, and the answer leaves as one data frame
//! and the `grpc-status: 0` trailers, as tonic would send them.
//!
//! Only the plain case is handled: a request that is compressed, oversized, malformed, cut
//! short, or that carries more than one message or trailers is replayed, frame for frame, to
//! tonic's own service, so that what such a request gets back (its code and message) is
//! tonic's answer.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use prost::Message;
use tonic::body::Body;
use tonic::Status;

use crate::client::grpc_frame::{self, PREFIX};

/// A unary request read from its body.
pub enum Decoded<M> {
    /// The one message, with the request's head.
    Message(http::request::Parts, M),
    /// Not the plain case: the request as received, for tonic to answer.
    Replay(http::Request<Body>),
}

/// Reads the one message of a unary request of at most `limit` bytes.
pub async fn decode<M: Message + Default>(req: http::Request<Body>, limit: usize) -> Decoded<M> {
    let (parts, mut body) = req.into_parts();
    let mut data = Bytes::new();
    while let Some(frame) = body.frame().await {
        let chunk = match frame.map(Frame::into_data) {
            Ok(Ok(chunk)) => chunk,
            // Trailers or a broken stream: what comes after the data is tonic's to judge.
            Ok(Err(other)) => return replay(parts, data, Some(Ok(other)), body),
            Err(status) => return replay(parts, data, Some(Err(status)), body),
        };
        data = grpc_frame::append(data, chunk);
        // Too long to be one message within the limit: tonic stops it at the prefix.
        if data.len() > PREFIX + limit {
            return replay(parts, data, None, body);
        }
    }
    match grpc_frame::single_message(&data).map(M::decode) {
        Some(Ok(message)) => Decoded::Message(parts, message),
        _ => Decoded::Replay(http::Request::from_parts(parts, Body::new(Frames::of(vec![Ok(Frame::data(data))])))),
    }
}

/// The request again: the data read so far, the frame that stopped the reading, and the rest.
fn replay<M>(
    parts: http::request::Parts,
    data: Bytes,
    stopped_at: Option<Result<Frame<Bytes>, Status>>,
    rest: Body,
) -> Decoded<M> {
    let mut frames = Frames::of([Some(Ok(Frame::data(data))), stopped_at].into_iter().flatten().collect());
    frames.rest = Some(rest);
    Decoded::Replay(http::Request::from_parts(parts, Body::new(frames)))
}

/// The HTTP response for a unary call's result, as tonic encodes it.
pub fn respond<M: Message>(result: Result<tonic::Response<M>, Status>) -> http::Response<Body> {
    let (metadata, message, extensions) = match result {
        Ok(response) => response.into_parts(),
        Err(status) => return status.into_http(),
    };
    let data = match grpc_frame::encode(&message) {
        Ok(data) => data,
        Err(len) => {
            return Status::resource_exhausted(format!(
                "Cannot return body with more than 4GB of data but got {len} bytes"
            ))
            .into_http()
        }
    };
    let mut trailers = http::HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let mut response =
        http::Response::new(Body::new(Frames::of(vec![Ok(Frame::data(data)), Ok(Frame::trailers(trailers))])));
    *response.version_mut() = http::Version::HTTP_2;
    *response.headers_mut() = metadata.into_headers();
    *response.extensions_mut() = extensions;
    if !response.headers().is_empty() {
        for reserved in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
            response.headers_mut().remove(reserved);
        }
    }
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    response
}

/// A body made of given frames, then of the rest of another body, if any.
struct Frames {
    head: VecDeque<Result<Frame<Bytes>, Status>>,
    rest: Option<Body>,
}

impl Frames {
    fn of(frames: Vec<Result<Frame<Bytes>, Status>>) -> Self {
        Self { head: frames.into(), rest: None }
    }
}

impl HttpBody for Frames {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(frame) = self.head.pop_front() {
            return Poll::Ready(Some(frame));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_empty() && self.rest.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let head: u64 = self.head.iter().filter_map(|f| f.as_ref().ok()?.data_ref()).map(|d| d.len() as u64).sum();
        match &self.rest {
            None => SizeHint::with_exact(head),
            Some(rest) => {
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(head + rest.lower());
                if let Some(upper) = rest.upper() {
                    hint.set_upper(head + upper);
                }
                hint
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use tally_proto::etcdserverpb::{RangeRequest, RangeResponse};

    fn framed(message: &impl Message) -> Bytes {
        grpc_frame::encode(message).unwrap()
    }

    fn request(frames: Vec<Result<Frame<Bytes>, Status>>) -> http::Request<Body> {
        http::Request::builder().uri("/etcdserverpb.KV/Range").body(Body::new(Frames::of(frames))).unwrap()
    }

    fn range() -> RangeRequest {
        RangeRequest { key: b"k".to_vec(), limit: 3, ..Default::default() }
    }

    /// The frames a replayed request's body yields, data joined.
    async fn replayed(decoded: Decoded<RangeRequest>) -> (Bytes, Option<http::HeaderMap>) {
        let Decoded::Replay(req) = decoded else { panic!("expected a replay") };
        let mut body = req.into_body();
        let (mut data, mut trailers) = (BytesMut::new(), None);
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            if let Some(d) = frame.data_ref() {
                data.extend_from_slice(d);
            }
            if let Ok(t) = frame.into_trailers() {
                trailers = Some(t);
            }
        }
        (data.freeze(), trailers)
    }

    #[tokio::test]
    async fn a_plain_request_is_decoded_even_across_data_frames() {
        let bytes = framed(&range());
        let frames = vec![Ok(Frame::data(bytes.slice(..3))), Ok(Frame::data(bytes.slice(3..)))];
        let Decoded::Message(parts, message) = decode::<RangeRequest>(request(frames), 1024).await else {
            panic!("expected the message")
        };
        assert_eq!(message, range());
        assert_eq!(parts.uri.path(), "/etcdserverpb.KV/Range");
    }

    #[tokio::test]
    async fn anything_but_the_plain_case_is_replayed_byte_for_byte() {
        let bytes = framed(&range());
        let mut compressed = BytesMut::from(&bytes[..]);
        compressed[0] = 1;
        let mut two = BytesMut::from(&bytes[..]);
        two.extend_from_slice(&bytes);
        let cases = [
            ("compressed", compressed.freeze()),
            ("two messages", two.freeze()),
            ("cut short", bytes.slice(..bytes.len() - 1)),
            ("prefix only", bytes.slice(..3)),
            ("empty", Bytes::new()),
            ("not protobuf", Bytes::from_static(&[0, 0, 0, 0, 2, 0xff, 0xff])),
        ];
        for (case, data) in cases {
            let decoded = decode::<RangeRequest>(request(vec![Ok(Frame::data(data.clone()))]), 1024).await;
            assert_eq!(replayed(decoded).await.0, data, "{case}");
        }
    }

    #[tokio::test]
    async fn an_oversized_request_is_replayed_with_the_rest_of_its_body() {
        let big = RangeRequest { key: vec![b'k'; 100], ..Default::default() };
        let bytes = framed(&big);
        let frames = vec![Ok(Frame::data(bytes.slice(..60))), Ok(Frame::data(bytes.slice(60..)))];
        let decoded = decode::<RangeRequest>(request(frames), 50).await;
        assert_eq!(replayed(decoded).await.0, bytes);
    }

    #[tokio::test]
    async fn request_trailers_are_replayed() {
        let bytes = framed(&range());
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-extra", http::HeaderValue::from_static("1"));
        let frames = vec![Ok(Frame::data(bytes.clone())), Ok(Frame::trailers(trailers.clone()))];
        let decoded = decode::<RangeRequest>(request(frames), 1024).await;
        assert_eq!(replayed(decoded).await, (bytes, Some(trailers)));
    }

    #[tokio::test]
    async fn an_answer_is_one_data_frame_and_the_ok_trailers() {
        let answer = RangeResponse { count: 2, ..Default::default() };
        let response = respond(Ok(tonic::Response::new(answer.clone())));
        assert_eq!(response.headers()["content-type"], "application/grpc");
        let mut body = response.into_body();
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data, framed(&answer));
        let trailers = body.frame().await.unwrap().unwrap().into_trailers().unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn an_error_is_a_trailers_only_answer() {
        let response = respond::<RangeResponse>(Err(Status::invalid_argument("etcdserver: key is not provided")));
        assert_eq!(response.headers()["grpc-status"], "3");
        assert_eq!(response.headers()["grpc-message"], "etcdserver:%20key%20is%20not%20provided");
        assert!(response.into_body().frame().await.is_none());
    }
}
