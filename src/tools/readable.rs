//! Readable text from fetched content: the main text of an HTML page, plain text as it is, and
//! the text of a PDF, capped at a number of characters so a tool result stays a sensible size.
//!
//! HTML is parsed with `scraper` (html5ever, the browser-grade HTML5 parser, building an
//! `ego-tree` DOM). Real pages are often malformed (unclosed `<p>`, stray tags), and html5ever
//! repairs them exactly as a browser would and decodes every named and numeric entity; the
//! lighter `tl` does neither. The tree is walked iteratively, never recursively, so a page
//! nested a million `<div>`s deep cannot overflow the stack.
//!
//! PDF text comes from `lopdf` (without its default features: no rayon, no chrono). It tries the
//! empty user password on encrypted files, as readers do, and bounds how far a stream may
//! decompress. Its calls run inside `catch_unwind`, so a PDF that trips a bug in it is an error,
//! not a crash. PDF extraction is CPU-bound: call [`readable_text`] from `spawn_blocking` in
//! async code.
//!
//! # Layout
//! - [`ContentKind`]: which media types are read, and how (the fetcher accepts exactly these).
//! - [`readable_text`], [`readable_text_capped`], [`Readable`], [`ReadableError`]: the API.
//! - the HTML walk: choosing the content root, dropping what is not content, line building.
//! - the PDF extraction.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ego_tree::NodeRef;
use scraper::node::Element;
use scraper::{Html, Node};

/// Characters of text kept by [`readable_text`].
pub const DEFAULT_MAX_CHARS: usize = 100_000;

/// How far one PDF stream may decompress (lopdf's own default is 256 MiB; a fetched PDF is at
/// most a few megabytes, so a stream inflating past this is a bomb, not a document).
const PDF_MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;

/// How a media type is turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// `text/html`, `application/xhtml+xml`.
    Html,
    /// `text/plain`, `text/markdown`, `text/x-markdown`, `text/csv`, `application/json`.
    Text,
    /// `application/pdf`.
    Pdf,
}

impl ContentKind {
    /// The kind of a media type (case-insensitive, parameters such as `; charset=utf-8`
    /// ignored), or `None` when it is not read.
    pub fn of(media_type: &str) -> Option<ContentKind> {
        let essence = media_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/html" | "application/xhtml+xml" => Some(ContentKind::Html),
            "text/plain" | "text/markdown" | "text/x-markdown" | "text/csv"
            | "application/json" => Some(ContentKind::Text),
            "application/pdf" => Some(ContentKind::Pdf),
            _ => None,
        }
    }
}

/// The readable text of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readable {
    /// The HTML `<title>` (or the first `<h1>` of the content), or the PDF's `/Title`.
    pub title: Option<String>,
    /// The text: for HTML one line per heading, paragraph, list item or other block, with
    /// whitespace collapsed.
    pub text: String,
    /// Whether `text` was cut at the character cap.
    pub truncated: bool,
}

/// Why no text could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadableError {
    /// The media type is not one of [`ContentKind`]'s.
    #[error("content of type {0:?} cannot be read as text")]
    UnsupportedType(String),
    /// The PDF is corrupt, encrypted with a password, or has no readable text.
    #[error("the PDF cannot be read: {0}")]
    Pdf(String),
}

/// The readable text of `bytes` of type `media_type`, capped at [`DEFAULT_MAX_CHARS`].
pub fn readable_text(media_type: &str, bytes: &[u8]) -> Result<Readable, ReadableError> {
    readable_text_capped(media_type, bytes, DEFAULT_MAX_CHARS)
}

/// [`readable_text`] with a cap of `max_chars` characters.
pub fn readable_text_capped(
    media_type: &str,
    bytes: &[u8],
    max_chars: usize,
) -> Result<Readable, ReadableError> {
    let Some(kind) = ContentKind::of(media_type) else {
        return Err(ReadableError::UnsupportedType(media_type.to_owned()));
    };
    let (title, text) = match kind {
        ContentKind::Html => html_text(bytes),
        ContentKind::Text => (None, String::from_utf8_lossy(bytes).into_owned()),
        ContentKind::Pdf => pdf_text(bytes, max_chars)?,
    };
    let (text, truncated) = cap(text, max_chars);
    Ok(Readable {
        title,
        text,
        truncated,
    })
}

