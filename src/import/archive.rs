//! A Threadline account export (the zip `GET /v1/me/export` writes): each `threads/*.json`
//! entry is one conversation in the [`threadline`](super::threadline) format; every other
//! entry (the profile, preferences, the ledger) is left alone.
//!
//! An entry that cannot be read is skipped with its reason, like a bad conversation of a JSON
//! file. The archive as a whole fails when it is not a zip, holds no thread, holds more than
//! [`MAX_CONVERSATIONS`] threads, or unpacks to more than [`MAX_UNPACKED`] bytes (a zip bomb
//! stops there, not at the end of memory).

use std::io::{Cursor, Read};

use super::{ImportError, MAX_CONVERSATIONS, Parsed, Skipped, parse};

/// Most bytes the archive's thread entries may unpack to, together.
pub const MAX_UNPACKED: u64 = 512 * 1024 * 1024;

/// Whether `bytes` start like a zip archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// Reads the threads of an account export.
pub fn parse_archive(bytes: &[u8]) -> Result<Parsed, ImportError> {
    parse_within(bytes, MAX_UNPACKED)
}

fn parse_within(bytes: &[u8], max_unpacked: u64) -> Result<Parsed, ImportError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ImportError::NotJson(format!("an unreadable zip archive ({e})")))?;
    let mut parsed = Parsed::default();
    let mut index = 0;
    let mut unpacked = 0u64;
    for entry in 0..archive.len() {
        let mut file = archive
            .by_index(entry)
            .map_err(|e| ImportError::NotJson(format!("an unreadable zip archive ({e})")))?;
        let Ok(name) = file.name().map(|n| n.into_owned()) else {
            continue;
        };
        if file.is_dir() || !(name.starts_with("threads/") && name.ends_with(".json")) {
            continue;
        }
        if index == MAX_CONVERSATIONS {
            return Err(ImportError::TooMany {
                limit: MAX_CONVERSATIONS,
            });
        }
        let mut json = Vec::new();
        let room = max_unpacked - unpacked;
        let read = (&mut file).take(room + 1).read_to_end(&mut json);
        unpacked += json.len() as u64;
        if unpacked > max_unpacked {
            return Err(ImportError::TooLarge {
                limit: max_unpacked,
            });
        }
        let result = read
            .map_err(|e| format!("{name}: unreadable ({e})"))
            .and_then(|_| parse(&json).map_err(|e| format!("{name}: {e}")));
        match result {
            Ok(one) => {
                parsed.conversations.extend(one.conversations);
                parsed
                    .skipped
                    .extend(one.skipped.into_iter().map(|s| Skipped {
                        index,
                        reason: format!("{name}: {}", s.reason),
                        ..s
                    }));
            }
            Err(reason) => parsed.skipped.push(Skipped {
                index,
                external_id: None,
                title: None,
                reason,
            }),
        }
        index += 1;
    }
    if index == 0 {
        return Err(ImportError::UnknownFormat);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn archive(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, body) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(body.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn thread(id: &str) -> String {
        serde_json::json!({
            "format": "threadline.thread", "version": 1, "id": id, "title": id,
            "created_at": "2026-01-02T03:04:05Z", "current_message_id": "b",
            "messages": [
                {"id": "a", "parent_id": null, "role": "user", "text": "hi"},
                {"id": "b", "parent_id": "a", "role": "assistant", "text": "hello"},
            ],
        })
        .to_string()
    }

    #[test]
    fn the_threads_of_an_account_export_are_read_and_the_rest_left_alone() {
        let bytes = archive(&[
            ("account.json", r#"{"id": "x"}"#),
            ("threads/one.json", &thread("one")),
            ("threads/broken.json", "{not json"),
            ("threads/two.json", &thread("two")),
            ("ledger.csv", "at,kind\n"),
        ]);
        assert!(is_zip(&bytes));
        let parsed = parse_archive(&bytes).unwrap();
        let ids: Vec<_> = parsed
            .conversations
            .iter()
            .map(|c| c.external_id.as_str())
            .collect();
        assert_eq!(ids, ["one", "two"]);
        assert_eq!(parsed.skipped.len(), 1);
        assert_eq!(parsed.skipped[0].index, 1);
        assert!(
            parsed.skipped[0]
                .reason
                .starts_with("threads/broken.json: ")
        );
    }

    #[test]
    fn an_archive_without_threads_or_not_a_zip_is_refused() {
        let bytes = archive(&[("account.json", "{}")]);
        assert_eq!(parse_archive(&bytes), Err(ImportError::UnknownFormat));
        assert!(matches!(
            parse_archive(b"PK\x03\x04 and then nothing"),
            Err(ImportError::NotJson(_))
        ));
    }

    #[test]
    fn a_zip_bomb_stops_at_the_unpacked_limit() {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("threads/bomb.json", options).unwrap();
        let limit = 1024 * 1024;
        zip.write_all(&vec![b' '; 4 * limit]).unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        assert!(bytes.len() < limit / 100, "{}", bytes.len());
        assert_eq!(
            parse_within(&bytes, limit as u64),
            Err(ImportError::TooLarge {
                limit: limit as u64
            })
        );
    }
}
