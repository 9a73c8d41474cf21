//! Which functions exist, with one owner: the functions of `function.json`
//! files and the ones workers index themselves, read by the HTTP routes,
//! the admin, async and SCF APIs, and the dispatcher through one cheap
//! handle. A read takes a snapshot (an `Arc`); a worker-indexed
//! registration publishes a new one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::{AppConfig, FunctionConfig};
use crate::http::routes::RouteTable;

/// The functions at one moment.
pub struct Functions {
    list: Vec<Arc<FunctionConfig>>,
    by_lower: HashMap<String, usize>,
    routes: RouteTable,
    prefix: String,
}

impl Functions {
    fn build(list: Vec<Arc<FunctionConfig>>, prefix: String) -> Self {
        let by_lower = list
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
        let routes = RouteTable::build(&prefix, &list);
        Self {
            list,
            by_lower,
            routes,
            prefix,
        }
    }

    /// The function called `name`, in any case.
    pub fn get(&self, name: &str) -> Option<&Arc<FunctionConfig>> {
        self.by_lower
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.list[i])
    }

    /// Every function, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<FunctionConfig>> {
        self.list.iter()
    }

    pub(crate) fn routes(&self) -> &RouteTable {
        &self.routes
    }
}

/// The cheap, cloneable handle.
#[derive(Clone)]
pub struct Catalog {
    current: Arc<RwLock<Arc<Functions>>>,
}

impl Catalog {
    /// The app's `function.json` functions.
    pub fn new(app: &AppConfig) -> Self {
        let list = app.functions.iter().cloned().map(Arc::new).collect();
        let functions = Functions::build(list, app.host.route_prefix.clone());
        Self {
            current: Arc::new(RwLock::new(Arc::new(functions))),
        }
    }

    /// A snapshot of the functions now.
    pub fn current(&self) -> Arc<Functions> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Adds a function a worker indexed. A name already known (another
    /// instance indexed it, or `function.json` defines it) is left as it
    /// is; an HTTP route that collides with another function's is refused
    /// with the reason.
    pub(crate) fn register(&self, function: FunctionConfig) -> Result<bool, String> {
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.get(&function.name).is_some() {
            return Ok(false);
        }
        let mut list: Vec<Arc<FunctionConfig>> = guard.list.clone();
        list.push(Arc::new(function));
        let plain: Vec<FunctionConfig> = list.iter().map(|f| (**f).clone()).collect();
        crate::config::check_routes(&plain, &guard.prefix).map_err(|e| e.to_string())?;
        *guard = Arc::new(Functions::build(list, guard.prefix.clone()));
        Ok(true)
    }
}
