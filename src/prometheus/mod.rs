//! The Prometheus HTTP API client: instant queries, authentication, and a strict response model.
