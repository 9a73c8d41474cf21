//! The handshake of a new worker stream: what it must prove to attach,
//! `WorkerInitRequest`/`Response`, function indexing and loading, and the
//! start-up deadline.

use std::collections::{HashMap, HashSet};

use fnhost_proto::rpc::streaming_message::Content;
use fnhost_proto::rpc::{FunctionsMetadataRequest, StreamingMessage, WorkerInitRequest};
use fnhost_proto::{has_capability, CAP_WORKER_INDEXING};

use super::instances::LaunchIdentity;
use super::{Dispatcher, InstanceState};
use crate::grpc::Outbound;
use crate::invocation::WorkerId;

impl Dispatcher {
    /// What a new stream must prove to attach as `worker_id`: the process
    /// launched for it and its launch secret. Refusals here are counted as
    /// refused streams, not protocol violations: anyone can dial the port.
    pub(super) fn handle_claim(&mut self, worker_id: &WorkerId) -> Result<LaunchIdentity, String> {
        let Some(inst) = self.instances.get(worker_id) else {
            self.refused_streams += 1;
            return Err(format!(
                "worker id {worker_id} was not launched by this host"
            ));
        };
        if inst.state != InstanceState::Launching || inst.outbound.is_some() {
            self.refused_streams += 1;
            return Err(format!("worker {worker_id} already has a stream"));
        }
        Ok(LaunchIdentity {
            pid: inst.process.as_ref().and_then(|p| p.pid),
            secret: inst.launch_secret.clone(),
        })
    }

    /// Attaches a stream whose peer was proven to be the launched process.
    pub(super) fn handle_attach(
        &mut self,
        worker_id: &WorkerId,
        outbound: Outbound,
    ) -> Result<(), String> {
        let Some(inst) = self.instances.get_mut(worker_id) else {
            // Verified a moment ago: the instance ended in between.
            return Err(format!("worker {worker_id} is no longer running"));
        };
        if inst.state != InstanceState::Launching || inst.outbound.is_some() {
            // The launched process itself opened a second stream.
            self.protocol_violations += 1;
            return Err(format!("worker {worker_id} already has a stream"));
        }
        inst.outbound = Some(outbound);
        inst.state = InstanceState::Handshake;
        let mut capabilities = HashMap::new();
        capabilities.insert("RpcHttpBodyOnly".to_string(), "true".to_string());
        capabilities.insert("RawHttpBodyBytes".to_string(), "true".to_string());
        let init = WorkerInitRequest {
            host_version: env!("CARGO_PKG_VERSION").to_string(),
            capabilities,
            log_categories: HashMap::new(),
            worker_directory: self.app.worker.directory.display().to_string(),
            function_app_directory: self.app.app_dir.display().to_string(),
        };
        inst.send(StreamingMessage::from_content(Content::WorkerInitRequest(
            init,
        )));
        tracing::info!(worker = %worker_id, "worker stream attached; handshake started");
        Ok(())
    }

    pub(super) fn handle_worker_message(&mut self, worker_id: &WorkerId, msg: StreamingMessage) {
        let Some(content) = msg.content else {
            tracing::warn!(worker = %worker_id, "worker sent a message without content; ignored");
            return;
        };
        match content {
            Content::InvocationResponse(r) => self.handle_invocation_response(worker_id, r),
            Content::RpcLog(log) => self.handle_log(worker_id, log),
            Content::WorkerInitResponse(r) => self.handle_init_response(worker_id, r),
            Content::FunctionMetadataResponse(r) => self.handle_metadata_response(worker_id, r),
            Content::FunctionLoadResponse(r) => self.handle_load_response(worker_id, r),
            Content::FunctionLoadResponseCollection(c) => {
                for r in c.function_load_responses {
                    self.handle_load_response(worker_id, r);
                }
            }
            Content::WorkerStatusResponse(_) => self.status_answered(worker_id),
            Content::WorkerHeartbeat(_) => {}
            other => {
                self.protocol_violations += 1;
                tracing::warn!(worker = %worker_id, kind = fnhost_proto::content_kind(&other), "unexpected message from worker; ignored");
            }
        }
    }

    fn handle_init_response(
        &mut self,
        worker_id: &WorkerId,
        r: fnhost_proto::rpc::WorkerInitResponse,
    ) {
        let Some(inst) = self.instances.get_mut(worker_id) else {
            return;
        };
        if inst.state != InstanceState::Handshake {
            self.protocol_violations += 1;
            tracing::warn!(worker = %worker_id, "unexpected WorkerInitResponse; ignored");
            return;
        }
        let result = r.result.unwrap_or_default();
        if !result.is_success() {
            let err = format!("it failed to initialise: {}", result.error_message());
            self.fault(worker_id, err);
            return;
        }
        inst.capabilities = r.capabilities;
        tracing::info!(worker = %worker_id, capabilities = ?inst.capabilities, "worker initialised");
        // As the Azure host decides: worker.config.json `workerIndexing`;
        // fnhost's SDKs also advertise the capability.
        if self.app.worker.worker_indexing
            || has_capability(&inst.capabilities, CAP_WORKER_INDEXING)
        {
            inst.state = InstanceState::Loading {
                indexing: true,
                pending: HashSet::new(),
            };
            let req = FunctionsMetadataRequest {
                function_app_directory: self.app.app_dir.display().to_string(),
            };
            inst.send(StreamingMessage::from_content(
                Content::FunctionsMetadataRequest(req),
            ));
        } else {
            self.send_loads(worker_id);
        }
    }