/// `text` cut to at most `max_chars` characters, and whether it was cut.
fn cap(mut text: String, max_chars: usize) -> (String, bool) {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => {
            text.truncate(at);
            (text, true)
        }
        None => (text, false),
    }
}

// ---------------------------------------------------------------------------------------------
// HTML

type DomNode<'a> = NodeRef<'a, Node>;

/// Elements whose content is never the page's text.
const DROPPED: &[&str] = &[
    "script", "style", "noscript", "template", "head", "nav", "aside", "form", "button", "select",
    "textarea", "input", "iframe", "object", "embed", "svg", "canvas", "video", "audio",
];

/// Elements that start and end a line.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "blockquote",
    "body",
    "caption",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "li",
    "main",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tr",
    "ul",
];

fn html_text(bytes: &[u8]) -> (Option<String>, String) {
    let source = String::from_utf8_lossy(bytes);
    let document = Html::parse_document(&source);
    let roots = content_roots(&document);
    let mut lines = Lines::default();
    for root in &roots {
        walk(*root, &mut lines);
        lines.line_break();
    }
    let title = document_title(&document).or_else(|| {
        roots
            .iter()
            .flat_map(|root| root.descendants())
            .find(|node| element_named(*node, "h1") && shown(*node))
            .and_then(|h1| {
                let mut heading = Lines::default();
                walk(h1, &mut heading);
                let heading = heading.finish().replace('\n', " ");
                (!heading.is_empty()).then_some(heading)
            })
    });
    (title, lines.finish())
}

/// The subtrees that hold the page's content: the first shown `<main>` (or `role=main`), else
/// every shown outermost `<article>`, else `<body>`, else the whole document.
fn content_roots(document: &Html) -> Vec<DomNode<'_>> {
    let all = || document.tree.root().descendants();
    if let Some(main) = all().find(|node| {
        let Node::Element(element) = node.value() else {
            return false;
        };
        let is_main = element.name() == "main"
            || element
                .attr("role")
                .is_some_and(|role| role.trim().eq_ignore_ascii_case("main"));
        is_main && shown(*node)
    }) {
        return vec![main];
    }
    let articles: Vec<_> = all()
        .filter(|node| element_named(*node, "article") && shown(*node))
        .filter(|node| !node.ancestors().any(|a| element_named(a, "article")))
        .collect();
    if !articles.is_empty() {
        return articles;
    }
    match all().find(|node| element_named(*node, "body")) {
        Some(body) => vec![body],
        None => vec![document.tree.root()],
    }
}

fn document_title(document: &Html) -> Option<String> {
    let title = document
        .tree
        .root()
        .descendants()
        .find(|node| element_named(*node, "title"))?;
    let mut lines = Lines::default();
    for node in title.descendants() {
        if let Node::Text(text) = node.value() {
            lines.push_text(text);
        }
    }
    let title = lines.finish();
    (!title.is_empty()).then_some(title)
}

fn element_named(node: DomNode<'_>, name: &str) -> bool {
    matches!(node.value(), Node::Element(element) if element.name() == name)
}

/// Whether neither `node` nor any of its ancestors is dropped.
fn shown(node: DomNode<'_>) -> bool {
    std::iter::once(node)
        .chain(node.ancestors())
        .all(|n| !dropped(n))
}

/// Whether this node's subtree is left out of the text.
fn dropped(node: DomNode<'_>) -> bool {
    let Node::Element(element) = node.value() else {
        return matches!(
            node.value(),
            Node::Comment(_) | Node::ProcessingInstruction(_)
        );
    };
    let name = element.name();
    if DROPPED.contains(&name) || hidden(element) {
        return true;
    }
    match name {
        // A page's banner and footer are chrome; an `<article>`'s own header holds its heading
        // and byline, and its footer its notes, so those stay.
        "header" | "footer" => !node.ancestors().any(|a| element_named(a, "article")),
        // A closed dialog is not shown.
        "dialog" => element.attr("open").is_none(),
        _ => false,
    }
}

fn hidden(element: &Element) -> bool {
    if element.attr("hidden").is_some() {
        return true;
    }
    if element
        .attr("aria-hidden")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return true;
    }
    element.attr("style").is_some_and(|style| {
        let style: String = style
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        style.contains("display:none") || style.contains("visibility:hidden")
    })
}

