//! What handlers answer with: a whole response ([`full`], [`text`]) or a stream (a body
//! marked [`Streaming`]).

use std::convert::Infallible;
use std::task::Poll;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Frame};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// A response body: a whole one ([`full`]) or a stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What a response body's `poll_frame` returns.
pub type PolledFrame = Poll<Option<Result<Frame<Bytes>, Infallible>>>;

/// Put in a response's extensions by a handler whose body is a long-lived stream.
#[derive(Debug, Clone, Copy)]
pub struct Streaming;

/// A whole response.
pub fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A whole plain-text response.
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    full(status, "text/plain; charset=utf-8", body)
}