    fn handle_metadata_response(
        &mut self,
        worker_id: &WorkerId,
        r: fnhost_proto::rpc::FunctionMetadataResponse,
    ) {
        let indexing = matches!(
            self.instances.get(worker_id).map(|i| &i.state),
            Some(InstanceState::Loading { indexing: true, .. })
        );
        if !indexing {
            self.protocol_violations += 1;
            tracing::warn!(worker = %worker_id, "unexpected FunctionMetadataResponse; ignored");
            return;
        }
        let result = r.result.clone().unwrap_or_default();
        if !result.is_success() && r.result.is_some() {
            tracing::error!(worker = %worker_id, "the worker failed to index its functions: {}; loading function.json functions only", result.error_message());
        } else if !r.use_default_metadata_indexing {
            for meta in &r.function_metadata_results {
                self.register_indexed(worker_id, meta);
            }
        }
        self.send_loads(worker_id);
    }

    /// One function a worker indexed: registered with the dispatcher and
    /// published in the catalog, unless a function of that name is known
    /// already (function.json wins; another instance indexed it first).
    fn register_indexed(
        &mut self,
        worker_id: &WorkerId,
        meta: &fnhost_proto::rpc::RpcFunctionMetadata,
    ) {
        if self.registry.get(&meta.name).is_some() {
            return;
        }
        let config = match crate::registry::function_from_metadata(meta, &self.app.app_dir) {
            Ok(c) => c,
            Err(why) => {
                tracing::error!(worker = %worker_id, function = %meta.name, "worker-indexed function refused: {why}");
                return;
            }
        };
        if let Some(catalog) = &self.catalog {
            if let Err(why) = catalog.register(config.clone()) {
                tracing::error!(worker = %worker_id, function = %meta.name, "worker-indexed function refused: {why}");
                return;
            }
        }
        tracing::info!(worker = %worker_id, function = %meta.name, "worker-indexed function registered");
        if let Some(trigger) = config.unfired_trigger() {
            tracing::warn!(function = %meta.name, "{}", crate::config::unfired_warning(&meta.name, trigger));
        }
        self.registry.insert_indexed(config, &meta.function_id);
    }

    fn send_loads(&mut self, worker_id: &WorkerId) {
        let Some(inst) = self.instances.get_mut(worker_id) else {
            return;
        };
        let mut pending = HashSet::new();
        for entry in self.registry.entries() {
            pending.insert(entry.function_id.clone());
            let req = self.registry.load_request(entry);
            inst.send(StreamingMessage::from_content(
                Content::FunctionLoadRequest(req),
            ));
        }
        let nothing_to_load = pending.is_empty();
        inst.state = InstanceState::Loading {
            indexing: false,
            pending,
        };
        if nothing_to_load {
            if let Some(k) = inst.startup_key.take() {
                self.timers.remove(&k);
            }
            self.after_load(worker_id);
        }
    }

    fn handle_load_response(
        &mut self,
        worker_id: &WorkerId,
        r: fnhost_proto::rpc::FunctionLoadResponse,
    ) {
        let Some(inst) = self.instances.get_mut(worker_id) else {
            return;
        };
        let InstanceState::Loading { pending, .. } = &mut inst.state else {
            self.protocol_violations += 1;
            tracing::warn!(worker = %worker_id, "unexpected FunctionLoadResponse; ignored");
            return;
        };
        if !pending.remove(&r.function_id) {
            self.protocol_violations += 1;
            tracing::warn!(worker = %worker_id, function_id = %r.function_id, "load response for a function not being loaded; ignored");
            return;
        }
        let done = pending.is_empty();
        let name = self
            .registry
            .entries()
            .find(|e| e.function_id == r.function_id)
            .map(|e| e.config.name.clone())
            .unwrap_or_default();
        let result = r.result.unwrap_or_default();
        if result.is_success() {
            inst.loaded.insert(name, Ok(()));
        } else {
            let err = result.error_message().to_string();
            tracing::error!(worker = %worker_id, function = %name, "function failed to load: {err}");
            inst.loaded.insert(name, Err(err));
        }
        if done {
            // Loaded: the start-up deadline is met; the initializer has its own.
            if let Some(k) = inst.startup_key.take() {
                self.timers.remove(&k);
            }
            self.after_load(worker_id);
        }
    }

    pub(super) fn handle_startup_deadline(&mut self, worker_id: &WorkerId) {
        let Some(inst) = self.instances.get_mut(worker_id) else {
            return;
        };
        inst.startup_key = None;
        if !matches!(
            inst.state,
            InstanceState::Launching | InstanceState::Handshake | InstanceState::Loading { .. }
        ) {
            return;
        }
        let err = format!(
            "it did not become ready within {:?} (stuck in state '{}')",
            self.app.host.startup_timeout,
            inst.state.name()
        );
        self.fault(worker_id, err);
    }
}
