//! A fake Kubernetes API server for the agent's tests: enough of `/api/v1` for kube-rs's
//! `watcher` to list and watch Pods and Namespaces over real HTTP (no apiserver can be installed
//! here), with the failure modes a real apiserver has.
//!
//! Served: `GET /api/v1/pods`, `/api/v1/namespaces/{ns}/pods`, `/api/v1/namespaces` (and single
//! objects by name). Lists carry `metadata.resourceVersion`; `fieldSelector` (`spec.nodeName=…`,
//! any dotted field, `=`/`==`/`!=`) and equality-based `labelSelector` are honoured. `?watch=true`
//! streams newline-delimited `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":…}` chunks
//! from the requested `resourceVersion` (backlog from a bounded history, then live), with
//! bookmarks when `allowWatchBookmarks=true` and an end after `timeoutSeconds`. A watch from a
//! resourceVersion older than the history gets an `ERROR` event with a `410 Gone` Status (what the
//! apiserver sends after compaction), which makes kube-rs relist.
//!
//! Authorization: after [`FakeKube::enforce_rbac`] every request is made as the policy's ServiceAccount and
//! authorized like the apiserver's RBAC authorizer does, before routing: verb from the method (`GET` of one
//! object → `get`, of a collection → `list`, with `watch=true` → `watch`; `POST` → `create`, …), API group,
//! resource and namespace from the path, for any resource path (also ones the fake does not serve, such as
//! `/api/v1/nodes`). A request the rules do not allow gets `403` with the apiserver's `Forbidden` Status.
//! [`FakeKube::access`] lists every (verb, resource) served, so a test can compare them with the grants.
//!
//! Fault injection: [`FakeKube::drop_watches`] (connections reset mid-stream),
//! [`FakeKube::close_watches`] (clean end), [`FakeKube::expire_resource_versions`] (next watch
//! → 410), [`FakeKube::set_delay`] (every response late), [`FakeKube::set_unavailable`] (503).
//!
//! Objects are plain JSON (`serde_json::Value`), e.g. what `logrelay-testgen pods --kube-objects
//! DIR` writes; [`FakeKube::load_dir`] serves such a directory and follows its changes.

use crate::rbac::{RbacPolicy, Request as AuthzRequest};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

/// Changes kept for watches that resume from a resourceVersion; older ones get `410 Gone`.
pub const HISTORY_CAPACITY: usize = 10_000;

/// Capacity of the live change feed per watch; a watch that falls further behind gets `410 Gone`.
const FEED_CAPACITY: usize = 4096;

/// Default interval of `BOOKMARK` events on watches that allow them.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// How often [`FakeKube::load_dir`] looks for changed files.
pub const DIR_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Frames buffered per watch connection.
const WATCH_BUFFER: usize = 256;

/// The two resources served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `v1/Pod`.
    Pod,
    /// `v1/Namespace`.
    Namespace,
}

impl Resource {
    fn kind(self) -> &'static str {
        match self {
            Resource::Pod => "Pod",
            Resource::Namespace => "Namespace",
        }
    }
}

/// One change, as a watch event.
#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    resource: Resource,
    event_type: &'static str,
    object: Arc<Value>,
}

/// Counts of requests served, for assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FakeKubeStats {
    /// LIST requests of pods.
    pub pod_lists: u64,
    /// LIST requests of namespaces.
    pub namespace_lists: u64,
    /// WATCH requests of pods.
    pub pod_watches: u64,
    /// WATCH requests of namespaces.
    pub namespace_watches: u64,
    /// Watches answered with `410 Gone`.
    pub gone: u64,
    /// Requests refused with `403 Forbidden` by the enforced RBAC policy.
    pub forbidden: u64,
}

#[derive(Debug, Default)]
struct State {
    rv: u64,
    pods: BTreeMap<(String, String), Arc<Value>>,
    namespaces: BTreeMap<String, Arc<Value>>,
    history: VecDeque<Change>,
    /// Watches from a resourceVersion below this get 410.
    min_watch_rv: u64,
    stats: FakeKubeStats,
    delay: Duration,
    unavailable: bool,
    /// Enforced on every request when set.
    rbac: Option<RbacPolicy>,
    /// `verb resource` of every request that passed authorization.
    access: BTreeSet<String>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    feed: broadcast::Sender<Change>,
    /// Bumped to end watches: odd reasons are encoded in [`WatchEnd`].
    end_watches: watch::Sender<(u64, WatchEnd)>,
    active_watches: AtomicU64,
    bookmark_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchEnd {
    /// Reset the connection (no terminating chunk).
    Reset,
    /// End the response normally.
    Close,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn end(&self, how: WatchEnd) {
        self.end_watches.send_modify(|(generation, end)| {
            *generation += 1;
            *end = how;
        });
    }
}

/// The fake API server; stops when dropped.
#[derive(Debug)]
pub struct FakeKube {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    pollers: Mutex<Vec<JoinHandle<()>>>,
    kubeconfig: Mutex<Option<PathBuf>>,
}

type Body = BoxBody<Bytes, io::Error>;

impl FakeKube {
    /// Starts a server on a free loopback port.
    pub async fn start() -> io::Result<Self> {
        Self::start_with_bookmarks(DEFAULT_BOOKMARK_INTERVAL).await
    }

