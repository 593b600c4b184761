//! Files people sent with a form reach the apps that pass them on (an email attachment, a
//! multipart part). A step's input holds a [`FileRef`]; the bytes are in the store, which
//! core does not know: the run's file source is set around the attempt by whoever runs it
//! (the worker) and read by the connector that needs the bytes.
//!
//! A task-local rather than a field of every call: the source belongs to the run the way
//! its tracing span does, and only the few apps that send files ask for it.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

pub use crate::form::FileRef;

/// Where a run's files are read from.
#[async_trait]
pub trait FileSource: Send + Sync {
    /// The file's bytes, checked against its size and checksum.
    async fn read(&self, file: &FileRef) -> Result<Vec<u8>, String>;
}

tokio::task_local! {
    static FILES: Arc<dyn FileSource>;
}

/// Run `f` with `source` as the file source of the calls it makes.
pub async fn with_files<F: Future>(source: Arc<dyn FileSource>, f: F) -> F::Output {
    FILES.scope(source, f).await
}

/// Read a file a step's input refers to.
pub async fn read(file: &FileRef) -> Result<Vec<u8>, String> {
    let source = FILES.try_with(Arc::clone).map_err(|_| {
        format!(
            "the file `{}` can be sent only by a run on a server (`flowbot serve`), which keeps it",
            file.name
        )
    })?;
    source.read(file).await
}
