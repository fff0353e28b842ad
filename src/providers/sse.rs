//! An incremental Server-Sent Events decoder shared by the provider adapters.
//!
//! Feed it the response body in chunks of any size ([`SseDecoder::feed`]) and it hands back the
//! complete items: events ([`SseEvent`]: `event` name, `data` lines joined with `\n`, `id`) and
//! comment lines ([`SseItem::Comment`], which adapters ignore). Lines may end in `\n`, `\r\n` or
//! `\r`, and a chunk may split a line, a line ending or a UTF-8 sequence anywhere: bytes are only
//! decoded once their line is complete. [`SseDecoder::finish`] flushes a last event that was not
//! followed by a blank line. Parsing follows the WHATWG `text/event-stream` rules (one optional
//! space after the colon, events without `data` are not dispatched, unknown fields ignored).

use futures::{Stream, StreamExt};

use super::{ProviderError, ProviderEvent, ProviderStream};

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if the event had one.
    pub event: Option<String>,
    /// All `data:` lines of the event, joined with `\n`.
    pub data: String,
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
}

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A complete event.
    Event(SseEvent),
    /// A comment line (`: keep-alive`), without the colon and the one optional space after it.
    Comment(String),
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental decoder; one per response body.
#[derive(Debug)]
pub struct SseDecoder {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one belongs to it.
    skip_lf: bool,
    /// Still at the very start of the body (a UTF-8 BOM there is dropped).
    at_start: bool,
    /// Fields of the event being assembled.
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self {
            line: Vec::new(),
            skip_lf: false,
            at_start: true,
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
        }
    }

    /// Takes the next chunk of the body and returns the items it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        let mut items = Vec::new();
        let mut rest = chunk;
        if self.skip_lf && !rest.is_empty() {
            self.skip_lf = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let is_cr = rest[pos] == b'\r';
            rest = &rest[pos + 1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut items);
        }
        self.line.extend_from_slice(rest);
        items
    }

    /// The body ended: completes an unterminated last line and dispatches a pending event.
    pub fn finish(&mut self) -> Vec<SseItem> {
        let mut items = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut items);
        }
        self.dispatch(&mut items);
        self.skip_lf = false;
        items
    }

    fn process_line(&mut self, mut line: &[u8], items: &mut Vec<SseItem>) {
        if self.at_start {
            self.at_start = false;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(items);
            return;
        }
        if let Some(comment) = line.strip_prefix(b":") {
            let comment = comment.strip_prefix(b" ").unwrap_or(comment);
            items.push(SseItem::Comment(
                String::from_utf8_lossy(comment).into_owned(),
            ));
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            // Per the spec an id containing NUL is ignored.
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            _ => {} // `retry` and unknown fields
        }
    }

    fn dispatch(&mut self, items: &mut Vec<SseItem>) {
        let event = self.event.take();
        let id = self.id.take();
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        items.push(SseItem::Event(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id,
        }));
    }
}

/// One provider's mapping from SSE items to events; [`events_from_body`] drives it.
pub trait SseMapper: Default + Send + 'static {
    /// Maps one decoded item (comments included: most providers ignore them).
    fn on_item(&mut self, item: SseItem) -> Result<Vec<ProviderEvent>, ProviderError>;
    /// The body ended (`cause` is the transport error that ended it, if any).
    fn on_end(&mut self, cause: Option<&str>) -> Result<Vec<ProviderEvent>, ProviderError>;
    /// Whether the stream is complete (a terminal frame was seen); later input is not read.
    fn is_done(&self) -> bool {
        false
    }
}

