//! A fake Kubernetes API server for the agent's tests (LIST and chunked WATCH of pods over real
//! HTTP, reached through `kube::Config::new`). Not written yet: a later issue fills it in.