    /// Starts a server sending bookmarks every `bookmark_interval`.
    pub async fn start_with_bookmarks(bookmark_interval: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 1,
                min_watch_rv: 0,
                ..State::default()
            }),
            feed,
            end_watches: watch::Sender::new((0, WatchEnd::Close)),
            active_watches: AtomicU64::new(0),
            bookmark_interval,
        });
        let server_shared = shared.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = server_shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| route(shared.clone(), request));
                    // Connection errors (a client that went away, a reset watch) end only that connection.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            shared,
            server,
            pollers: Mutex::new(Vec::new()),
            kubeconfig: Mutex::new(None),
        })
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client configuration pointing at this server.
    pub fn client_config(&self) -> kube::Config {
        let uri = self.url().parse().unwrap_or_default();
        kube::Config::new(uri)
    }

    /// Writes a kubeconfig file for this server (once) and returns its path; removed on drop.
    pub fn kubeconfig_path(&self) -> io::Result<PathBuf> {
        let mut slot = self.kubeconfig.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(path) = slot.as_ref() {
            return Ok(path.clone());
        }
        let path = std::env::temp_dir().join(format!(
            "logrelay-fake-kube-{}-{}.kubeconfig",
            std::process::id(),
            self.addr.port()
        ));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    \
             user: fake\n    namespace: default\ncurrent-context: fake\n",
            url = self.url()
        );
        std::fs::write(&path, text)?;
        *slot = Some(path.clone());
        Ok(path)
    }

    /// Adds or replaces a pod (by namespace and name); returns its new resourceVersion.
    pub fn upsert_pod(&self, pod: Value) -> u64 {
        self.upsert(Resource::Pod, pod)
    }

    /// Adds or replaces a namespace (by name); returns its new resourceVersion.
    pub fn upsert_namespace(&self, namespace: Value) -> u64 {
        self.upsert(Resource::Namespace, namespace)
    }

    /// Deletes a pod; returns whether it existed.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> bool {
        self.delete(Resource::Pod, namespace, name)
    }

    /// Deletes a namespace; returns whether it existed.
    pub fn delete_namespace(&self, name: &str) -> bool {
        self.delete(Resource::Namespace, "", name)
    }

    /// The current pod object, if any.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        let state = self.shared.lock();
        state
            .pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|v| (**v).clone())
    }

    /// Resets every open watch connection mid-stream (clients see a broken body).
    pub fn drop_watches(&self) {
        self.shared.end(WatchEnd::Reset);
    }

    /// Ends every open watch normally (as a server-side timeout does).
    pub fn close_watches(&self) {
        self.shared.end(WatchEnd::Close);
    }

    /// Forgets the change history, as etcd compaction does: every watch resuming from an earlier
    /// resourceVersion gets `410 Gone` (open watches are closed so they must resume).
    pub fn expire_resource_versions(&self) {
        {
            let mut state = self.shared.lock();
            state.min_watch_rv = state.rv + 1;
            state.history.clear();
        }
        self.shared.end(WatchEnd::Close);
    }

    /// Delays every response (list, watch start, single get) by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    /// While `true`, every request gets `503 Service Unavailable` and open watches are reset.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.shared.lock().unavailable = unavailable;
        if unavailable {
            self.shared.end(WatchEnd::Reset);
        }
    }

    /// Authorizes every later request as `policy`'s ServiceAccount (see the module comment).
    pub fn enforce_rbac(&self, policy: RbacPolicy) {
        self.shared.lock().rbac = Some(policy);
    }

    /// `verb resource` of every request authorized so far (`list pods`, `watch namespaces`, …).
    pub fn access(&self) -> BTreeSet<String> {
        self.shared.lock().access.clone()
    }

    /// Request counts so far.
    pub fn stats(&self) -> FakeKubeStats {
        self.shared.lock().stats
    }

    /// Watch connections open now.
    pub fn active_watches(&self) -> u64 {
        self.shared.active_watches.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` watches are open; false on timeout.
    pub async fn wait_for_watches(&self, count: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.active_watches() < count {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Serves the objects under `dir` (`namespaces/*.json`, `pods/*.json`, as `logrelay-testgen
    /// pods --kube-objects` writes them) and follows changes every [`DIR_POLL_INTERVAL`]: a new or
    /// rewritten file is upserted, a pod rewritten with `metadata.deletionTimestamp` is updated and
    /// then deleted (as the kubelet does once its containers stopped), a removed file is deleted.
    pub fn load_dir(&self, dir: &Path) -> io::Result<()> {
        self.load_dir_hiding(dir, None)
    }

    /// Like [`FakeKube::load_dir`], but never serves the pods of `hidden` (namespace, Deployment
    /// name: pods named `<deployment>-…`), as for pods created and deleted while nobody watched.
    pub fn load_dir_hiding(&self, dir: &Path, hidden: Option<(String, String)>) -> io::Result<()> {
        let hidden = hidden.map(|(namespace, deployment)| (namespace, format!("{deployment}-")));
        let mut seen = HashMap::new();
        scan_dir(&self.shared, dir, hidden.as_ref(), &mut seen)?;
        let shared = self.shared.clone();
        let dir = dir.to_path_buf();
        let poller = tokio::spawn(async move {
            loop {
                tokio::time::sleep(DIR_POLL_INTERVAL).await;
                if let Err(err) = scan_dir(&shared, &dir, hidden.as_ref(), &mut seen) {
                    tracing::warn!(dir = %dir.display(), %err, "fake kube: could not scan objects");
                }
            }
        });
        self.pollers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(poller);
        Ok(())
    }

    fn upsert(&self, resource: Resource, object: Value) -> u64 {
        upsert(&self.shared, resource, object)
    }

    fn delete(&self, resource: Resource, namespace: &str, name: &str) -> bool {
        delete(&self.shared, resource, namespace, name)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.server.abort();
        for poller in self
            .pollers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            poller.abort();
        }
        self.shared.end(WatchEnd::Reset);
        if let Some(path) = self
            .kubeconfig
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A file seen by the directory poller: its (mtime, len) and the object's identity.
type SeenFiles = HashMap<PathBuf, ((SystemTime, u64), Resource, String, String)>;

/// `hidden`: (namespace, pod name prefix) of pods never served.
fn scan_dir(
    shared: &Shared,
    dir: &Path,
    hidden: Option<&(String, String)>,
    seen: &mut SeenFiles,
) -> io::Result<()> {
    let mut present = Vec::new();
    // Namespaces first, so a pod never arrives before its namespace.
    for (sub, resource) in [("namespaces", Resource::Namespace), ("pods", Resource::Pod)] {
        let entries = match std::fs::read_dir(dir.join(sub)) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            present.push(path.clone());
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let stamp = (meta.modified()?, meta.len());
            if seen.get(&path).is_some_and(|(s, ..)| *s == stamp) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(object) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            let namespace = str_at(&object, "metadata.namespace").to_owned();
            let name = str_at(&object, "metadata.name").to_owned();
            if resource == Resource::Pod
                && hidden.is_some_and(|(ns, prefix)| *ns == namespace && name.starts_with(prefix))
            {
                continue;
            }
            let deleting = resource == Resource::Pod
                && object
                    .pointer("/metadata/deletionTimestamp")
                    .is_some_and(|v| !v.is_null());
            upsert(shared, resource, object);
            if deleting {
                delete(shared, resource, &namespace, &name);
            }
            seen.insert(path, (stamp, resource, namespace, name));
        }
    }
    let gone: Vec<PathBuf> = seen
        .keys()
        .filter(|p| !present.contains(p))
        .cloned()
        .collect();
    for path in gone {
        if let Some((_, resource, namespace, name)) = seen.remove(&path) {
            delete(shared, resource, &namespace, &name);
        }
    }
    Ok(())
}

fn str_at<'a>(object: &'a Value, dotted: &str) -> &'a str {
    let pointer: String = dotted.split('.').map(|part| format!("/{part}")).collect();
    object
        .pointer(&pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn key_of(resource: Resource, object: &Value) -> (String, String) {
    let name = str_at(object, "metadata.name").to_owned();
    match resource {
        Resource::Pod => (str_at(object, "metadata.namespace").to_owned(), name),
        Resource::Namespace => (String::new(), name),
    }
}

fn record(state: &mut State, shared: &Shared, change: Change) {
    state.history.push_back(change.clone());
    while state.history.len() > HISTORY_CAPACITY {
        if let Some(old) = state.history.pop_front() {
            state.min_watch_rv = state.min_watch_rv.max(old.rv);
        }
    }
    // No receivers is fine: nobody is watching.
    let _ = shared.feed.send(change);
}

fn upsert(shared: &Shared, resource: Resource, mut object: Value) -> u64 {
    let mut state = shared.lock();
    state.rv += 1;
    let rv = state.rv;
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("resourceVersion".into(), json!(rv.to_string()));
        if !metadata.contains_key("uid") {
            metadata.insert("uid".into(), json!(format!("fake-uid-{rv}")));
        }
    }
    if object.get("apiVersion").is_none() {
        object["apiVersion"] = json!("v1");
    }
    if object.get("kind").is_none() {
        object["kind"] = json!(resource.kind());
    }
    let (namespace, name) = key_of(resource, &object);
    let object = Arc::new(object);
    let existed = match resource {
        Resource::Pod => state
            .pods
            .insert((namespace, name), object.clone())
            .is_some(),
        Resource::Namespace => state.namespaces.insert(name, object.clone()).is_some(),
    };
    let event_type = if existed { "MODIFIED" } else { "ADDED" };
    record(
        &mut state,
        shared,
        Change {
            rv,
            resource,
            event_type,
            object,
        },
    );
    rv
}

fn delete(shared: &Shared, resource: Resource, namespace: &str, name: &str) -> bool {
    let mut state = shared.lock();
    let removed = match resource {
        Resource::Pod => state.pods.remove(&(namespace.to_owned(), name.to_owned())),
        Resource::Namespace => state.namespaces.remove(name),
    };
    let Some(object) = removed else { return false };
    state.rv += 1;
    let rv = state.rv;
    let mut object = (*object).clone();
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    record(
        &mut state,
        shared,
        Change {
            rv,
            resource,
            event_type: "DELETED",
            object: Arc::new(object),
        },
    );
    true
}

/// What a request asks for.
struct Query {
    params: HashMap<String, String>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        let params = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(k), form_decode(v))
            })
            .collect();
        Self { params }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let escaped = (byte == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (byte, escaped) {
            (_, Some(value)) => {
                out.push(value);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed selector: (path or label key, operator, value).
#[derive(Debug, Clone)]
enum Term {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    Absent(String),
}

fn parse_selector(text: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let term = if let Some((k, v)) = part.split_once("!=") {
            Term::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once("==") {
            Term::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once('=') {
            Term::Eq(k.trim().into(), v.trim().into())
        } else if part.contains(' ') || part.contains('(') {
            return Err(format!("unsupported selector term {part:?}"));
        } else if let Some(k) = part.strip_prefix('!') {
            Term::Absent(k.trim().into())
        } else {
            Term::Exists(part.into())
        };
        terms.push(term);
    }
    Ok(terms)
}

fn field_matches(terms: &[Term], object: &Value) -> bool {
    terms.iter().all(|term| match term {
        Term::Eq(path, value) => str_at(object, path) == value,
        Term::Ne(path, value) => str_at(object, path) != value,
        Term::Exists(_) | Term::Absent(_) => true,
    })
}

fn label_matches(terms: &[Term], object: &Value) -> bool {
    let labels = object.pointer("/metadata/labels");
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    terms.iter().all(|term| match term {
        Term::Eq(key, value) => label(key) == Some(value.as_str()),
        Term::Ne(key, value) => label(key) != Some(value.as_str()),
        Term::Exists(key) => label(key).is_some(),
        Term::Absent(key) => label(key).is_none(),
    })
}

/// What a request is for, after routing.
struct Target {
    resource: Resource,
    /// Namespace restriction (pods only).
    namespace: Option<String>,
    /// A single object by name.
    name: Option<String>,
}

fn target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (resource, namespace, name) = match parts.as_slice() {
        ["api", "v1", "pods"] => (Resource::Pod, None, None),
        ["api", "v1", "namespaces"] => (Resource::Namespace, None, None),
        ["api", "v1", "namespaces", name] => (Resource::Namespace, None, Some(*name)),
        ["api", "v1", "namespaces", ns, "pods"] => (Resource::Pod, Some(*ns), None),
        ["api", "v1", "namespaces", ns, "pods", name] => (Resource::Pod, Some(*ns), Some(*name)),
        _ => return None,
    };
    Some(Target {
        resource,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    })
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    json_response(code, &body)
}

fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let mut response = Response::new(
        Full::new(bytes)
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = code;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn route(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (delay, unavailable) = {
        let state = shared.lock();
        (state.delay, state.unavailable)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if unavailable {
        return Ok(status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "injected outage",
        ));
    }
    let query = Query::parse(request.uri().query());
    if let Some(refused) = authorize(&shared, request.method(), request.uri().path(), &query) {
        return Ok(refused);
    }
    if request.method() != Method::GET {
        return Ok(status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the fake serves GET only",
        ));
    }
    let Some(target) = target(request.uri().path()) else {
        return Ok(status(StatusCode::NOT_FOUND, "NotFound", "no such path"));
    };
    let selectors = (
        parse_selector(query.get("fieldSelector").unwrap_or("")),
        parse_selector(query.get("labelSelector").unwrap_or("")),
    );
    let (Ok(fields), Ok(labels)) = selectors else {
        return Ok(status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "unsupported selector",
        ));
    };
    let filter = Filter {
        resource: target.resource,
        namespace: target.namespace.clone(),
        fields,
        labels,
    };
    if let Some(name) = &target.name {
        return Ok(get_one(&shared, &target, name));
    }
    if query.flag("watch") {
        return Ok(start_watch(shared, filter, &query));
    }
    Ok(list(&shared, &filter))
}

/// The authorization attributes of a resource request; `None` for non-resource paths (discovery, `/version`),
/// which every authenticated user may read.
fn attributes<'a>(method: &Method, path: &'a str, query: &Query) -> Option<AuthzRequest<'a>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (resource, namespace, name) = match rest {
        ["namespaces", namespace, resource, rest @ ..] => {
            (*resource, Some(*namespace), rest.first().copied())
        }
        [resource, rest @ ..] => (*resource, None, rest.first().copied()),
        [] => return None,
    };
    let verb = match (method, name) {
        (&Method::GET | &Method::HEAD, Some(_)) => "get",
        (&Method::GET | &Method::HEAD, None) if query.flag("watch") => "watch",
        (&Method::GET | &Method::HEAD, None) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        _ => "unknown",
    };
    Some(AuthzRequest {
        verb,
        api_group: group,
        resource,
        namespace,
        name,
    })
}

/// Authorizes a request against the enforced policy (none: everything is allowed) and records what it
/// accessed; `Some(403 response)` when refused.
fn authorize(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &Query,
) -> Option<Response<Body>> {
    let request = attributes(method, path, query)?;
    let AuthzRequest {
        verb,
        resource,
        name,
        ..
    } = request;
    let mut state = shared.lock();
    let refused = state
        .rbac
        .as_ref()
        .filter(|policy| !policy.allows(&request))
        .map(|policy| request.forbidden_message(policy.user()));
    let Some(message) = refused else {
        state.access.insert(format!("{verb} {resource}"));
        return None;
    };
    state.stats.forbidden += 1;
    tracing::debug!(%message, "fake kube: forbidden");
    let mut details = json!({"kind": resource});
    if let Some(name) = name {
        details["name"] = json!(name);
    }
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Forbidden", "details": details, "code": 403,
    });
    Some(json_response(StatusCode::FORBIDDEN, &body))
}

/// Which objects a list or watch covers.
#[derive(Clone)]
struct Filter {
    resource: Resource,
    namespace: Option<String>,
    fields: Vec<Term>,
    labels: Vec<Term>,
}

impl Filter {
    fn matches(&self, resource: Resource, object: &Value) -> bool {
        resource == self.resource
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| str_at(object, "metadata.namespace") == ns)
            && field_matches(&self.fields, object)
            && label_matches(&self.labels, object)
    }
}

fn get_one(shared: &Shared, target: &Target, name: &str) -> Response<Body> {
    let state = shared.lock();
    let found = match target.resource {
        Resource::Pod => state.pods.get(&(
            target.namespace.clone().unwrap_or_default(),
            name.to_owned(),
        )),
        Resource::Namespace => state.namespaces.get(name),
    };
    match found {
        Some(object) => json_response(StatusCode::OK, object),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{name} not found"),
        ),
    }
}

fn objects<'a>(
    state: &'a State,
    resource: Resource,
) -> Box<dyn Iterator<Item = &'a Arc<Value>> + 'a> {
    match resource {
        Resource::Pod => Box::new(state.pods.values()),
        Resource::Namespace => Box::new(state.namespaces.values()),
    }
}

fn list(shared: &Shared, filter: &Filter) -> Response<Body> {
    let mut state = shared.lock();
    match filter.resource {
        Resource::Pod => state.stats.pod_lists += 1,
        Resource::Namespace => state.stats.namespace_lists += 1,
    }
    let items: Vec<Value> = objects(&state, filter.resource)
        .filter(|o| filter.matches(filter.resource, o))
        .map(|o| (**o).clone())
        .collect();
    let body = json!({
        "apiVersion": "v1",
        "kind": format!("{}List", filter.resource.kind()),
        "metadata": {"resourceVersion": state.rv.to_string()},
        "items": items,
    });
    json_response(StatusCode::OK, &body)
}

fn event_line(event_type: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn gone_event() -> Bytes {
    event_line(
        "ERROR",
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version", "reason": "Expired", "code": 410,
        }),
    )
}

fn start_watch(shared: Arc<Shared>, filter: Filter, query: &Query) -> Response<Body> {
    let (tx, mut rx) = mpsc::channel::<Result<Frame<Bytes>, io::Error>>(WATCH_BUFFER);
    let bookmarks = query.flag("allowWatchBookmarks");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let requested = query.get("resourceVersion").unwrap_or("");

    let mut state = shared.lock();
    match filter.resource {
        Resource::Pod => state.stats.pod_watches += 1,
        Resource::Namespace => state.stats.namespace_watches += 1,
    }
    let mut backlog = Vec::new();
    let mut gone = false;
    let start_rv = match requested {
        "" | "0" => {
            // "Any" start: synthetic ADDED events for the current state, then live changes.
            for object in
                objects(&state, filter.resource).filter(|o| filter.matches(filter.resource, o))
            {
                backlog.push(event_line("ADDED", object));
            }
            state.rv
        }
        rv => match rv.parse::<u64>() {
            Ok(rv) if rv >= state.min_watch_rv => {
                for change in state.history.iter().filter(|c| c.rv > rv) {
                    if filter.matches(change.resource, &change.object) {
                        backlog.push(event_line(change.event_type, &change.object));
                    }
                }
                rv.max(state.history.back().map_or(rv, |c| c.rv))
            }
            _ => {
                gone = true;
                state.stats.gone += 1;
                0
            }
        },
    };
    let feed = shared.feed.subscribe();
    drop(state);

    let body_stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(body_stream)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if gone {
        tokio::spawn(async move {
            let _ = tx.send(Ok(Frame::data(gone_event()))).await;
        });
        return response;
    }
    let mut end = shared.end_watches.subscribe();
    end.borrow_and_update();
    let resource = filter.resource;
    tokio::spawn(async move {
        shared.active_watches.fetch_add(1, Ordering::SeqCst);
        let _ = serve_watch(
            &shared, filter, tx, backlog, feed, &mut end, start_rv, bookmarks, timeout,
        )
        .await;
        shared.active_watches.fetch_sub(1, Ordering::SeqCst);
        tracing::debug!(?resource, "fake kube: watch ended");
    });
    response
}

/// Feeds one watch until it ends; `Err(())` when the client went away.
#[allow(clippy::too_many_arguments)]
async fn serve_watch(
    shared: &Shared,
    filter: Filter,
    tx: mpsc::Sender<Result<Frame<Bytes>, io::Error>>,
    backlog: Vec<Bytes>,
    mut feed: broadcast::Receiver<Change>,
    end: &mut watch::Receiver<(u64, WatchEnd)>,
    mut last_rv: u64,
    bookmarks: bool,
    timeout: Option<Duration>,
) -> Result<(), ()> {
    let send = |bytes: Bytes| {
        let tx = tx.clone();
        async move { tx.send(Ok(Frame::data(bytes))).await.map_err(|_| ()) }
    };
    for line in backlog {
        send(line).await?;
    }
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut bookmark_tick = tokio::time::interval(shared.bookmark_interval);
    bookmark_tick.tick().await;
    loop {
        tokio::select! {
            biased;
            changed = end.changed() => {
                let how = if changed.is_ok() { end.borrow_and_update().1 } else { WatchEnd::Reset };
                if how == WatchEnd::Reset {
                    let _ = tx.send(Err(io::Error::new(io::ErrorKind::ConnectionReset, "injected reset"))).await;
                }
                return Ok(());
            }
            () = sleep_until_opt(deadline) => return Ok(()),
            change = feed.recv() => match change {
                Ok(change) => {
                    if change.rv <= last_rv {
                        continue;
                    }
                    last_rv = change.rv;
                    if filter.matches(change.resource, &change.object) {
                        send(event_line(change.event_type, &change.object)).await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    send(gone_event()).await?;
                    return Ok(());
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = bookmark_tick.tick(), if bookmarks => {
                let object = json!({
                    "kind": filter.resource.kind(), "apiVersion": "v1",
                    "metadata": {"resourceVersion": last_rv.to_string()},
                });
                send(event_line("BOOKMARK", &object)).await?;
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{
        Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, WatchEvent, WatchParams,
    };

    fn pods(fake: &FakeKube) -> Api<DynamicObject> {
        let client = kube::Client::try_from(fake.client_config()).expect("client");
        Api::all_with(
            client,
            &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Pod")),
        )
    }

    fn pod(ns: &str, name: &str, node: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns}, "spec": {"nodeName": node}})
    }

    async fn names(api: &Api<DynamicObject>, params: &ListParams) -> Vec<String> {
        let list = api.list(params).await.expect("lists");
        list.items
            .iter()
            .map(|o| o.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn lists_honour_the_node_field_selector() {
        let fake = FakeKube::start().await.expect("starts");
        fake.upsert_pod(pod("a", "here", "n1"));
        fake.upsert_pod(pod("a", "there", "n2"));
        let api = pods(&fake);
        assert_eq!(
            names(&api, &ListParams::default().fields("spec.nodeName=n1")).await,
            ["here"]
        );
        assert_eq!(names(&api, &ListParams::default()).await.len(), 2);
        let list = api.list(&ListParams::default()).await.expect("lists");
        assert!(
            list.metadata
                .resource_version
                .is_some_and(|rv| !rv.is_empty())
        );
    }

    #[tokio::test]
    async fn watches_resume_then_get_410_after_expiry() {
        let fake = FakeKube::start().await.expect("starts");
        let rv = fake.upsert_pod(pod("a", "first", "n1"));
        fake.upsert_pod(pod("a", "second", "n1"));
        fake.delete_pod("a", "first");
        let api = pods(&fake);
        let mut stream = api
            .watch(&WatchParams::default(), &rv.to_string())
            .await
            .expect("watches")
            .boxed();
        let mut seen = Vec::new();
        for _ in 0..2 {
            match stream.try_next().await.expect("event").expect("open") {
                WatchEvent::Added(o) => {
                    seen.push(format!("added {}", o.metadata.name.unwrap_or_default()))
                }
                WatchEvent::Deleted(o) => {
                    seen.push(format!("deleted {}", o.metadata.name.unwrap_or_default()))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            seen,
            ["added second", "deleted first"],
            "backlog after the requested version"
        );
        fake.expire_resource_versions();
        let mut stream = api
            .watch(&WatchParams::default(), &rv.to_string())
            .await
            .expect("watches")
            .boxed();
        match stream.try_next().await.expect("event") {
            Some(WatchEvent::Error(status)) => assert_eq!(status.code, 410),
            other => panic!("expected 410, got {other:?}"),
        }
        assert_eq!(fake.stats().gone, 1);
    }

    #[tokio::test]
    async fn watches_send_bookmarks_and_live_changes() {
        let fake = FakeKube::start_with_bookmarks(Duration::from_millis(100))
            .await
            .expect("starts");
        let rv = fake.upsert_pod(pod("a", "p", "n1"));
        let api = pods(&fake);
        let params = WatchParams {
            bookmarks: true,
            ..WatchParams::default()
        }
        .fields("spec.nodeName=n1");
        let mut stream = api
            .watch(&params, &rv.to_string())
            .await
            .expect("watches")
            .boxed();
        assert!(matches!(
            stream.try_next().await,
            Ok(Some(WatchEvent::Bookmark(_)))
        ));
        fake.upsert_pod(pod("a", "elsewhere", "n2"));
        fake.upsert_pod(pod("a", "p", "n1"));
        loop {
            match stream.try_next().await.expect("event").expect("open") {
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Modified(o) => {
                    assert_eq!(
                        o.metadata.name.as_deref(),
                        Some("p"),
                        "the other node's pod is filtered"
                    );
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_kube_objects_directory_is_served_and_followed() {
        let dir =
            std::env::temp_dir().join(format!("logrelay-fake-kube-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("namespaces")).expect("mkdir");
        std::fs::create_dir_all(dir.join("pods")).expect("mkdir");
        let write = |path: &str, value: &Value| {
            let tmp = dir.join(format!("{path}.tmp"));
            std::fs::write(&tmp, serde_json::to_vec(value).expect("json")).expect("writes");
            std::fs::rename(&tmp, dir.join(path)).expect("renames");
        };
        write("namespaces/t1.json", &json!({"metadata": {"name": "t1"}}));
        write("pods/t1_p1.json", &pod("t1", "p1", "n1"));
        let fake = FakeKube::start().await.expect("starts");
        fake.load_dir(&dir).expect("loads");
        assert!(fake.pod("t1", "p1").is_some());
        let api = pods(&fake);
        assert_eq!(names(&api, &ListParams::default()).await, ["p1"]);

        let mut deleted = pod("t1", "p1", "n1");
        deleted["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        write("pods/t1_p1.json", &deleted);
        write("pods/t1_p2.json", &pod("t1", "p2", "n1"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while fake.pod("t1", "p1").is_some() || fake.pod("t1", "p2").is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "directory changes followed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::fs::remove_file(dir.join("pods/t1_p2.json")).expect("removes");
        while fake.pod("t1", "p2").is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "removed file deletes the pod"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn requests_outside_the_enforced_role_get_403_forbidden() {
        let fake = FakeKube::start().await.expect("starts");
        fake.upsert_pod(pod("a", "p", "n1"));
        let rbac = "
kind: ClusterRole
metadata: {name: r}
rules: [{apiGroups: [''], resources: [pods], verbs: [list, watch]}]
---
kind: ClusterRoleBinding
metadata: {name: r}
roleRef: {kind: ClusterRole, name: r}
subjects: [{kind: ServiceAccount, name: sa, namespace: ns}]
";
        fake.enforce_rbac(RbacPolicy::from_manifests(rbac, "ns", "sa").expect("policy"));
        assert_eq!(names(&pods(&fake), &ListParams::default()).await, ["p"]);

        let client = kube::Client::try_from(fake.client_config()).expect("client");
        let namespaces: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Namespace")),
        );
        match namespaces.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 403);
                assert_eq!(status.reason, "Forbidden");
                assert_eq!(
                    status.message,
                    "namespaces is forbidden: User \"system:serviceaccount:ns:sa\" cannot list resource \
                     \"namespaces\" in API group \"\" at the cluster scope"
                );
            }
            other => panic!("expected 403, got {other:?}"),
        }
        let one_pod: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "a",
            &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Pod")),
        );
        assert!(
            matches!(one_pod.get("p").await, Err(kube::Error::Api(s)) if s.code == 403),
            "get is not granted"
        );
        let nodes: Api<DynamicObject> = Api::all_with(
            client,
            &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Node")),
        );
        assert!(
            matches!(nodes.list(&ListParams::default()).await, Err(kube::Error::Api(s)) if s.code == 403),
            "paths the fake does not serve are authorized first, as by the apiserver"
        );
        assert_eq!(fake.stats().forbidden, 3);
        assert_eq!(fake.access(), BTreeSet::from(["list pods".to_owned()]));
    }

    #[test]
    fn form_decoding_handles_escapes_and_plus() {
        assert_eq!(
            form_decode("spec.nodeName%3Dnode-1"),
            "spec.nodeName=node-1"
        );
        assert_eq!(form_decode("a+b%2Cc"), "a b,c");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz"), "%zz");
    }

    #[test]
    fn selectors_filter_by_field_and_label() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "api"}}, "spec": {"nodeName": "n1"}});
        let fields = parse_selector("spec.nodeName=n1").expect("parses");
        assert!(field_matches(&fields, &pod));
        assert!(!field_matches(
            &parse_selector("spec.nodeName=n2").expect("parses"),
            &pod
        ));
        assert!(field_matches(
            &parse_selector("spec.nodeName!=n2").expect("parses"),
            &pod
        ));
        assert!(label_matches(
            &parse_selector("app=api,!tier").expect("parses"),
            &pod
        ));
        assert!(!label_matches(
            &parse_selector("tier").expect("parses"),
            &pod
        ));
        assert!(parse_selector("env in (a,b)").is_err());
    }

    #[test]
    fn paths_route_to_resources() {
        assert!(matches!(
            target("/api/v1/pods"),
            Some(Target {
                resource: Resource::Pod,
                namespace: None,
                name: None
            })
        ));
        let t = target("/api/v1/namespaces/ns/pods/p").expect("routes");
        assert_eq!(
            (t.resource, t.namespace.as_deref(), t.name.as_deref()),
            (Resource::Pod, Some("ns"), Some("p"))
        );
        assert!(target("/apis/apps/v1/deployments").is_none());
    }
}
