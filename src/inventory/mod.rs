//! Pollers that keep an observed snapshot of each cloud fresh and collect metrics.
