//! Files sent with form answers: written chunk by chunk (each chunk its own small write,
//! so a large file never holds the writer long and never sits in memory whole), checked by
//! SHA-256 when read back, attached to their event in the event's transaction, and deleted
//! with it by retention (pending files whose answer was never stored go after an hour).

use flowbot_core::files::FileRef;
use sqlx::Row;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{Result, Store, StoreError};

/// Bytes per stored chunk.
pub const CHUNK: usize = 256 * 1024;
/// How long a file may wait for its answer to be stored.
const PENDING_FOR_MS: i64 = 3600 * 1000;

/// A stored file, as a download names it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    pub id: String,
    pub flow_id: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    /// The event it came with, once attached.
    pub event_id: Option<String>,
}

impl Store {
    /// Write a file from `reader` as pending (attached later by the enqueue of its event),
    /// under `id`; at most `limit` bytes are taken. Returns its reference.
    pub async fn save_file(
        &self,
        id: &str,
        flow_id: &str,
        name: &str,
        content_type: &str,
        reader: &mut (impl AsyncRead + Unpin),
        limit: u64,
    ) -> Result<FileRef> {
        let now = self.now_ms();
        let (fid, flow, n, ct) = (
            id.to_string(),
            flow_id.to_string(),
            name.to_string(),
            content_type.to_string(),
        );
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO files (id, flow_id, name, content_type, state, created_at) \
                         VALUES ($1, $2, $3, $4, 'pending', $5)",
                    )
                    .bind(fid)
                    .bind(flow)
                    .bind(n)
                    .bind(ct)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size: u64 = 0;
        let mut seq: i64 = 0;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                let got = reader
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|e| StoreError::Io {
                        path: std::path::PathBuf::from(name),
                        source: e,
                    })?;
                if got == 0 {
                    break;
                }
                filled += got;
            }
            if filled == 0 {
                break;
            }
            buf.truncate(filled);
            size += filled as u64;
            if size > limit {
                return Err(StoreError::Conflict(format!(
                    "the file is larger than {limit} bytes"
                )));
            }
            ctx.update(&buf);
            let fid = id.to_string();
            self.inner
                .writer
                .write(move |conn| {
                    Box::pin(async move {
                        sqlx::query(
                            "INSERT INTO file_chunks (file_id, seq, data) VALUES ($1, $2, $3)",
                        )
                        .bind(fid)
                        .bind(seq)
                        .bind(buf)
                        .execute(&mut *conn)
                        .await?;
                        Ok(())
                    })
                })
                .await?;
            seq += 1;
            if filled < CHUNK {
                break;
            }
        }
        let sha = crate::crypto::hex(ctx.finish().as_ref());
        let (fid, s) = (id.to_string(), sha.clone());
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("UPDATE files SET size = $2, sha256 = $3 WHERE id = $1")
                        .bind(fid)
                        .bind(size as i64)
                        .bind(s)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(FileRef {
            file_id: id.to_string(),
            name: name.to_string(),
            size,
            content_type: content_type.to_string(),
            sha256: sha,
        })
    }

    pub async fn file(&self, id: &str) -> Result<FileInfo> {
        let r = sqlx::query(
            "SELECT id, flow_id, name, content_type, size, sha256, event_id FROM files WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("file {id} not found")))?;
        let size: i64 = r.try_get("size")?;
        Ok(FileInfo {
            id: r.try_get("id")?,
            flow_id: r.try_get("flow_id")?,
            name: r.try_get("name")?,
            content_type: r.try_get("content_type")?,
            size: size.max(0) as u64,
            sha256: r.try_get("sha256")?,
            event_id: r.try_get("event_id")?,
        })
    }

    /// One chunk of a file (`None` past its end): a download streams them in order.
    pub async fn file_chunk(&self, id: &str, seq: i64) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT data FROM file_chunks WHERE file_id = $1 AND seq = $2")
                .bind(id.to_string())
                .bind(seq)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// A whole attached file, checked against its size and SHA-256 (for an attachment:
    /// at most 25 MB, as a form takes).
    pub async fn read_file(&self, id: &str) -> Result<(FileInfo, Vec<u8>)> {
        let info = self.file(id).await?;
        let mut out = Vec::with_capacity(info.size as usize);
        let mut seq = 0;
        while let Some(chunk) = self.file_chunk(id, seq).await? {
            out.extend_from_slice(&chunk);
            seq += 1;
        }
        let sha = crate::crypto::sha256_hex(&out);
        if out.len() as u64 != info.size || sha != info.sha256 {
            return Err(StoreError::Corrupt(format!(
                "file {id} ({}) does not match its checksum",
                info.name
            )));
        }
        Ok((info, out))
    }

    /// The run a file came with (its event's run), for who may download it.
    pub async fn run_of_file(&self, id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT r.id FROM files f JOIN runs r ON r.event_id = f.event_id WHERE f.id = $1 LIMIT 1",
        )
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?)
    }

    /// Delete files whose event is gone, and pending files older than an hour.
    pub(crate) async fn purge_files(&self) -> Result<u64> {
        let stale = self.now_ms() - PENDING_FOR_MS;
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let ids: Vec<String> = sqlx::query_scalar(
                        "SELECT f.id FROM files f WHERE (f.state = 'pending' AND f.created_at < $1) \
                         OR (f.state = 'attached' AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = f.event_id)) \
                         LIMIT 200",
                    )
                    .bind(stale)
                    .fetch_all(&mut *conn)
                    .await?;
                    for id in &ids {
                        sqlx::query("DELETE FROM file_chunks WHERE file_id = $1")
                            .bind(id.clone())
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("DELETE FROM files WHERE id = $1")
                            .bind(id.clone())
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(ids.len() as u64)
                })
            })
            .await
    }
}