/// Decodes an SSE body (any chunking) and maps it to events. A transport error ends the body like
/// an EOF would, with its text kept in the "stream ended early" error.
pub fn events_from_body<M, S, B>(body: S) -> ProviderStream
where
    M: SseMapper,
    S: Stream<Item = Result<B, String>> + Send + 'static,
    B: AsRef<[u8]> + Send,
{
    Box::pin(async_stream::stream! {
        let mut body = Box::pin(body);
        let mut decoder = SseDecoder::new();
        let mut mapper = M::default();
        let mut cause = None;
        loop {
            let items = match body.next().await {
                Some(Ok(bytes)) => decoder.feed(bytes.as_ref()),
                Some(Err(e)) => {
                    cause = Some(e);
                    break;
                }
                None => break,
            };
            for item in items {
                match mapper.on_item(item) {
                    Ok(events) => {
                        for event in events {
                            yield Ok(event);
                        }
                    }
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                }
                if mapper.is_done() {
                    return;
                }
            }
        }
        // A partial line after a broken connection is not trustworthy; after a clean EOF it is a
        // last event without its blank line.
        let last_items = if cause.is_none() { decoder.finish() } else { Vec::new() };
        for item in last_items {
            match mapper.on_item(item) {
                Ok(events) => {
                    for event in events {
                        yield Ok(event);
                    }
                }
                Err(e) => {
                    yield Err(e);
                    return;
                }
            }
        }
        match mapper.on_end(cause.as_deref()) {
            Ok(events) => {
                for event in events {
                    yield Ok(event);
                }
            }
            Err(e) => yield Err(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(d: &str) -> SseItem {
        SseItem::Event(SseEvent {
            data: d.to_owned(),
            ..SseEvent::default()
        })
    }

    /// Feeds `body` in pieces of `size` bytes, then finishes.
    fn decode_in_pieces(body: &[u8], size: usize) -> Vec<SseItem> {
        let mut decoder = SseDecoder::new();
        let mut items = Vec::new();
        for piece in body.chunks(size) {
            items.extend(decoder.feed(piece));
        }
        items.extend(decoder.finish());
        items
    }

    #[test]
    fn events_are_split_on_blank_lines() {
        let items = decode_in_pieces(b"data: one\n\ndata: two\n\n", 1000);
        assert_eq!(items, vec![data("one"), data("two")]);
    }

    #[test]
    fn every_split_point_gives_the_same_items() {
        let body = "event: greet\nid: 7\ndata: héllo ✓\ndata: second line\n\n: ping\r\ndata:x\r\n\r\ndata: y\r\rdata: z\n\n".as_bytes();
        let expected = vec![
            SseItem::Event(SseEvent {
                event: Some("greet".into()),
                data: "héllo ✓\nsecond line".into(),
                id: Some("7".into()),
            }),
            SseItem::Comment("ping".into()),
            data("x"),
            data("y"),
            data("z"),
        ];
        for size in 1..=body.len() {
            assert_eq!(decode_in_pieces(body, size), expected, "piece size {size}");
        }
    }

    #[test]
    fn a_utf8_sequence_split_across_chunks_is_reassembled() {
        let body = "data: 日本\n\n".as_bytes();
        let mut decoder = SseDecoder::new();
        // Split inside the first three-byte character.
        assert!(decoder.feed(&body[..7]).is_empty());
        assert_eq!(decoder.feed(&body[7..]), vec![data("日本")]);
    }

    #[test]
    fn cr_at_the_end_of_a_chunk_then_lf_is_one_line_ending() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.feed(b"data: a\r").is_empty());
        assert!(decoder.feed(b"\n").is_empty());
        assert_eq!(decoder.feed(b"\r\n"), vec![data("a")]);
    }

    #[test]
    fn lone_cr_line_endings_work() {
        assert_eq!(
            decode_in_pieces(b"data: a\r\rdata: b\r\r", 3),
            vec![data("a"), data("b")]
        );
    }

    #[test]
    fn comments_are_returned_as_their_own_items() {
        let items = decode_in_pieces(b": OPENROUTER PROCESSING\n\n:keep-alive\ndata: 1\n\n", 5);
        assert_eq!(
            items,
            vec![
                SseItem::Comment("OPENROUTER PROCESSING".into()),
                SseItem::Comment("keep-alive".into()),
                data("1"),
            ]
        );
    }

    #[test]
    fn the_last_event_without_a_blank_line_is_flushed_on_finish() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.feed(b"data: [DONE]").is_empty());
        assert_eq!(decoder.finish(), vec![data("[DONE]")]);
        let mut decoder = SseDecoder::new();
        assert!(decoder.feed(b"data: end\n").is_empty());
        assert_eq!(decoder.finish(), vec![data("end")]);
    }

    #[test]
    fn only_one_space_after_the_colon_is_removed() {
        assert_eq!(
            decode_in_pieces(b"data:  two spaces\n\n", 4),
            vec![data(" two spaces")]
        );
    }

    #[test]
    fn empty_data_lines_join_with_newlines() {
        assert_eq!(
            decode_in_pieces(b"data\ndata:\ndata: x\n\n", 2),
            vec![data("\n\nx")]
        );
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        assert_eq!(
            decode_in_pieces(b"event: ping\nid: 3\n\ndata: real\n\n", 4),
            vec![data("real")]
        );
    }

    #[test]
    fn unknown_fields_and_retry_are_ignored() {
        assert_eq!(
            decode_in_pieces(b"retry: 1000\nfoo: bar\ndata: x\n\n", 6),
            vec![data("x")]
        );
    }

    #[test]
    fn a_leading_byte_order_mark_is_dropped() {
        assert_eq!(
            decode_in_pieces(b"\xEF\xBB\xBFdata: x\n\n", 1),
            vec![data("x")]
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(
            decode_in_pieces(b"data: a\xFFb\n\n", 3),
            vec![data("a\u{FFFD}b")]
        );
    }
}
