//! The `check` command line interface.
