//! Password hashing (argon2id) with bounded work.
//!
//! Each argon2id hash or check takes about 19 MiB of memory and tens of milliseconds of CPU.
//! Run without a bound, a burst of logins holds hundreds of them at once. So hashing runs on a
//! fixed pool of threads, one per permit, and a request waits at most [`QUEUE_WAIT`] for a
//! permit before it is answered `503 unavailable` with `Retry-After`.
//!
//! The memory of a check is this module's, not the `argon2` crate's: each thread keeps one
//! buffer of blocks and reuses it for every check it runs (zeroed after each), so a node's
//! hashing memory is its hashers' buffers and nothing else, whatever the allocator does with
//! freed memory. (Allocated per check, the 19 MiB blocks fragmented glibc's heap — 100 checks
//! in a burst left 350–450 MB resident for good — and mimalloc keeps freed huge blocks
//! resident for a while: 110 MB after the same burst, against 75 MB before it.)

use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{Semaphore, oneshot};

use crate::error::ApiError;

/// How long a request waits for a free hasher before it is refused.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// The most blocks a thread keeps for its checks: the default parameters' 19 MiB. A stored
/// hash with a larger memory cost (made elsewhere) gets memory of its own for its check.
const KEPT_BLOCKS: u32 = Params::DEFAULT_M_COST;

type Job = Box<dyn FnOnce() + Send>;

/// The node's password hashers.
pub struct Passwords {
    permits: Semaphore,
    jobs: Mutex<mpsc::Sender<Job>>,
    wait: Duration,
}

impl Passwords {
    /// A pool of `threads` hashers (at least one); requests wait up to `wait` for one.
    pub fn new(threads: usize, wait: Duration) -> Arc<Self> {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || {
                    loop {
                        let job = queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Arc::new(Self {
            permits: Semaphore::new(threads),
            jobs: Mutex::new(jobs),
            wait,
        })
    }

    /// Runs `work` on a hasher once one is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let busy = || ApiError::Unavailable("every password hasher is busy".into());
        let _permit = tokio::time::timeout(self.wait, self.permits.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job)
            .map_err(|_| ApiError::Internal("the password hashers stopped".into()))?;
        result
            .await
            .map_err(|_| ApiError::Internal("a password hasher failed".into()))
    }

    /// Hashes a password with argon2id (the crate's default parameters).
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || hash_password(password.as_bytes()))
            .await?
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Checks a password against a stored hash. With no hash (unknown email) it still spends
    /// the same time on a dummy hash, so response times do not reveal which emails exist.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        self.run(move || {
            let known = stored.is_some();
            let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
            let ok = verify_password(password.as_bytes(), &hash).unwrap_or(false);
            known && ok
        })
        .await
    }
}

/// Runs argon2 with memory of this module's own allocation (see the module docs).
fn argon2_into(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    thread_local! {
        static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let blocks = params.block_count();
    if blocks > KEPT_BLOCKS as usize {
        let mut memory = vec![Block::default(); blocks];
        return argon2.hash_password_into_with_memory(password, salt, out, &mut memory);
    }
    MEMORY.with_borrow_mut(|memory| {
        memory.resize(blocks, Block::default());
        let result = argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..]);
        // What is left of the password's derivation does not outlive the check.
        memory.fill(Block::default());
        result
    })
}

fn hash_password(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        Ok(argon2_into(&argon2, &params, password, salt_bytes, out)?)
    })?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into()?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored` (compared in constant time).
fn verify_password(password: &[u8], stored: &str) -> Result<bool, argon2::password_hash::Error> {
    let hash = PasswordHash::new(stored)?;
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return Ok(false);
    };
    let params = Params::try_from(&hash)?;
    let algorithm = Algorithm::try_from(hash.algorithm)?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let actual = Output::init_with(expected.len(), |out| {
        Ok(argon2_into(&argon2, &params, password, salt_bytes, out)?)
    })?;
    Ok(actual == expected)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(b"threadline-dummy-password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let passwords = Passwords::new(1, QUEUE_WAIT);
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!passwords.verify("wrong".into(), Some(hash)).await.unwrap());
        assert!(
            !passwords
                .verify("correct horse".into(), None)
                .await
                .unwrap()
        );
    }

    #[test]
    fn hashes_made_by_the_argon2_crate_itself_still_verify() {
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let stored = Argon2::default()
            .hash_password(b"old password", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password(b"old password", &stored).unwrap());
        assert!(!verify_password(b"other", &stored).unwrap());
        let ours = hash_password(b"new password").unwrap();
        use argon2::password_hash::PasswordVerifier;
        assert!(
            Argon2::default()
                .verify_password(b"new password", &PasswordHash::new(&ours).unwrap())
                .is_ok()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_beyond_the_pool_waits_and_then_is_refused_not_queued_forever() {
        let passwords = Passwords::new(1, Duration::from_millis(1));
        let results =
            futures::future::join_all((0..8).map(|_| passwords.verify("x".into(), None))).await;
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(ApiError::Unavailable(_))))
            .count();
        assert!(
            refused >= 1,
            "with one hasher and 1 ms of patience some wait in vain"
        );
        assert!(results.iter().any(Result::is_ok), "the first is served");
    }
}
