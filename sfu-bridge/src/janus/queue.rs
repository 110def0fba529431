//! What every Janus client needs before it talks to Janus: requests in the
//! order the client sent them, none after the client closed, each counted
//! in `signaling_mcu_messages_total`.
//!
//! One task per client performs its requests one after another. The proxy
//! handles each payload in its own task and a gRPC `sendoffer` can reach
//! the same subscriber, so requests arrive concurrently; an answer must not
//! overtake its offer. A task instead of a lock held across the Janus round
//! trip means nothing waits on a lock while the network is slow, and a
//! request that was handed over finishes even if its caller gives up, so
//! Janus never sees half of a negotiation.

use std::sync::Weak;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sfu::{Request, SfuError};

/// Requests waiting for one client. Callers beyond it wait for room, in
/// the order they came (tokio's bounded channel is fair), which keeps a
/// misbehaving peer from queueing without bound.
const QUEUE_DEPTH: usize = 16;

type Reply = Result<Option<Value>, SfuError>;

/// The part of a Janus client its request task drives.
#[async_trait::async_trait]
pub(crate) trait Perform: Send + Sync + 'static {
    /// Talks to Janus for one request; never called concurrently for one
    /// client.
    async fn perform(&self, request: Request, sid: &str) -> Reply;
}

struct Job {
    request: Request,
    sid: String,
    reply: oneshot::Sender<Reply>,
}

pub(crate) struct RequestQueue {
    closed: CancellationToken,
    jobs: mpsc::Sender<Job>,
}

/// The receiving end, until [`Jobs::start`] hands it to the client's task.
pub(crate) struct Jobs {
    rx: mpsc::Receiver<Job>,
    closed: CancellationToken,
}

impl RequestQueue {
    pub fn new() -> (RequestQueue, Jobs) {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        let closed = CancellationToken::new();
        let jobs_end = Jobs {
            rx,
            closed: closed.clone(),
        };
        (RequestQueue { closed, jobs }, jobs_end)
    }

    /// Hands `request` to the client's task and waits for Janus's reply.
    pub async fn submit(&self, request: Request, sid: &str) -> Reply {
        if self.is_closed() {
            return Err(SfuError::Closed);
        }
        crate::metrics::METRICS
            .messages_total
            .with_label_values(&[request.kind()])
            .inc();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request,
            sid: sid.to_owned(),
            reply,
        };
        tokio::select! {
            sent = self.jobs.send(job) => sent.map_err(|_| SfuError::Closed)?,
            () = self.closed.cancelled() => return Err(SfuError::Closed),
        }
        // The task drops the reply unanswered only when the client closed.
        answer.await.unwrap_or(Err(SfuError::Closed))
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Marks the client closed and ends its task once the request in
    /// flight is done; true the first time.
    pub fn close(&self) -> bool {
        if self.closed.is_cancelled() {
            return false;
        }
        self.closed.cancel();
        true
    }
}

impl Jobs {
    /// Starts the task that performs `client`'s requests. It holds the
    /// client only while a request runs and ends when the client closes
    /// or is dropped, or at `shutdown`.
    pub fn start<C: Perform>(
        self,
        tasks: &TaskTracker,
        client: Weak<C>,
        shutdown: CancellationToken,
    ) {
        tasks.spawn(self.run(client, shutdown));
    }

    async fn run<C: Perform>(mut self, client: Weak<C>, shutdown: CancellationToken) {
        loop {
            let job = tokio::select! {
                biased;
                () = self.closed.cancelled() => return,
                () = shutdown.cancelled() => return,
                job = self.rx.recv() => job,
            };
            let Some(job) = job else { return };
            let Some(client) = client.upgrade() else {
                return;
            };
            let reply = client.perform(job.request, &job.sid).await;
            // The caller may have given up; the request was still done.
            let _ = job.reply.send(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use parking_lot::Mutex;

    use super::*;

    /// Records the requests it performs; the first one takes a while, so
    /// later ones queue behind it.
    #[derive(Default)]
    struct Recorder {
        done: Mutex<Vec<&'static str>>,
    }

    #[async_trait::async_trait]
    impl Perform for Recorder {
        async fn perform(&self, request: Request, _sid: &str) -> Reply {
            if matches!(request, Request::Offer(_)) {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            self.done.lock().push(request.kind());
            Ok(None)
        }
    }

    struct Started {
        recorder: Arc<Recorder>,
        queue: Arc<RequestQueue>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    }

    fn started() -> Started {
        let recorder = Arc::new(Recorder::default());
        let (queue, jobs) = RequestQueue::new();
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        jobs.start(&tasks, Arc::downgrade(&recorder), shutdown.clone());
        Started {
            recorder,
            queue: Arc::new(queue),
            tasks,
            shutdown,
        }
    }

    async fn ended(tasks: TaskTracker) {
        tasks.close();
        tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .unwrap_or_else(|_| panic!("the request task did not end"));
    }

    #[tokio::test]
    async fn requests_run_in_the_order_they_were_submitted() {
        let Started {
            recorder, queue, ..
        } = started();
        let offer = {
            let q = queue.clone();
            tokio::spawn(async move { q.submit(Request::Offer(Value::Null), "").await })
        };
        // Let the offer reach the task before the candidate is submitted.
        tokio::task::yield_now().await;
        let candidate = queue
            .submit(Request::Candidate(Value::Null), "")
            .await
            .map(|_| ());
        assert!(candidate.is_ok());
        assert!(matches!(offer.await, Ok(Ok(None))));
        assert_eq!(*recorder.done.lock(), vec!["offer", "candidate"]);
    }

    #[tokio::test]
    async fn a_request_whose_caller_gave_up_still_runs() {
        let Started {
            recorder, queue, ..
        } = started();
        let gave_up = tokio::time::timeout(
            Duration::from_millis(1),
            queue.submit(Request::Offer(Value::Null), ""),
        )
        .await;
        assert!(gave_up.is_err());
        queue
            .submit(Request::EndOfCandidates, "")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(*recorder.done.lock(), vec!["offer", "endOfCandidates"]);
    }

    #[tokio::test]
    async fn closing_refuses_new_requests_and_ends_the_task() {
        let Started { queue, tasks, .. } = started();
        assert!(queue.close());
        assert!(!queue.close());
        assert!(matches!(
            queue.submit(Request::EndOfCandidates, "").await,
            Err(SfuError::Closed)
        ));
        ended(tasks).await;
    }

    #[tokio::test]
    async fn a_dropped_client_ends_the_task() {
        let Started {
            recorder,
            queue,
            tasks,
            ..
        } = started();
        drop(recorder);
        drop(queue);
        ended(tasks).await;
    }

    /// A client its owner still holds does not keep the SFU from stopping.
    #[tokio::test]
    async fn shutdown_ends_the_task_of_a_client_still_held() {
        let Started {
            recorder: _recorder,
            queue,
            tasks,
            shutdown,
        } = started();
        shutdown.cancel();
        ended(tasks).await;
        assert!(matches!(
            queue.submit(Request::EndOfCandidates, "").await,
            Err(SfuError::Closed)
        ));
    }
}
