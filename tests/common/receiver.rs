//! A local HTTP receiver of notifications: it records every request (headers
//! and body) and can be told to fail (an outage).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub down: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listen on 127.0.0.1 at any path.
    pub async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let (g, d) = (got.clone(), down.clone());
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (g, d) = (g.clone(), d.clone());
            async move {
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                    .collect();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default().to_vec();
                let status = if d.load(Ordering::SeqCst) { 503 } else { 200 };
                g.lock().unwrap().push(Received { headers, body, status });
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, got, down, task }
    }

    pub fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Requests it accepted (answered 200).
    pub fn accepted(&self) -> Vec<Received> {
        self.all().into_iter().filter(|r| r.status == 200).collect()
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}