/// Appends the text of `root`'s subtree to `lines`, in document order, without recursion.
fn walk(root: DomNode<'_>, lines: &mut Lines) {
    let mut node = root;
    'walk: loop {
        if enter(node, lines)
            && let Some(child) = node.first_child()
        {
            node = child;
            continue;
        }
        loop {
            leave(node, lines);
            if node.id() == root.id() {
                break 'walk;
            }
            if let Some(next) = node.next_sibling() {
                node = next;
                continue 'walk;
            }
            match node.parent() {
                Some(parent) => node = parent,
                None => break 'walk,
            }
        }
    }
}

/// Handles the start of a node; whether to visit its children.
fn enter(node: DomNode<'_>, lines: &mut Lines) -> bool {
    match node.value() {
        Node::Text(text) => {
            lines.push_text(text);
            false
        }
        Node::Element(element) => {
            if dropped(node) {
                return false;
            }
            match element.name() {
                "br" => lines.line_break(),
                "td" | "th" => lines.push_text(" "),
                name if BLOCKS.contains(&name) => lines.line_break(),
                _ => {}
            }
            true
        }
        Node::Document | Node::Fragment => true,
        _ => false,
    }
}

fn leave(node: DomNode<'_>, lines: &mut Lines) {
    if let Node::Element(element) = node.value()
        && BLOCKS.contains(&element.name())
    {
        lines.line_break();
    }
}

/// Text gathered into lines, whitespace collapsed to single spaces, no empty lines.
#[derive(Default)]
struct Lines {
    done: Vec<String>,
    current: String,
    space: bool,
}

