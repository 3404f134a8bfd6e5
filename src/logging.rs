//! hclog-compatible JSON log lines on stderr.
