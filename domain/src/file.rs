//! The `File` aggregate: one stream per uploaded attachment, holding its metadata only. The
//! bytes live in the file store, content-addressed by their SHA-256, so two files with the same
//! bytes share one stored object; the log says who uploaded what, when, under which name.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::values::AccountId;

/// What an upload records (the bytes are already stored under `sha256`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub owner: AccountId,
    /// Lowercase hex SHA-256 of the bytes: their key in the file store.
    pub sha256: String,
    /// The media type sniffed from the bytes (never the client's claim).
    pub media_type: String,
    pub size: u64,
    /// The name the client gave, cleaned of any path.
    pub filename: String,
}

/// Commands of a file's stream (its aggregate id is the file id).
#[derive(Debug, Clone, PartialEq)]
pub enum FileCommand {
    Upload { meta: FileMeta, at: DateTime<Utc> },
    Delete { at: DateTime<Utc> },
}

/// Events of a file's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FileEvent {
    FileUploaded {
        #[serde(flatten)]
        meta: FileMeta,
        at: DateTime<Utc>,
    },
    FileDeleted {
        at: DateTime<Utc>,
    },
}

impl DomainEvent for FileEvent {
    fn event_type(&self) -> String {
        match self {
            Self::FileUploaded { .. } => "FileUploaded".to_owned(),
            Self::FileDeleted { .. } => "FileDeleted".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        crate::personal::SEALED_SINCE.to_owned()
    }
}

/// Why a file command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("a file with this id exists")]
    AlreadyExists,
    #[error("no such file")]
    NotFound,
}

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileState {
    #[default]
    New,
    Stored,
    Deleted,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct File {
    state: FileState,
    /// Whose key seals the file's name and digest.
    #[serde(default)]
    owner: Option<crate::values::AccountId>,
}

impl crate::personal::DataSubject for File {
    fn data_subject(&self, _aggregate_id: &str) -> Option<String> {
        self.owner.as_ref().map(ToString::to_string)
    }
}

impl Aggregate for File {
    const TYPE: &'static str = "File";
    type Command = FileCommand;
    type Event = FileEvent;
    type Error = FileError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            FileCommand::Upload { meta, at } => {
                if self.state != FileState::New {
                    return Err(FileError::AlreadyExists);
                }
                sink.write(FileEvent::FileUploaded { meta, at }, self).await;
            }
            FileCommand::Delete { at } => {
                if self.state != FileState::Stored {
                    return Err(FileError::NotFound);
                }
                sink.write(FileEvent::FileDeleted { at }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.state = match event {
            FileEvent::FileUploaded { meta, .. } => {
                self.owner = Some(meta.owner);
                FileState::Stored
            }
            FileEvent::FileDeleted { .. } => FileState::Deleted,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    fn meta() -> FileMeta {
        FileMeta {
            owner: AccountId(Uuid::from_u128(1)),
            sha256: "ab".repeat(32),
            media_type: "image/png".into(),
            size: 3,
            filename: "a.png".into(),
        }
    }

    fn uploaded() -> FileEvent {
        FileEvent::FileUploaded {
            meta: meta(),
            at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_upload_records_the_metadata_once() {
        TestFramework::<File>::with(())
            .given_no_previous_events()
            .when(FileCommand::Upload {
                meta: meta(),
                at: DateTime::UNIX_EPOCH,
            })
            .then_expect_events(vec![uploaded()]);
        TestFramework::<File>::with(())
            .given(vec![uploaded()])
            .when(FileCommand::Upload {
                meta: meta(),
                at: DateTime::UNIX_EPOCH,
            })
            .then_expect_error(FileError::AlreadyExists);
    }

    #[test]
    fn a_file_is_deleted_once_and_its_id_is_never_reused() {
        let deleted = FileEvent::FileDeleted {
            at: DateTime::UNIX_EPOCH,
        };
        TestFramework::<File>::with(())
            .given(vec![uploaded()])
            .when(FileCommand::Delete {
                at: DateTime::UNIX_EPOCH,
            })
            .then_expect_events(vec![deleted.clone()]);
        TestFramework::<File>::with(())
            .given(vec![uploaded(), deleted.clone()])
            .when(FileCommand::Delete {
                at: DateTime::UNIX_EPOCH,
            })
            .then_expect_error(FileError::NotFound);
        TestFramework::<File>::with(())
            .given(vec![uploaded(), deleted])
            .when(FileCommand::Upload {
                meta: meta(),
                at: DateTime::UNIX_EPOCH,
            })
            .then_expect_error(FileError::AlreadyExists);
        TestFramework::<File>::with(())
            .given_no_previous_events()
            .when(FileCommand::Delete {
                at: DateTime::UNIX_EPOCH,
            })
            .then_expect_error(FileError::NotFound);
    }

    #[test]
    fn the_stored_payload_is_flat() {
        let json = serde_json::to_value(uploaded()).unwrap();
        assert_eq!(json["FileUploaded"]["sha256"], "ab".repeat(32));
        assert_eq!(json["FileUploaded"]["filename"], "a.png");
    }
}
