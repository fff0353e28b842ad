//! What an upload is, decided from its bytes: the client's file name and declared type are never
//! trusted for the type (a PNG named `.pdf` is a PNG; HTML named `.png` is refused). The name
//! only picks the text subtype of bytes that are already known to be text.
//!
//! | bytes | media type | limit |
//! |---|---|---|
//! | PNG, JPEG, GIF, WebP signatures | `image/png`, `image/jpeg`, `image/gif`, `image/webp` | 8 MB |
//! | `%PDF-` | `application/pdf` | 32 MB |
//! | UTF-8 text, no NUL or other binary control bytes | `text/markdown` (`.md`), `text/csv` (`.csv`), `application/json` (`.json` that parses), else `text/plain` (source code included) | 8 MB |
//! | HTML (the WHATWG sniffing tags), XML or SVG markup | refused: a browser would run it | – |
//! | anything else | refused | – |

/// What the bytes are, broadly (it decides the limit and how a model receives them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Image,
    Pdf,
    Text,
}

impl Class {
    /// The largest upload of this class, in bytes.
    pub fn limit(self) -> usize {
        match self {
            Class::Image | Class::Text => 8 * 1024 * 1024,
            Class::Pdf => 32 * 1024 * 1024,
        }
    }
}

/// The sniffed type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    pub media_type: &'static str,
    pub class: Class,
}

/// Why an upload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    #[error("the file is empty")]
    Empty,
    #[error(
        "HTML, XML and SVG files are not accepted (they can carry scripts); \
         send them as text in the message"
    )]
    Markup,
    #[error(
        "the file's type is not accepted: images (PNG, JPEG, GIF, WebP), PDF and text files are"
    )]
    Unsupported,
}

/// The largest upload of any class: what a request body may hold.
pub const MAX_UPLOAD: usize = 32 * 1024 * 1024;

/// Sniffs `bytes` (the whole file) named `filename`.
pub fn sniff(bytes: &[u8], filename: &str) -> Result<Sniffed, SniffError> {
    if bytes.is_empty() {
        return Err(SniffError::Empty);
    }
    let image = |media_type| Sniffed {
        media_type,
        class: Class::Image,
    };
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(image("image/png"));
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(image("image/jpeg"));
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Ok(image("image/gif"));
    }
    if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        return Ok(image("image/webp"));
    }
    if bytes.starts_with(b"%PDF-") {
        return Ok(Sniffed {
            media_type: "application/pdf",
            class: Class::Pdf,
        });
    }
    let text = text_of(bytes).ok_or(SniffError::Unsupported)?;
    if is_markup(text) {
        return Err(SniffError::Markup);
    }
    let extension = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let media_type = match extension.as_str() {
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "json" if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => "application/json",
        _ => "text/plain",
    };
    Ok(Sniffed {
        media_type,
        class: Class::Text,
    })
}

/// The bytes as text, if they are UTF-8 (a BOM allowed) without NUL or other control bytes
/// that text does not hold.
fn text_of(bytes: &[u8]) -> Option<&str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).ok()?;
    let binary = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0C'));
    (!binary).then_some(text)
}

/// Whether text starts (after white space) like HTML by the WHATWG MIME sniffing rules, or like
/// XML or SVG.
fn is_markup(text: &str) -> bool {
    const TAGS: &[&str] = &[
        "<!doctype html",
        "<html",
        "<head",
        "<script",
        "<iframe",
        "<h1",
        "<div",
        "<font",
        "<table",
        "<a",
        "<style",
        "<title",
        "<b",
        "<body",
        "<br",
        "<p",
        "<!--",
    ];
    let start = text.trim_start();
    let head: String = start.chars().take(32).collect::<String>().to_lowercase();
    if head.starts_with("<?xml") || head.starts_with("<svg") {
        return true;
    }
    TAGS.iter().any(|tag| {
        head.strip_prefix(tag).is_some_and(|rest| {
            // The tag must end there (`<a ` or `<a>`, not `<abbr`); `<!--` needs nothing after.
            *tag == "<!--" || rest.starts_with([' ', '>', '\t', '\n', '\r', '\x0C'])
        })
    })
}

/// A file name as given, without any directories, control characters or surrounding space,
/// at most 255 bytes; `file` when nothing is left.
pub fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    cleaned = cleaned.trim().to_owned();
    while cleaned.len() > 255 {
        cleaned.pop();
    }
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "file".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn the_bytes_decide_the_type_not_the_name() {
        let cases: &[(&[u8], &str, Result<&str, SniffError>)] = &[
            (PNG, "photo.png", Ok("image/png")),
            (PNG, "report.pdf", Ok("image/png")),
            (b"\xFF\xD8\xFF\xE0\0\x10JFIF", "a.txt", Ok("image/jpeg")),
            (b"GIF89a\x01\0\x01\0", "a.gif", Ok("image/gif")),
            (b"RIFF\x24\0\0\0WEBPVP8 ", "a.webp", Ok("image/webp")),
            (
                b"RIFF\x24\0\0\0WAVEfmt ",
                "a.webp",
                Err(SniffError::Unsupported),
            ),
            (b"%PDF-1.7\n", "scan.png", Ok("application/pdf")),
            (b"<!DOCTYPE html><p>hi", "cat.png", Err(SniffError::Markup)),
            (b"  \n<html>", "a.txt", Err(SniffError::Markup)),
            (
                b"<script>alert(1)</script>",
                "a.md",
                Err(SniffError::Markup),
            ),
            (
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
                "a.svg",
                Err(SniffError::Markup),
            ),
            (b"<?xml version=\"1.0\"?>", "a.txt", Err(SniffError::Markup)),
            (b"<abbr> is not a sniffing tag", "a.txt", Ok("text/plain")),
            (b"# Title\n\nbody", "notes.md", Ok("text/markdown")),
            (b"a,b\n1,2\n", "data.CSV", Ok("text/csv")),
            (b"{\"a\": [1, 2]}", "data.json", Ok("application/json")),
            (b"{not json", "data.json", Ok("text/plain")),
            (b"fn main() {}\n", "main.rs", Ok("text/plain")),
            (b"\xEF\xBB\xBFwith a BOM", "a.txt", Ok("text/plain")),
            (
                b"PK\x03\x04\x14\0\0\0",
                "a.docx",
                Err(SniffError::Unsupported),
            ),
            (
                b"\x7FELF\x02\x01\x01",
                "a.txt",
                Err(SniffError::Unsupported),
            ),
            (b"text\0with a NUL", "a.txt", Err(SniffError::Unsupported)),
            (b"\xC3\x28 not UTF-8", "a.txt", Err(SniffError::Unsupported)),
            (b"", "a.txt", Err(SniffError::Empty)),
        ];
        for (bytes, name, expected) in cases {
            let got = sniff(bytes, name).map(|s| s.media_type);
            assert_eq!(
                &got,
                expected,
                "{name}: {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn each_class_has_its_limit() {
        assert_eq!(sniff(PNG, "a").unwrap().class.limit(), 8 * 1024 * 1024);
        assert_eq!(sniff(b"%PDF-", "a").unwrap().class.limit(), MAX_UPLOAD);
        assert_eq!(sniff(b"hi", "a").unwrap().class.limit(), 8 * 1024 * 1024);
    }

    #[test]
    fn file_names_lose_their_directories_and_control_characters() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\Users\\me\\a b.png"), "a b.png");
        assert_eq!(clean_filename("bad\u{0}\nname.txt"), "badname.txt");
        assert_eq!(clean_filename(" .. "), "file");
        assert_eq!(clean_filename(&"é".repeat(200)).len(), 254);
    }
}