impl Lines {
    fn push_text(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_whitespace() {
                self.space = true;
            } else {
                if self.space && !self.current.is_empty() {
                    self.current.push(' ');
                }
                self.space = false;
                self.current.push(c);
            }
        }
    }

    fn line_break(&mut self) {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
        self.space = false;
    }

    fn finish(mut self) -> String {
        self.line_break();
        self.done.join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// PDF

fn pdf_text(bytes: &[u8], max_chars: usize) -> Result<(Option<String>, String), ReadableError> {
    match catch_unwind(AssertUnwindSafe(|| pdf_text_unguarded(bytes, max_chars))) {
        Ok(result) => result,
        Err(_) => Err(ReadableError::Pdf("the PDF parser failed on it".to_owned())),
    }
}

fn pdf_text_unguarded(
    bytes: &[u8],
    max_chars: usize,
) -> Result<(Option<String>, String), ReadableError> {
    let options = lopdf::LoadOptions {
        max_decompressed_size: Some(PDF_MAX_DECOMPRESSED),
        ..Default::default()
    };
    let document = lopdf::Document::load_mem_with_options(bytes, options)
        .map_err(|e| ReadableError::Pdf(e.to_string()))?;
    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(ReadableError::Pdf("it has no pages".to_owned()));
    }
    let mut text = String::new();
    let mut chars = 0;
    let mut first_error = None;
    let mut read_any = false;
    for number in pages.keys() {
        // A page in a font lopdf cannot decode should not lose the others.
        match document.extract_text_with_limit(&[*number], PDF_MAX_DECOMPRESSED) {
            Ok(page) => {
                read_any = true;
                let page = tidy_pdf_page(&page);
                if page.is_empty() {
                    continue;
                }
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                chars += page.chars().count();
                text.push_str(&page);
                if chars > max_chars {
                    break;
                }
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if !read_any && let Some(error) = first_error {
        return Err(ReadableError::Pdf(error.to_string()));
    }
    if text.is_empty() {
        // Scanned pages, or a damaged file lenient parsing half-recovered: nothing to read.
        return Err(ReadableError::Pdf(
            "it has no extractable text (a scanned document?)".to_owned(),
        ));
    }
    Ok((pdf_title(&document), text))
}

/// A page's text with trailing spaces and runs of blank lines removed.
fn tidy_pdf_page(page: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in page.lines().map(str::trim_end) {
        if line.is_empty() && out.last().is_none_or(|last| last.is_empty()) {
            continue;
        }
        out.push(line);
    }
    while out.last().is_some_and(|last| last.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

fn pdf_title(document: &lopdf::Document) -> Option<String> {
    let info = document.trailer.get(b"Info").ok()?;
    let (_, info) = document.dereference(info).ok()?;
    let title = info.as_dict().ok()?.get(b"Title").ok()?;
    let (_, title) = document.dereference(title).ok()?;
    let title = lopdf::decode_text_string(title).ok()?;
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(source: &str) -> Readable {
        readable_text("text/html; charset=utf-8", source.as_bytes()).unwrap()
    }

    #[test]
    fn the_main_element_is_preferred_over_the_rest_of_the_page() {
        let page = html(
            "<html><head><title>  The   Page </title><style>p{}</style></head><body>\
             <header><h1>Site banner</h1></header>\
             <nav><ul><li>Home</li><li>About</li></ul></nav>\
             <div>Outside main</div>\
             <main><h2>Heading</h2><p>First paragraph.</p><ul><li>one</li><li>two</li></ul></main>\
             <footer>Copyright</footer></body></html>",
        );
        assert_eq!(page.title.as_deref(), Some("The Page"));
        assert_eq!(page.text, "Heading\nFirst paragraph.\none\ntwo");
        assert!(!page.truncated);
    }

    #[test]
    fn role_main_counts_as_main() {
        let page = html("<div>chrome</div><div role=\"Main\"><p>Body text</p></div>");
        assert_eq!(page.text, "Body text");
    }

    #[test]
    fn articles_are_used_without_a_main_and_keep_their_own_header() {
        let page = html(
            "<aside>Related</aside>\
             <article><header><h1>Post title</h1><p>by Ann</p></header><p>Post body.</p>\
             <article><p>A nested comment.</p></article></article>\
             <article><p>Second post.</p></article><div>Sidebar</div>",
        );
        assert_eq!(
            page.text,
            "Post title\nby Ann\nPost body.\nA nested comment.\nSecond post."
        );
    }

    #[test]
    fn without_main_or_article_the_body_is_read_without_chrome() {
        let page = html(
            "<body><header>Banner</header><nav>Menu</nav><h1>Title</h1>\
             <p>Text <script>var x = '<p>no</p>';</script>here.</p>\
             <noscript>Enable JS</noscript><form><label>Email</label><input></form>\
             <footer>Foot</footer></body>",
        );
        assert_eq!(page.text, "Title\nText here.");
        assert_eq!(page.title.as_deref(), Some("Title"));
    }

    #[test]
    fn entities_are_decoded_and_whitespace_is_collapsed() {
        let page = html(
            "<main><p>Fish &amp; chips&nbsp;&mdash; caf&eacute; &#x27;ok&#39; &lt;tag&gt;</p>\
             <p>  spread\n\n   over\tlines  </p><p>a<b>b</b> <i>c</i><br>d</p></main>",
        );
        assert_eq!(
            page.text,
            "Fish & chips \u{2014} caf\u{e9} 'ok' <tag>\nspread over lines\nab c\nd"
        );
    }

    #[test]
    fn hidden_elements_are_dropped() {
        let page = html(
            "<main><p>shown</p><p hidden>attr</p><p aria-hidden=\"true\">aria</p>\
             <div style=\"color: red; DISPLAY : none\">css</div>\
             <span style=\"visibility:hidden\">invisible</span><template><p>tpl</p></template>\
             <dialog><p>closed dialog</p></dialog><p>also shown</p></main>",
        );
        assert_eq!(page.text, "shown\nalso shown");
    }

    #[test]
    fn a_hidden_main_is_not_preferred() {
        let page = html("<main hidden><p>draft</p></main><article><p>live</p></article>");
        assert_eq!(page.text, "live");
    }

    #[test]
    fn a_deeply_nested_page_does_not_overflow_the_stack() {
        let depth = 100_000;
        let source = format!(
            "<main>{}deep{}</main>",
            "<span>".repeat(depth),
            "</span>".repeat(depth)
        );
        let page = html(&source);
        assert_eq!(page.text, "deep");
    }

    #[test]
    fn plain_text_is_kept_as_is_and_invalid_utf8_is_replaced() {
        let text = readable_text("text/markdown", b"# Title\n\n  indented\xff").unwrap();
        assert_eq!(text.text, "# Title\n\n  indented\u{fffd}");
        assert_eq!(text.title, None);
        let json = readable_text("Application/JSON", b"{\"a\": 1}").unwrap();
        assert_eq!(json.text, "{\"a\": 1}");
    }

    #[test]
    fn text_is_capped_at_the_character_limit() {
        let capped = readable_text_capped("text/plain", "héllo wörld".as_bytes(), 4).unwrap();
        assert_eq!(capped.text, "héll");
        assert!(capped.truncated);
        let exact = readable_text_capped("text/plain", b"abcd", 4).unwrap();
        assert_eq!(exact.text, "abcd");
        assert!(!exact.truncated);
    }

    #[test]
    fn other_media_types_are_refused() {
        assert_eq!(
            readable_text("image/png", b"\x89PNG"),
            Err(ReadableError::UnsupportedType("image/png".to_owned()))
        );
    }

    /// A minimal valid PDF: one page per text, Helvetica, an `/Info` title, a correct xref.
    fn minimal_pdf(title: &str, pages: &[&str]) -> Vec<u8> {
        let page_ids: Vec<usize> = (0..pages.len()).map(|i| 5 + 2 * i).collect();
        let mut objects = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            format!(
                "<< /Type /Pages /Kids [{}] /Count {} >>",
                page_ids
                    .iter()
                    .map(|id| format!("{id} 0 R"))
                    .collect::<Vec<_>>()
                    .join(" "),
                pages.len()
            ),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                .to_owned(),
            format!("<< /Title ({title}) >>"),
        ];
        for (i, text) in pages.iter().enumerate() {
            let content = format!("BT /F1 24 Tf 72 720 Td ({text}) Tj ET");
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                 /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                page_ids[i] + 1
            ));
            objects.push(format!(
                "<< /Length {} >>\nstream\n{content}\nendstream",
                content.len()
            ));
        }
        let mut pdf = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
        }
        let xref = pdf.len();
        let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
        for offset in offsets {
            table.push_str(&format!("{offset:010} 00000 n \n"));
        }
        pdf.extend_from_slice(table.as_bytes());
        pdf.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        pdf
    }

    #[test]
    fn the_text_and_title_of_a_pdf_are_extracted() {
        let pdf = minimal_pdf("Annual Report", &["Hello PDF world", "Second page"]);
        let read = readable_text("application/pdf", &pdf).unwrap();
        assert_eq!(read.title.as_deref(), Some("Annual Report"));
        assert!(read.text.contains("Hello PDF world"), "{:?}", read.text);
        assert!(read.text.contains("Second page"), "{:?}", read.text);
        assert!(
            read.text.find("Hello").unwrap() < read.text.find("Second").unwrap(),
            "pages in order: {:?}",
            read.text
        );
        assert!(!read.truncated);
    }

    #[test]
    fn pdf_text_is_capped_too() {
        let pdf = minimal_pdf("T", &["Hello PDF world", "Second page"]);
        let read = readable_text_capped("application/pdf", &pdf, 5).unwrap();
        assert_eq!(read.text, "Hello");
        assert!(read.truncated);
    }

    #[test]
    fn a_pdf_without_text_is_an_error() {
        let pdf = minimal_pdf("Scan", &["", ""]);
        let result = readable_text("application/pdf", &pdf);
        assert!(
            matches!(&result, Err(ReadableError::Pdf(why)) if why.contains("no extractable text")),
            "{result:?}"
        );
    }

    #[test]
    fn a_corrupt_pdf_is_an_error_not_a_panic() {
        let valid = minimal_pdf("T", &["Hello"]);
        let corrupt: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"%PDF-1.4\nthis is not a pdf at all".to_vec(),
            b"<html>not a pdf</html>".to_vec(),
            valid[..valid.len() / 3].to_vec(),
            valid
                .iter()
                .enumerate()
                .map(|(i, b)| if i % 7 == 3 { b'#' } else { *b })
                .collect(),
        ];
        for (i, bytes) in corrupt.iter().enumerate() {
            let result = readable_text("application/pdf", bytes);
            assert!(
                matches!(result, Err(ReadableError::Pdf(_))),
                "corrupt PDF {i}: {result:?}"
            );
        }
        assert!(matches!(
            readable_text("application/pdf", b"%PDF-1.7\n%%EOF"),
            Err(ReadableError::Pdf(_))
        ));
    }
}
